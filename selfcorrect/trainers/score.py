"""Multi-turn self-correction: SCoRe (stages I and II) and UFO ("try again").

SCoRe — Kumar et al. 2024, "Training Language Models to Self-Correct via Reinforcement Learning".
Two (or more) attempts at the same problem; between them a fixed instruction with no correctness signal.
How it differs from GRPO:
- the rollout is an episode (attempt 1, instruction, attempt 2); the instruction's tokens are masked out of the loss;
- stage I optimizes only the last attempt's reward, with a strong KL (`turn1_beta`, paper 0.1) to the reference on
  earlier attempts and the weak `beta` (paper 0.01) on the last; this keeps attempt 1 near the base model and avoids
  collapse into "repeat attempt 1";
- stage II credits each attempt with its own reward (gamma = 0), the last one shaped as `r_2 + alpha * (r_2 - r_1)`
  (`alpha`, paper 10), with the weak KL everywhere;
- advantages are each attempt's (shaped) reward minus its group mean, without std division
  (`score_advantage_scaling: mean`), so alpha keeps its weight: dividing each attempt by its own std would give the
  shaped last attempt the same spread as the first and cancel the bonus (`joint`: one std over all attempts of a group;
  `per_attempt`: the old per-attempt std);
- `stage1_steps` switches from stage I to stage II automatically; the stage is a function of the global step, so a
  resumed run continues in the right stage.

UFO — "A Simple 'Try Again' Can Elicit Multi-Turn LLM Reasoning" (2025).
Up to `max_attempts` turns; after a wrong answer a unary message ("Incorrect. Please think again."), and the episode
ends at the first correct answer. How it differs from GRPO:
- one trajectory return for the whole episode: `ufo_gamma ** t` for a first correct answer at turn t (0-based), minus
  `ufo_repetition_penalty * (1 - E/T)` (E distinct of T answers), minus `ufo_format_penalty` per turn without a boxed
  answer; every model token of the episode gets the group-normalized return; feedback tokens are masked. The return
  is one scalar per episode, so TRL's std scaling (`scale_rewards`) rescales whole episodes and cannot wash out its
  discount or penalties relative to each other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from ..algos import ATTEMPT_SCALINGS, group_normalize, score_advantages, score_kl_coefficients, ufo_returns
from .base import MultiAttemptConfig, MultiAttemptGRPOTrainer
from .registry import register_method


@dataclass
class SCoReConfig(MultiAttemptConfig):
    """SCoRe: `beta` is the weak KL coefficient beta_1; paper defaults alpha = 10, beta_1 = 0.01, beta_2 = 0.1."""

    own_credit: ClassVar[str | None] = "SCoRe's shaped per-attempt credit"

    beta: float = field(default=0.01, metadata={"help": "Weak KL coefficient beta_1 (paper: 0.01)."})
    score_stage: int = field(default=2, metadata={"help": "1 (initialization) or 2 (shaped multi-turn RL)."})
    stage1_steps: int | None = field(
        default=None,
        metadata={"help": "With score_stage 1: switch to stage II after this many optimizer steps (null: never)."},
    )
    alpha: float = field(default=10.0, metadata={"help": "Stage II shaping bonus alpha * (r_2 - r_1) (paper: 10)."})
    turn1_beta: float = field(
        default=0.1, metadata={"help": "Stage I strong KL beta_2 on earlier attempts (paper: 0.1; 0.25 for code)."}
    )
    score_advantage_scaling: str = field(
        default="mean",
        metadata={
            "help": "How attempt rewards become advantages: mean (reward minus the group mean of that attempt, no std: "
            "keeps alpha's weight, default), joint (one std over all attempts of a group), per_attempt (each attempt "
            "divided by its own std per `scale_rewards`: normalizes alpha away; the pre-2026-11-30 behaviour)."
        },
    )
    stage1_credit_earlier_attempts: bool = field(
        default=True,
        metadata={
            "help": "Stage I: give the last attempt's advantage to earlier attempts too (policy gradient of "
            "E[r(y_2)] over the episode); false: earlier attempts learn only from the KL term."
        },
    )

    def __post_init__(self):
        super().__post_init__()
        if self.max_attempts < 2:
            raise ValueError(
                f"SCoRe needs `max_attempts` >= 2 (a first attempt and a revision); got {self.max_attempts}."
            )
        if self.score_stage not in (1, 2):
            raise ValueError(f"`score_stage` must be 1 or 2; got {self.score_stage}.")
        if self.stage1_steps is not None and (self.score_stage != 1 or self.stage1_steps < 0):
            raise ValueError(
                f"`stage1_steps` ({self.stage1_steps}) needs `score_stage: 1` and a non-negative step count."
            )
        if self.score_advantage_scaling not in ATTEMPT_SCALINGS:
            raise ValueError(
                f"`score_advantage_scaling` must be one of {', '.join(ATTEMPT_SCALINGS)}; got "
                f"{self.score_advantage_scaling!r}."
            )
        if self.alpha < 0:
            raise ValueError(f"`alpha` must be non-negative; got {self.alpha}.")
        uses_stage1 = self.score_stage == 1
        if uses_stage1 and self.turn1_beta == 0 and self.beta == 0:
            raise ValueError(
                "SCoRe stage I with `beta: 0` and `turn1_beta: 0` has no KL at all, so nothing keeps attempt 1 near the "
                "base model and stage I is plain last-attempt GRPO; set `turn1_beta` (paper 0.1) and `beta` (paper "
                "0.01) > 0, or start at `score_stage: 2`."
            )
        if uses_stage1 and self.turn1_beta > 0 and self.beta == 0:
            raise ValueError(
                "SCoRe stage I with `turn1_beta` > 0 needs a reference model, which TRL builds only when `beta` > 0: "
                "set `beta` (the weak KL, paper 0.01) > 0, or `turn1_beta: 0`."
            )


class SCoReTrainer(MultiAttemptGRPOTrainer):
    """SCoRe (Kumar et al. 2024) on TRL's GRPO: see the module docstring for how it differs from GRPO."""

    _tag_names = ["trl", "grpo", "selfcorrect", "score"]

    @property
    def stage(self) -> int:
        if self.args.score_stage == 1 and self.args.stage1_steps is not None:
            return 1 if self.state.global_step < self.args.stage1_steps else 2
        return self.args.score_stage

    def attempt_advantages(self, rewards, episodes):
        mode = "train" if self.model.training else "eval"
        self._metrics[mode]["selfcorrect/score_stage"].append(float(self.stage))
        return score_advantages(
            rewards,
            self.group_size,
            stage=self.stage,
            alpha=self.args.alpha,
            scaling=self.args.score_advantage_scaling,
            stage1_credit_earlier_attempts=self.args.stage1_credit_earlier_attempts,
            scale_rewards=self.scale_rewards,
        )

    def kl_coefficients(self, num_attempts):
        if self.stage == 2:
            return None  # TRL's uniform beta = beta_1
        return score_kl_coefficients(num_attempts, 1, beta_weak=self.args.beta, beta_turn1=self.args.turn1_beta)


@dataclass
class UFOConfig(MultiAttemptConfig):
    """UFO: unary feedback, stop on the first correct answer, discounted trajectory return."""

    own_credit: ClassVar[str | None] = "UFO's discounted episode return"

    max_attempts: int = field(default=5, metadata={"help": "Maximum turns T_max (paper: 5)."})
    stop_on_correct: bool = field(default=True, metadata={"help": "UFO ends an episode at its first correct answer."})
    feedback: str = field(default="unary", metadata={"help": "Feedback after a wrong answer (UFO: unary)."})
    ufo_gamma: float = field(default=0.5, metadata={"help": "Return gamma ** t for a first correct answer at turn t."})
    ufo_repetition_penalty: float = field(
        default=0.5, metadata={"help": "lambda in the penalty lambda * (1 - E/T) for repeated answers."}
    )
    ufo_format_penalty: float = field(default=0.1, metadata={"help": "Penalty per turn without a boxed answer."})

    def __post_init__(self):
        super().__post_init__()
        if not 0.0 < self.ufo_gamma <= 1.0:
            raise ValueError(f"`ufo_gamma` must be in (0, 1]; got {self.ufo_gamma}.")
        if self.ufo_repetition_penalty < 0 or self.ufo_format_penalty < 0:
            raise ValueError("`ufo_repetition_penalty` and `ufo_format_penalty` must be non-negative.")


class UFOTrainer(MultiAttemptGRPOTrainer):
    """UFO "try again" multi-turn RL on TRL's GRPO: see the module docstring for how it differs from GRPO."""

    _tag_names = ["trl", "grpo", "selfcorrect", "ufo"]

    def attempt_advantages(self, rewards, episodes):
        returns = ufo_returns(
            episodes["attempt_correct"],
            episodes["attempt_answers"],
            max_turns=self.args.max_attempts,
            gamma=self.args.ufo_gamma,
            repetition_penalty=self.args.ufo_repetition_penalty,
            format_penalty=self.args.ufo_format_penalty,
        ).to(rewards.device)  # (N,)
        mode = "train" if self.model.training else "eval"
        self._metrics[mode]["selfcorrect/ufo_return"].append(returns.mean().item())
        advantage = group_normalize(returns, self.group_size, self.scale_rewards)  # (N,)
        return advantage.unsqueeze(1).expand(-1, rewards.size(1)).clone()  # (N, K): the same on every turn

    def credit_reads_rewards(self) -> bool:
        return False  # the return is made of verdicts and answers; reward functions only feed the logs


register_method("score", SCoReTrainer, SCoReConfig)
register_method("ufo", UFOTrainer, UFOConfig, verdict_credit=True)
