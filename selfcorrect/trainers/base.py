"""Multi-attempt GRPO: episodes of K attempts with feedback turns, per-attempt rewards, per-token advantages.

`MultiAttemptGRPOTrainer` is TRL's `GRPOTrainer` with its rollout, scoring, advantages and loss changed through TRL's
own seams. One generation batch, in order (`_generate_and_score_completions` holds the story):

1. rows -> episodes (`_rollout_episodes`, TRL's `rollout_func`): each prompt of a group becomes an episode (see
   `selfcorrect.episodes`); every attempt is one batched call of TRL's `_generate_single_turn`, so HF generation, vLLM
   (colocate/server) and ZeRO-3 weight gathering work as in TRL. Feedback tokens are environment tokens: `env_mask` =
   0 takes them out of the loss. A custom `rollout_func`, `tools` and `environment_factory` are refused: the episode
   engine replaces TRL's rollout.
2. episodes -> per-attempt rewards (`_calculate_rewards`, TRL's scoring hook): the recipe's reward functions score
   each attempt from its own text (TRL's `completions` is the whole episode, feedback included), with the judge's
   verdict from the rollout passed as `judged_correct` (so `accuracy` reuses it: math-verify runs once per attempt).
   Each attempt goes through TRL's own `_calculate_rewards`, so every reward function TRL takes works: callables,
   async callables, reward models by id, path or instance (they read the prompt followed by that attempt, formatted
   as TRL formats it) with `reward_processing_classes`; names are TRL's `reward_func_names`, and what a function logs
   through `log_extra` / `log_metric` is named per attempt. Rewards are gathered across ranks before any group
   statistic; `attempt_rewards` combines the functions into (N, K).
3. rewards -> credit (`assign_credit`): (N, K) attempt rewards -> method credit (`attempt_advantages`) -> advantage
   mode (`advantage_mode`: PSR / NSR / W-REINFORCE weight the credit's positive and negative parts,
   `selfcorrect.algos.sign_weighted_advantages`) -> R3L positive amplification -> (N, K) attempt advantages.
4. credit -> per-token advantages (`token_advantages`): this rank's (B, T) `advantages` (attempt k's tokens carry
   attempt k's advantage; they replace the ones TRL computed from the last attempt's scores), with optional
   per-attempt KL coefficients as (B, T) `kl_weights`.
5. loss (`_compute_loss`): TRL's loss over those advantages; with `kl_weights`, the per-attempt weighted KL replaces
   TRL's uniform `beta` KL (`_trl_loss_parts`, the one place that reaches inside TRL's loss).

Steps 1-3 run inside TRL's `_generate_and_score_completions`, which calls the rollout and the scoring hook with
arguments of its own; they share one record, `Step`, the only per-batch state the trainer holds (`_step_in_progress`,
set and cleared by our `_generate_and_score_completions`). Step 3 runs inside the scoring hook because TRL flushes the
completions table right after it, and the table shows each attempt's advantage.

Subclass hooks (override one to change the method; each is always called, whatever the advantage mode):
- `judge(text, row) -> bool | None`: is an attempt correct (early stop, feedback, metrics, the accuracy reward)?
  Default: math-verify on the last boxed answer against `row["solution"]`; rows without a `solution` are judged by
  the reward functions (`judge_threshold`), or not at all (None) in single-attempt runs.
- `feedback(outcome) -> str | None`: the user turn after an attempt (None ends the episode).
- `feedback_batch(outcomes) -> list[str | None]`: one round's turns in one call (default: the provider's `batch`, which
  a critic answers at once; an overriding `feedback` is called per outcome).
- `attempt_rewards(rewards_per_func) -> (N, K)`: combine the reward functions' values for each attempt.
- `attempt_advantages(rewards, episodes) -> (N, K)`: the method's credit over attempts. Default: per-attempt GRPO;
  under a negative-sample `advantage_mode`, each attempt's verdict as +-1 (Zhu et al.) or OREAL's reshaping.
- `credit_reads_rewards() -> bool`: whether `attempt_advantages` uses the reward functions' values (if not, a reward
  function other than `accuracy` would never reach the gradient, and the trainer refuses it).
- `kl_coefficients(num_attempts) -> list[float] | None`: a KL coefficient per attempt (None: TRL's uniform `beta`).

How each method composes with `advantage_mode`, R3L amplification and RISE verification: the table in
docs/methods/composing.md ("What each combination computes"); combinations without a meaning are refused when the
config is built.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from functools import partial
from typing import Any, ClassVar

import torch
from accelerate.utils import gather_object
from trl import GRPOTrainer
from trl.data_utils import apply_chat_template, is_conversational
from trl.trainer.utils import get_config_model_id, is_async_callable

from ..algos import (
    ADVANTAGE_MODES,
    aggregate_token_loss,
    correctness_advantages,
    negative_sample_advantages,
    per_attempt_advantages,
    row_lengths,
    scale_positive_advantages,
    sign_weighted_advantages,
    spread_over_attempts,
    two_length_groups,
)
from ..collective import any_rank, max_over_ranks
from ..critics import (
    Critic,
    CriticConfig,
    CriticError,
    CritiqueFeedback,
    EndpointCritic,
    ModelCritic,
    build_critic,
    critique_rates,
    validate_critic_settings,
)
from ..episodes import ChatTurns, Episode, EpisodeSpec, judge_accuracy, max_episode_length, run_episodes
from ..feedback import FEEDBACK, AttemptOutcome, FeedbackProvider, FeedbackTemplateError, get_feedback_provider
from ..guards import UnscoredBatches
from ..metrics import carry_forward, self_correction_metrics
from ..precision import AutocastGeneration
from .grpo import GRPOConfig
from .registry import METHOD_CONFIGS, register_method
from .trl_private import logps_call_options

logger = logging.getLogger("selfcorrect")


@dataclass
class VerificationConfig:
    """RISE's self-verification (Liu et al. 2025), which composes with any multi-attempt trainer: off unless
    `verification_solutions` > 0, and only then checked and its trainer code loaded (the trainer class is
    `with_verification(cls)`, as `selfcorrect train` builds it). `--help` lists these fields in a group of their own."""

    help_group: ClassVar[str] = "verification (RISE self-verification on any trainer)"

    verification_solutions: int = field(
        default=0,
        metadata={
            "help": "RISE self-verification (Liu et al. 2025): B_v solutions of each generation batch (spread over "
            "groups) that the policy verifies in the same update; 0: off. See `selfcorrect.trainers.self_verification`."
        },
    )
    verification_generations: int = field(
        default=4, metadata={"help": "RISE: verifications sampled per verified solution (n); they form one group."}
    )
    verification_max_length: int = field(default=256, metadata={"help": "RISE: token cap of each verification."})
    verification_template: str | None = field(
        default=None,
        metadata={"help": "RISE: verification prompt with {question} and {response}; null: the default rubric."},
    )
    verification_attempt: int = field(
        default=1, metadata={"help": "RISE: which attempt of an episode is verified (1: the first, before revising)."}
    )
    verification_loss_passes: bool = field(
        default=True,
        metadata={
            "help": "RISE: run the loss of verification rows in their own forward/backward passes, each at most as many "
            "padded tokens as the solution rows (same gradient, a TRL step's activations); false: one pass over the "
            "joined batch."
        },
    )
    verification_shared_prefix: bool = field(
        default=True,
        metadata={
            "help": "RISE: in the verification loss passes (and for the verification rows' reference / old log-probs), "
            "the n verifications of one solution share one forward of their prompt (~250 tokens) instead of one each "
            "(same log-probs and gradient to float rounding). Off under DeepSpeed and reentrant gradient "
            "checkpointing, where every row runs its own forward."
        },
    )


@dataclass
class MultiAttemptConfig(GRPOConfig, CriticConfig, VerificationConfig):
    """GRPO configuration plus the episode: attempts, token cap per attempt, feedback, early stop. The critic's
    fields (`CriticConfig`: Critique-GRPO's critiques, the turn of `feedback: critic`) and RISE's verification fields
    (`VerificationConfig`) come with it, each a group of its own in `--help`."""

    # Set by a method that assigns its own credit (SCoRe, UFO, Critique-GRPO): OREAL would replace it, so it is refused.
    own_credit: ClassVar[str | None] = None

    max_attempts: int = field(default=2, metadata={"help": "Attempts per episode (K)."})
    max_attempt_length: int = field(
        default=128, metadata={"help": "Token cap of each attempt; `max_completion_length` must fit the episode."}
    )
    stop_on_correct: bool = field(default=False, metadata={"help": "End an episode at its first correct attempt."})
    feedback: str = field(
        default="score_instruction",
        metadata={"help": f"Feedback provider between attempts: {', '.join(FEEDBACK)}, critic."},
    )
    feedback_template: str | None = field(
        default=None,
        metadata={"help": "Text of the feedback turn (placeholders {answer}, {solution}, {attempt}); null: default."},
    )
    judge_threshold: float | None = field(
        default=None,
        metadata={
            "help": "For rows without a gold `solution`: an attempt is correct when its weighted reward (the recipe's "
            "reward functions, TRL's weighted sum) is at least this. null: such rows are not judged, which only a "
            "single-attempt run accepts."
        },
    )
    advantage_mode: str = field(
        default="grpo",
        metadata={
            "help": "grpo: the method's own group-relative advantages; psr / nsr / w_reinforce / oreal: advantages "
            "from each attempt's correctness (Zhu et al. 2025; Lyu et al. 2025), see `selfcorrect.algos`."
        },
    )
    positive_weight: float = field(
        default=0.1, metadata={"help": "W-REINFORCE lambda: advantage of a correct sample (paper 0.1), in [0, 1]."}
    )
    negative_weight: float = field(
        default=0.5, metadata={"help": "OREAL eta: weight of the reshaped negative advantage (paper 0.5)."}
    )
    positive_advantage_scale: float = field(
        default=1.0,
        metadata={"help": "R3L positive amplification: positive advantages times this (paper alpha = 3; 1.0: off)."},
    )

    def __post_init__(self):
        super().__post_init__()
        if self.max_attempts < 1:
            raise ValueError(f"`max_attempts` must be at least 1; got {self.max_attempts}.")
        if self.max_attempt_length < 1:
            raise ValueError(f"`max_attempt_length` must be positive; got {self.max_attempt_length}.")
        if self.feedback == "critic":  # the critique, then `feedback_template` (null: ask for a corrected answer)
            validate_critic_settings(self)
        else:
            try:  # a registered provider; its template's placeholders
                get_feedback_provider(self.feedback, self.feedback_template)
            except FeedbackTemplateError:
                raise
            except ValueError as exc:
                raise ValueError(f"{exc} Or `feedback: critic` (the `critic`'s critique).") from None
        if not ADVANTAGE_MODES.lookup(self.advantage_mode).composes and self.own_credit:
            raise ValueError(
                f"`advantage_mode: {self.advantage_mode}` cannot compose with {self.own_credit}: it is a credit of its "
                "own (OREAL reshapes binary outcomes within a group) and would replace the method's. Use psr, nsr or "
                "w_reinforce (they weight the method's positive and negative credit), or grpo."
            )
        if not 0.0 <= self.positive_weight <= 1.0:
            raise ValueError(f"`positive_weight` (W-REINFORCE lambda) must be in [0, 1]; got {self.positive_weight}.")
        if self.negative_weight <= 0:
            raise ValueError(f"`negative_weight` (OREAL eta) must be positive; got {self.negative_weight}.")
        if self.positive_advantage_scale <= 0:
            raise ValueError(
                f"`positive_advantage_scale` must be positive (R3L: 3); got {self.positive_advantage_scale}."
            )
        if self.verification_solutions:  # RISE's settings, checked (and their module loaded) only when asked for
            from ..verification import check_verification_fields

            check_verification_fields(self)


# The per-episode fields of an `Episode` that the rollout puts into each row.
EPISODE_KEYS = (
    "attempt_spans",
    "attempt_texts",
    "attempt_answers",
    "attempt_correct",
    "attempt_judged",
    "attempt_truncated",
    "feedback_texts",
)


@dataclass
class Step:
    """One generation batch of a multi-attempt trainer, filled in order while TRL's `_generate_and_score_completions`
    runs (module docstring, steps 1-3): the rows, then the episodes made from them, their per-attempt rewards and the
    credit. N rows gathered over ranks, B = N / processes on this rank, K = `max_attempts`."""

    rows: list[dict[str, Any]]  # this rank's B dataset rows (TRL's `inputs`; TRL adds the rollout's episode fields)
    padding_ids: list[int] = field(default_factory=list)  # the batch's shortest prompt: pads collective generation
    episodes: dict[str, list] = field(default_factory=dict)  # per-episode fields (`episode_keys`), gathered: N each
    rewards: torch.Tensor | None = None  # (N, K) attempt rewards, NaN where an attempt was not made
    advantages: torch.Tensor | None = None  # (N, K) attempt advantages (`assign_credit`)
    scoring_attempt: int | None = None  # while attempt k is scored: k (names what reward functions log per attempt)


class MultiAttemptGRPOTrainer(AutocastGeneration, GRPOTrainer):
    """GRPO over multi-attempt episodes; per-attempt advantages are group-normalized attempt by attempt.

    RISE's verification pass is composed in only where asked: a config with `verification_solutions` > 0 needs the
    trainer class `with_verification(cls)` (`selfcorrect.trainers.self_verification`), which the recipe builder
    (`selfcorrect.train.build_trainer`) and `RISETrainer` pick; a trainer without it neither inherits nor imports it."""

    _tag_names = ["trl", "grpo", "selfcorrect", "multi-attempt"]
    # The loss forward runs per length group when that saves at least this share of padded tokens.
    length_group_min_saving: float = 0.25
    # Row fields gathered over ranks for the credit and the episode metrics (`Step.episodes`); a method adds its own.
    episode_keys: ClassVar[tuple[str, ...]] = EPISODE_KEYS
    # Inside `_trl_loss_parts` only: receives what TRL's loss forward computes (`logps`, (B, T)).
    _loss_parts: dict[str, torch.Tensor] | None = None
    verifies: ClassVar[bool] = False  # True in classes with RISE's verification pass (`SelfVerification`)

    def __init__(self, model, reward_funcs=None, args=None, *more, **kwargs):
        if args is None:  # as TRL does, with this method's config (TRL's `GRPOConfig` lacks the episode's fields)
            name = model if isinstance(model, str) else get_config_model_id(model.config)
            args = self._default_config_class()(f"{name.split('/')[-1]}-GRPO")
        owned = [name for name in ("rollout_func", "tools", "environment_factory") if kwargs.get(name)]
        if owned:
            raise ValueError(
                f"{type(self).__name__} generates its own episodes (attempts and feedback turns, `rollout_func` = the "
                f"episode engine), and TRL runs tool calls and environments only in its own rollout, so {owned} would "
                "be ignored. Use `method: grpo` (TRL's GRPOTrainer) for a custom rollout, tools or environments."
            )
        if getattr(args, "verification_solutions", 0) > 0 and not self.verifies:
            raise ValueError(
                f"`verification_solutions` = {args.verification_solutions} asks for RISE's verification pass, which "
                f"{type(self).__name__} does not have: build `with_verification({type(self).__name__})` "
                "(selfcorrect.trainers.self_verification) instead, as a recipe run by `selfcorrect train` does; "
                "or set `verification_solutions: 0`."
            )
        super().__init__(model, reward_funcs, args, *more, **kwargs)
        self.rollout_func = self._rollout_episodes
        # The generation batch being made: set and cleared by `_generate_and_score_completions`, read by the rollout and
        # the scoring hook, which TRL calls in between with arguments of its own (module docstring).
        self._step_in_progress: Step | None = None
        self._critique_tokens = 0  # tokens of critiques the policy wrote (`critic: self`), a running count
        self._critic_counts_logged: torch.Tensor | None = None  # `feedback: critic`: counts logged so far (all ranks)
        if self.args.feedback == "critic":
            self.feedback_provider: FeedbackProvider = CritiqueFeedback(
                self.build_critic(), suffix=self.args.feedback_template or CritiqueFeedback.SUFFIX
            )
        else:
            self.feedback_provider = get_feedback_provider(self.args.feedback, self.args.feedback_template)
        self.chat_turns = ChatTurns(
            self._tokenizer,
            self.chat_template,
            self.chat_template_kwargs,
            multi_turn=self.args.max_attempts > 1,
            eos_token_ids=self.eos_token_ids,  # TRL's list: every id that stops generation ends an attempt
        )
        self.episode_spec = EpisodeSpec(
            max_attempts=self.args.max_attempts,
            max_attempt_tokens=self._attempt_cap(),
            stop_on_correct=self.args.stop_on_correct,
        )
        example = self._longest_feedback_example()
        needed = max_episode_length(self.episode_spec, self.chat_turns, example) if self.args.max_attempts > 1 else 0
        if self.args.max_completion_length is not None and self.args.max_completion_length < needed:
            raise ValueError(
                f"`max_completion_length` ({self.args.max_completion_length}) cannot hold an episode of "
                f"{self.args.max_attempts} attempts of up to `max_attempt_length` = {self.args.max_attempt_length} "
                f"tokens plus the feedback turns; set it to at least {needed}."
            )
        self.unscored_batches = UnscoredBatches(self.args.max_unscored_batches)
        self._check_composition()

    @classmethod
    def _default_config_class(cls) -> type[MultiAttemptConfig]:
        """The config of the nearest registered method in this class's ancestry (`args=None`: its defaults)."""
        return next((METHOD_CONFIGS[c] for c in cls.__mro__ if c in METHOD_CONFIGS), MultiAttemptConfig)

    def _attempt_cap(self) -> int:
        """Token cap of one attempt: `max_attempt_length`, never beyond TRL's `max_completion_length` (so that with
        `max_attempts: 1` an attempt is capped as TRL caps a completion)."""
        if self.args.max_completion_length is None:
            return self.args.max_attempt_length
        return min(self.args.max_attempt_length, self.args.max_completion_length)

    @property
    def _has_own_credit(self) -> bool:
        """Does this class (a method or a user's subclass) replace the default `attempt_advantages`?"""
        return type(self).attempt_advantages is not MultiAttemptGRPOTrainer.attempt_advantages

    def _check_composition(self) -> None:
        """Refuse, before any step, a combination whose settings would be silently ignored."""
        mode = self.args.advantage_mode
        own_credit = self._has_own_credit
        if not ADVANTAGE_MODES.lookup(mode).composes and own_credit:
            raise ValueError(
                f"`advantage_mode: {mode}` reshapes binary outcomes within a group (behaviour cloning on correct samples, "
                f"pass-rate-weighted RLOO on wrong ones); {type(self).__name__} assigns its own credit "
                "(`attempt_advantages`), which OREAL would replace. Use psr, nsr or w_reinforce, which weight this "
                "method's credit, or grpo."
            )
        ignored = [name for name in self.reward_func_names if name not in VERDICT_REWARDS]
        if not self.credit_reads_rewards() and ignored and not self._rewards_judge():
            source = "its `attempt_advantages`" if own_credit else f"`advantage_mode: {mode}`"
            remedy = "" if own_credit else ", or `advantage_mode: grpo`, whose credit reads them"
            raise ValueError(
                f"{type(self).__name__} takes its credit from the judge's verdicts alone ({source}), so the reward "
                f"function(s) {ignored} would never reach the gradient. Use `reward_funcs: [accuracy]` (the verdict "
                f"itself){remedy}."
            )
        columns = getattr(self.train_dataset, "column_names", None) or []
        if (
            self.args.max_attempts > 1
            and self.args.judge_threshold is None
            and self.train_dataset is not None
            and "solution" not in columns
            and type(self).judge is MultiAttemptGRPOTrainer.judge
        ):
            raise ValueError(
                f"the training data has no `solution` column (columns: {columns}), so the default judge cannot tell a "
                f"right attempt from a wrong one, and {self.args.max_attempts}-attempt episodes need that verdict "
                "(feedback, early stop, metrics). Add gold answers, set `judge_threshold` (an attempt is right when "
                "its weighted reward reaches it), or override `judge`."
            )

    def _rewards_judge(self) -> bool:
        """Do the reward functions make the verdicts? (`judge_threshold` with the default judge, on training data
        without a gold `solution` column.) Then they reach a credit made of verdicts too (UFO's return, PSR/NSR)."""
        columns = getattr(self.train_dataset, "column_names", None) or []
        return (
            self.args.judge_threshold is not None
            and type(self).judge is MultiAttemptGRPOTrainer.judge
            and "solution" not in columns
        )

    def _longest_feedback_example(self) -> str:
        """A feedback turn at least as long as any this run writes (for the `max_completion_length` check)."""
        provider = self.feedback_provider
        if isinstance(provider, CritiqueFeedback) and isinstance(provider.critic, ModelCritic):
            critique = " word" * self.args.critic_max_tokens  # a generated critique: up to `critic_max_tokens`
            return critique + provider.suffix
        outcome = AttemptOutcome(0, "", "0", False, False, {"solution": "0", "prompt": ""})
        return self.feedback_provider(outcome) or "Try again."

    def build_critic(self) -> Critic:
        """The recipe's critic (`critic`, `critic_*`); `critic: self` generates with the policy, collectively."""
        critic = build_critic(self.args, self_generate=self._generate_critique_texts, device=self.accelerator.device)
        if isinstance(critic, EndpointCritic):
            try:
                critic.check()
            except CriticError:
                if self.args.critic_on_error == "raise":
                    raise
                logger.warning("critic endpoint not reachable now; critiques fall back to indicative until it answers")
        return critic

    @property
    def group_size(self) -> int:
        """Episodes per group in the batch being scored: `num_generations` in training, `num_generations_eval` in eval."""
        return self.num_generations if self.model.training else self.num_generations_eval

    # --- hooks -----------------------------------------------------------------------------------------------------

    def judge(self, text: str, row: dict[str, Any]) -> bool | None:
        """Is an attempt correct? Drives early stop, the feedback's verdict, the acc@t metrics and the accuracy reward.

        Rows with a gold `solution`: math-verify. Rows without: the weighted reward of the recipe's reward functions
        against `judge_threshold`, or None (not judged) when no threshold is set."""
        if "solution" in row:
            return judge_accuracy(text, row)
        if self.args.judge_threshold is None:
            return None
        return self._weighted_reward(text, row) >= self.args.judge_threshold

    def _weighted_reward(self, text: str, row: dict[str, Any]) -> float:
        """TRL's weighted reward of one attempt, each reward function called as TRL's `_calculate_rewards` calls it:
        callables with the row's columns as keyword arguments, async callables on TRL's event loop, reward models on
        the prompt followed by the attempt (`_reward_model_score`). Local to this rank (no collective call)."""
        conversational = is_conversational({"prompt": row["prompt"]})
        completion = [{"role": "assistant", "content": text}] if conversational else text
        kwargs = {key: [value] for key, value in row.items() if key not in ("prompt", "completion", "completion_ids")}
        total = 0.0
        functions = zip(self.reward_funcs, self.reward_processing_classes, self.reward_weights.tolist(), strict=True)
        for func, processing_class, weight in functions:
            if isinstance(func, torch.nn.Module):
                value = self._reward_model_score(func, processing_class, row["prompt"], completion)
            else:
                call = partial(
                    func,
                    prompts=[row.get("prompt")],
                    completions=[completion],
                    completion_ids=[self._tokenizer.encode(text, add_special_tokens=False)],
                    trainer_state=self.state,
                    **kwargs,
                )
                if is_async_callable(func):
                    (value,) = asyncio.run_coroutine_threadsafe(call(), self.async_loop).result()
                else:
                    (value,) = call()
            total += weight * (0.0 if value is None else value)
        return total

    def _reward_model_score(self, model: torch.nn.Module, processing_class, prompt, completion) -> float:
        """A reward model's score of one prompt + completion, with the input TRL's `_calculate_rewards` builds:
        the chat template over prompt + completion messages (conversational data), else the two strings joined."""
        if isinstance(completion, list):
            messages = {"messages": prompt + completion}
            text = apply_chat_template(messages, processing_class, **self.chat_template_kwargs)["text"]
        else:
            text = prompt + completion
        encoded = processing_class(text=[text], return_tensors="pt", add_special_tokens=False).to(model.device)
        with torch.inference_mode():
            return model(**encoded).logits[0, 0].item()

    def feedback(self, outcome: AttemptOutcome) -> str | None:
        """The user turn after an attempt; None ends the episode. Default: the configured provider."""
        return self.feedback_provider(outcome)

    def feedback_batch(self, outcomes: list[AttemptOutcome]) -> list[str | None]:
        """The feedback turns after one round of attempts, in one call (a critic answers them as one batch). Called on
        every rank in every round, also with no outcome, since a critic may generate collectively. An overriding
        `feedback` is called per outcome."""
        if type(self).feedback is not MultiAttemptGRPOTrainer.feedback:
            return [self.feedback(outcome) for outcome in outcomes]
        return self.feedback_provider.batch(outcomes)

    def attempt_rewards(self, rewards_per_func: torch.Tensor) -> torch.Tensor:
        """(N, K, F) reward-function values -> (N, K) attempt rewards: TRL's weighted sum (NaN where unscored)."""
        weights = self.reward_weights.to(rewards_per_func.device)  # (F,)
        rewards = (rewards_per_func * weights).nansum(dim=-1)  # (N, K)
        return rewards.masked_fill(torch.isnan(rewards_per_func).all(dim=-1), float("nan"))

    def attempt_advantages(self, rewards: torch.Tensor, episodes: dict[str, list]) -> torch.Tensor:
        """(N, K) attempt rewards -> (N, K) method credit.

        Default, `advantage_mode: grpo`: each attempt's rewards group-normalized on their own (gamma = 0). Under a
        negative-sample mode the rewards are mapped by each attempt's verdict (Zhu et al. 2025): +1 correct, -1 wrong
        (then weighted by `assign_credit`: PSR keeps +1, NSR keeps -1, W-REINFORCE gives +lambda / -1); `oreal`:
        OREAL's reshaping of the verdicts within each group (Lyu et al. 2025)."""
        mode = self.args.advantage_mode
        if not ADVANTAGE_MODES.lookup(mode).verdict_credit:  # grpo
            return per_attempt_advantages(rewards, self.group_size, self.scale_rewards)
        correct = attempt_correctness(episodes["attempt_correct"], rewards.size(1)).to(rewards.device)  # (N, K)
        if mode == "oreal":
            return negative_sample_advantages(
                correct, self.group_size, "oreal", negative_weight=self.args.negative_weight
            )  # (N, K)
        return correctness_advantages(correct)  # (N, K)

    def credit_reads_rewards(self) -> bool:
        """Does `attempt_advantages` use the reward functions' values? The default credit does only in `grpo` mode; an
        overriding `attempt_advantages` is assumed to (override this too if it does not, as UFO does)."""
        return self._has_own_credit or not ADVANTAGE_MODES.lookup(self.args.advantage_mode).verdict_credit

    def kl_coefficients(self, num_attempts: int) -> list[float] | None:
        """A KL coefficient per attempt, or None for TRL's uniform `beta` on every model token."""
        return None

    # --- collective generation (critics that write with the policy) ------------------------------------------------

    def _generate_collective(self, contexts: list[list[int]], max_new_tokens: int):
        """Generate one continuation per context; every rank makes the call with the same number of contexts (padded
        with the batch's shortest prompt), or none of them does when no rank has a context."""
        count = len(contexts)
        target = max_over_ranks(self.accelerator, count)
        if target == 0:
            return [], None
        padded = list(contexts) + [self._current_step().padding_ids] * (target - count)
        ids, logprobs = self._generate_attempt(padded, max_new_tokens, attempt=1)
        return ids[:count], (logprobs[:count] if logprobs is not None else None)

    def _tokenize_messages(self, prompts: list) -> list[list[int]]:
        return [list(ids) for ids in self._tokenize_prompts(prompts)[0]] if prompts else []

    def _generate_critique_texts(self, messages: list[list[dict[str, str]]]) -> list[str]:
        """Self-critique: the policy writes critiques (one collective generation call)."""
        ids, _ = self._generate_collective(self._tokenize_messages(messages), self.args.critic_max_tokens)
        self._critique_tokens += sum(len(i) for i in ids)
        return [self._tokenizer.decode(i, skip_special_tokens=True) for i in ids]

    # --- rollout ---------------------------------------------------------------------------------------------------

    def _generate_attempt(self, contexts, max_new_tokens, attempt):
        """One batched generation call through TRL's backend, with the per-attempt token cap."""
        num_generations = (self.num_generations if self.model.training else self.num_generations_eval) or 1
        with self._attempt_token_cap(max_new_tokens):
            ids, logprobs = self._generate_single_turn(
                contexts, None, {}, num_generations=num_generations if attempt == 0 else 1
            )
        return ids, logprobs

    @contextlib.contextmanager
    def _attempt_token_cap(self, max_new_tokens: int):
        targets = [(self.generation_config, "max_new_tokens")]
        if self.use_vllm:
            targets.append((self.vllm_generation, "max_completion_length"))
        saved = [getattr(obj, name) for obj, name in targets]
        for obj, name in targets:
            setattr(obj, name, max_new_tokens)
        try:
            yield
        finally:
            for (obj, name), value in zip(targets, saved):
                setattr(obj, name, value)

    def _local_rows(self, local_batch_size: int) -> slice:
        """This rank's rows in a batch gathered over ranks (TRL's order: rank 0's rows first)."""
        start = self.accelerator.process_index * local_batch_size
        return slice(start, start + local_batch_size)

    # --- the step: rows -> episodes -> per-attempt rewards -> credit -> per-token advantages -------------------------

    def _generate_and_score_completions(self, inputs):
        """One generation batch, in order (module docstring). TRL's own pass (`super()`) runs steps 1-3 through its two
        callbacks: `rollout_func` (`_rollout_episodes`: rows -> episodes) and `_calculate_rewards` (episodes ->
        per-attempt rewards -> credit), with TRL's old / reference log-probs in between; both fill `step`. Step 4
        spreads the credit over this rank's tokens for the loss (`_compute_loss`, step 5)."""
        step = Step(rows=inputs)
        self._step_in_progress = step  # TRL calls the rollout and the scoring hook without it: they read it here
        try:
            output = super()._generate_and_score_completions(inputs)  # steps 1-3: step.episodes, rewards, advantages
        finally:
            self._step_in_progress = None
        output.update(self.token_advantages(step, output))  # step 4: (B, T) advantages, kl_weights
        return output

    def _current_step(self) -> Step:
        """The generation batch being made; only inside `_generate_and_score_completions`."""
        if self._step_in_progress is None:
            raise RuntimeError(
                "internal: the rollout and the scoring hook run only inside `_generate_and_score_completions`, which "
                "records the batch's rows first."
            )
        return self._step_in_progress

    def _rollout_episodes(self, prompts: list, trainer=None) -> dict[str, Any]:
        """Step 1, rows -> episodes: TRL's `rollout_func`. TRL passes the prompts alone; the rows (gold answers for the
        judge and the feedback) are the step's. Returns TRL's rollout fields plus the episodes' own (`episode_fields`),
        which TRL copies into the rows."""
        step = self._current_step()
        if len(step.rows) != len(prompts):
            raise RuntimeError("internal: the batch rows were not recorded before the rollout.")
        prompt_ids, _, _ = self._tokenize_prompts(prompts)
        step.padding_ids = min(prompt_ids, key=len)
        episodes = run_episodes(
            prompt_ids,
            step.rows,
            generate=self._generate_attempt,
            decode=lambda ids: self._tokenizer.decode(ids, skip_special_tokens=True),
            feedback=self.feedback_batch,
            turns=self.chat_turns,
            spec=self.episode_spec,
            judge=self.judge,
            any_active=partial(any_rank, self.accelerator) if self.accelerator.num_processes > 1 else None,
        )
        logprobs = [ep.logprobs for ep in episodes]
        return {
            "prompt_ids": [ep.prompt_ids for ep in episodes],
            "completion_ids": [ep.completion_ids for ep in episodes],
            "logprobs": None if any(lp is None for lp in logprobs) else logprobs,
            "env_mask": [ep.env_mask for ep in episodes],
            **episode_fields(episodes),
        }

    def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list):
        """Steps 2 and 3, TRL's scoring hook (TRL calls it with the rows, now holding the episodes): every attempt
        scored by the recipe's reward functions, the (N, K) attempt rewards, the credit, the episode metrics and table.
        Returns the last attempt's (N, F) scores, which TRL logs and baselines; its advantages are replaced in step 4.

        The credit is made here rather than after TRL's pass because TRL flushes the completions table right after this
        hook, and the table shows each attempt's advantage."""
        step = self._current_step()
        device = self.accelerator.device
        step.episodes = {key: gather_object([row[key] for row in inputs]) for key in self.episode_keys}
        num_made = torch.tensor([len(t) for t in step.episodes["attempt_texts"]], device=device)  # (N,) attempts made
        rewards_per_func = self._score_attempts(step, inputs, prompts, completions, completion_ids_list, num_made)
        step.rewards = self.attempt_rewards(rewards_per_func)  # (N, K)
        step.advantages = self.assign_credit(step.rewards, step.episodes)  # (N, K)
        if self.unscored_batches.check(rewards_per_func[:, 0], self.reward_func_names):  # every episode made attempt 1
            step.advantages.zero_()  # as in TRL: an unscored batch contributes no policy gradient
        self._log_episodes(step)
        self._log_feedback_critic()
        return rewards_per_func[torch.arange(len(num_made), device=device), num_made - 1]  # (N, F)

    def _score_attempts(self, step: Step, inputs, prompts, completions, completion_ids_list, num_made) -> torch.Tensor:
        """Step 2: (N, K, F) reward-function values, gathered over ranks; each attempt scored from its own text by
        TRL's own `_calculate_rewards`, with the judge's verdict as `judged_correct`. NaN: an attempt never made."""
        conversational = isinstance(completions[0], list)
        per_attempt = []
        for k in range(self.args.max_attempts):
            # An attempt never made (the episode stopped) is scored on the last one made and discarded below, so no
            # reward function sees an empty attempt and TRL does not warn that they all returned None for it.
            made = [min(k, len(row["attempt_texts"]) - 1) for row in inputs]
            texts = [row["attempt_texts"][j] for row, j in zip(inputs, made)]
            ids = [
                completion_ids_list[i][slice(*row["attempt_spans"][j])] for i, (row, j) in enumerate(zip(inputs, made))
            ]
            attempt_completions = [[{"role": "assistant", "content": t}] for t in texts] if conversational else texts
            judged = [{**row, "judged_correct": _at(row.get("attempt_judged"), j)} for row, j in zip(inputs, made)]
            step.scoring_attempt = k  # names what the reward functions log (`_log_completion_extra`, `_log_metric`)
            try:
                scores = super()._calculate_rewards(judged, prompts, attempt_completions, ids)  # (N, F), gathered
            finally:
                step.scoring_attempt = None
            scores[num_made <= k] = float("nan")  # attempt k never made
            per_attempt.append(scores)
        return torch.stack(per_attempt, dim=1)  # (N, K, F)

    def _attempt_being_scored(self) -> int | None:
        """k while attempt k of a multi-attempt episode is scored (step 2), else None (TRL's log names unchanged)."""
        step = self._step_in_progress
        if step is None or self.args.max_attempts == 1:
            return None
        return step.scoring_attempt

    def _log_completion_extra(self, column: str, values: list):
        """TRL's `log_extra` for reward functions; while attempt k is scored the column is `<column>_<k+1>` (as the
        table's `attempt_<k+1>`), so that K calls do not write K rows per sample into one column."""
        k = self._attempt_being_scored()
        super()._log_completion_extra(column if k is None else f"{column}_{k + 1}", values)

    def _log_metric(self, name: str, value: float):
        """TRL's `log_metric` for reward functions; while attempt k is scored the metric is `<name>_t<k+1>`."""
        k = self._attempt_being_scored()
        super()._log_metric(name if k is None else f"{name}_t{k + 1}", value)

    def assign_credit(self, rewards: torch.Tensor, episodes: dict[str, list]) -> torch.Tensor:
        """Step 3, the credit: (N, K) attempt rewards of the gathered batch -> (N, K) attempt advantages.

        1. the method's credit, `attempt_advantages` (a subclass's override is always called);
        2. the advantage mode: PSR / NSR / W-REINFORCE keep or weight the credit's positive and negative parts
           (`grpo` and `oreal`: unchanged, OREAL being a credit of its own, made in step 1);
        3. R3L positive amplification (`positive_advantage_scale`, 1.0: off).
        Spreading over tokens and the per-attempt KL weights follow in `token_advantages`."""
        advantages = self.attempt_advantages(rewards, episodes)  # (N, K)
        advantages = sign_weighted_advantages(advantages, self.args.advantage_mode, self.args.positive_weight)
        return scale_positive_advantages(advantages, self.args.positive_advantage_scale)  # (N, K)

    def token_advantages(self, step: Step, output: dict[str, Any]) -> dict[str, torch.Tensor]:
        """Step 4: this rank's rows of the step's (N, K) attempt advantages as (B, T) `advantages` (attempt k's tokens
        carry attempt k's advantage, feedback tokens 0), and, when the method gives a KL coefficient per attempt, the
        (B, T) `kl_weights` the loss uses."""
        device = output["completion_ids"].device
        num_tokens = output["completion_ids"].size(1)
        spans = [row["attempt_spans"] for row in step.rows]
        attempt_advantages = step.advantages[self._local_rows(len(step.rows))].to(device)  # (B, K)
        out = {"advantages": spread_over_attempts(attempt_advantages, spans, num_tokens)}  # (B, T)
        coefficients = self.kl_coefficients(self.args.max_attempts)
        if coefficients is not None:
            per_attempt = torch.tensor([coefficients] * len(step.rows), device=device)  # (B, K)
            out["kl_weights"] = spread_over_attempts(per_attempt, spans, num_tokens)  # (B, T)
        return out

    # --- metrics ---------------------------------------------------------------------------------------------------
    def _log_feedback_critic(self) -> None:
        """`feedback: critic` with a generating critic: this step's critique rates, summed over ranks (collective)."""
        critic = getattr(self.feedback_provider, "critic", None)
        if not isinstance(critic, ModelCritic):
            return
        device = self.accelerator.device
        totals = self.accelerator.reduce(torch.tensor(critic.stats.counts(), dtype=torch.float32, device=device))
        logged = torch.zeros_like(totals) if self._critic_counts_logged is None else self._critic_counts_logged
        self._critic_counts_logged = totals  # the counters only grow: each step logs its own difference
        metrics = self._metrics["train" if self.model.training else "eval"]
        for name, rate in critique_rates((totals - logged).tolist()).items():
            metrics[f"selfcorrect/{name}"].append(rate)

    def _log_episodes(self, step: Step) -> None:
        """The step's episode metrics (`selfcorrect/*`) and completions-table columns (one per attempt)."""
        rewards, episodes = step.rewards, step.episodes  # (N, K), gathered fields
        mode = "train" if self.model.training else "eval"
        metrics = self._metrics[mode]
        correct = episodes["attempt_correct"]
        num_attempts = self.args.max_attempts
        filled = carry_forward(correct, num_attempts)  # (N, K) an attempt never made keeps the last outcome
        judged = any(c is not None for episode in correct for c in episode)  # rows without gold and no threshold: no
        for k in range(num_attempts):
            if judged:
                metrics[f"selfcorrect/acc_t{k + 1}"].append(sum(bool(f[k]) for f in filled) / len(filled))
            made = rewards[:, k][~torch.isnan(rewards[:, k])]
            if made.numel():
                metrics[f"selfcorrect/reward_t{k + 1}"].append(made.mean().item())
        if num_attempts >= 2 and judged:
            table = self_correction_metrics([f[0] for f in filled], [f[-1] for f in filled])
            metrics["selfcorrect/delta"].append(table["delta"])
            metrics["selfcorrect/delta_i2c"].append(table["delta_i2c"])
            metrics["selfcorrect/delta_c2i"].append(table["delta_c2i"])
        metrics["selfcorrect/attempts_mean"].append(sum(len(c) for c in correct) / len(correct))
        answers = [[a.strip() for a in ep if a] for ep in episodes["attempt_answers"]]
        ratios = [len(set(a)) / len(a) for a in answers if a]
        if ratios:
            metrics["selfcorrect/distinct_answer_ratio"].append(sum(ratios) / len(ratios))
        made_advantages = step.advantages[~torch.isnan(rewards)]
        if made_advantages.numel():
            metrics["selfcorrect/zero_advantage_frac"].append((made_advantages == 0).float().mean().item())
        truncated = [t for ep in episodes["attempt_truncated"] for t in ep]
        metrics["selfcorrect/truncated_attempts"].append(sum(truncated) / max(len(truncated), 1))

        # Completions table: one column per attempt, its feedback, reward and advantage. TRL gathers these columns
        # from every rank, so each rank logs its own rows.
        local = self._local_rows(len(correct) // self.accelerator.num_processes)
        texts, fb = episodes["attempt_texts"][local], episodes["feedback_texts"][local]
        for k in range(num_attempts):
            self._pending_extra_logs[f"attempt_{k + 1}"].extend([t[k] if k < len(t) else "" for t in texts])
            self._pending_extra_logs[f"reward_{k + 1}"].extend(rewards[local, k].tolist())
            self._pending_extra_logs[f"advantage_{k + 1}"].extend(step.advantages[local, k].tolist())
            if k + 1 < num_attempts:
                self._pending_extra_logs[f"feedback_{k + 1}"].extend([f[k] if k < len(f) else "" for f in fb])

    # --- loss ------------------------------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _trl_loss_parts(self, *, own_kl: bool):
        """The one place where this package reaches inside TRL's `_compute_loss` (TRL 1.16 has no hook for either):

        - it yields a dict that receives `logps`, the (B, T) policy log-probs TRL's loss forward computes (recorded by
          `_get_per_token_logps_and_entropies` while the dict is open), so that terms added to TRL's loss (the
          per-attempt KL, Critique-GRPO's policy shaping) use the same forward, with gradient;
        - with `own_kl`, TRL's `beta` reads 0.0 for the call (restored after, also on error): TRL adds `beta * KL`
          with one scalar `beta`, and only when `beta != 0.0`, so a KL coefficient per token has no way in, and the
          caller adds the weighted KL itself. (Folding the weights into TRL's KL term instead would also multiply it
          by TRL's `use_bias_correction_kl` importance ratio, which the per-attempt KL does not have: the gradient
          would change.)

        Nested uses (a method's term over a batch with per-attempt KL) share one dict."""
        outer, beta = self._loss_parts, self.beta
        parts = outer if outer is not None else {}
        self._loss_parts = parts
        if own_kl:
            self.beta = 0.0
        try:
            yield parts
        finally:
            self._loss_parts, self.beta = outer, beta

    def _get_per_token_logps_and_entropies(self, model, input_ids, attention_mask, logits_to_keep, *args, **kwargs):
        """TRL's log-probs (`_length_grouped_logps`); inside `_trl_loss_parts`, the log-probs are recorded there."""
        logps, entropies, aux = self._length_grouped_logps(
            model, input_ids, attention_mask, logits_to_keep, *args, **kwargs
        )
        if self._loss_parts is not None:  # TRL's loss forward, for the terms added to its loss
            self._loss_parts["logps"] = logps  # (B, T)
        return logps, entropies, aux

    def _length_grouped_logps(self, model, input_ids, attention_mask, logits_to_keep, *args, **kwargs):
        """TRL's log-probs, computed per length group when a batch mixes very different lengths (RISE's verification
        rows beside solutions): each group is trimmed to its own prompt and completion widths, so short rows are not
        padded to the long ones (`two_length_groups`). Attention only sees relative positions (RoPE), so the values are
        TRL's up to float rounding (tested). Multimodal inputs and MoE aux losses take TRL's path unchanged."""
        extra, multimodal = logps_call_options(args, kwargs)
        prompt_width = input_ids.size(1) - logits_to_keep
        prompt_lengths, completion_lengths = row_lengths(
            attention_mask[:, :prompt_width], attention_mask[:, prompt_width:]
        )
        groups = two_length_groups(prompt_lengths, completion_lengths, self.length_group_min_saving)
        if multimodal or len(groups) == 1:
            return self._logps_forward(model, input_ids, attention_mask, logits_to_keep, **extra)
        logps, entropies = [], []
        for rows in groups:
            index = torch.tensor(rows, device=input_ids.device)
            left = prompt_width - max(prompt_lengths[i] for i in rows)  # columns of left padding in every row
            keep = max(1, max(completion_lengths[i] for i in rows))
            columns = slice(left, prompt_width + keep)
            group_logps, group_entropies, _ = self._logps_forward(
                model, input_ids[index, columns], attention_mask[index, columns], keep, **extra
            )  # (g, keep)
            pad = (0, logits_to_keep - keep)
            logps.append(torch.nn.functional.pad(group_logps, pad))  # (g, T)
            if group_entropies is not None:
                entropies.append(torch.nn.functional.pad(group_entropies, pad))
        grouped_order = [i for rows in groups for i in rows]
        position = {row: k for k, row in enumerate(grouped_order)}
        restore = torch.tensor([position[i] for i in range(input_ids.size(0))], device=input_ids.device)  # (B,)
        logps_out = torch.cat(logps)[restore]  # (B, T)
        entropies_out = torch.cat(entropies)[restore] if entropies else None
        return logps_out, entropies_out, None

    def _logps_forward(self, model, input_ids, attention_mask, logits_to_keep, **extra):
        """One call of TRL's log-probs (a verifying trainer computes a shared prompt once here)."""
        return super()._get_per_token_logps_and_entropies(model, input_ids, attention_mask, logits_to_keep, **extra)

    def _reduce_like_trl(self, per_token: torch.Tensor, mask: torch.Tensor, inputs) -> torch.Tensor:
        """A (B, T) loss term reduced with the normalization TRL's `_compute_loss` gives its policy loss."""
        training = self.model.training
        return aggregate_token_loss(
            per_token,
            mask,
            self.loss_type,
            max_completion_length=self.max_completion_length,
            num_items_in_batch=inputs["num_items_in_batch"],
            num_processes=self.accelerator.num_processes,
            gradient_accumulation_steps=self.current_gradient_accumulation_steps if training else 1,
            steps_per_generation=self.args.steps_per_generation if training else 1,
        )

    def _compute_loss(self, model, inputs):
        """Step 5: TRL's loss over the (B, T) advantages; with per-attempt KL coefficients (`kl_weights`), TRL's
        uniform KL is replaced by the weighted one, reduced as TRL reduces its policy loss."""
        if "kl_weights" not in inputs:
            return super()._compute_loss(model, inputs)
        with self._trl_loss_parts(own_kl=True) as parts:
            loss = super()._compute_loss(model, inputs)
        logps, ref_logps = parts["logps"], inputs["ref_per_token_logps"]  # (B, T) each
        per_token_kl = torch.exp(ref_logps - logps) - (ref_logps - logps) - 1  # (B, T), TRL's k3 estimator
        mask = inputs["completion_mask"] * inputs.get("tool_mask", 1)  # (B, T)
        kl_term = self._reduce_like_trl(inputs["kl_weights"] * per_token_kl, mask, inputs)
        totals = self.accelerator.reduce(torch.stack([(per_token_kl * mask).sum(), mask.sum().float()]).detach())
        mode = "train" if self.model.training else "eval"
        self._metrics[mode]["kl"].append((totals[0] / totals[1].clamp(min=1.0)).item())
        return loss + kl_term


def attempt_correctness(correct: list[list[bool | None]], num_attempts: int) -> torch.Tensor:
    """(N, K) float tensor: 1 correct, 0 wrong (a gold that does not parse counts as wrong), NaN attempt not made."""
    rows = [[float(bool(c[k])) if k < len(c) else float("nan") for k in range(num_attempts)] for c in correct]
    return torch.tensor(rows, dtype=torch.float32)


def _at(values: list | None, k: int):
    return values[k] if values is not None and k < len(values) else None


# Reward functions whose value is the judge's verdict (`judged_correct`): accepted by methods whose credit is the verdict.
VERDICT_REWARDS = ("accuracy", "accuracy_reward")


def episode_fields(episodes: list[Episode]) -> dict[str, list]:
    """Per-episode bookkeeping as per-sample lists: TRL copies them into the batch rows and reward-function kwargs."""
    return {key: [getattr(ep, key) for ep in episodes] for key in EPISODE_KEYS}


register_method("multi_attempt", MultiAttemptGRPOTrainer, MultiAttemptConfig)
