"""Critique-GRPO: online GRPO whose groups also contain refinements written after a critique.

    python -m selfcorrect.train --config recipes/demo/critique_grpo.yaml

Critique-GRPO — Zhang et al. 2025, "Critique-GRPO: Advancing LLM Reasoning with Natural Language and Numerical
Feedback". The policy samples G responses per question; wrong responses get a critique (see `selfcorrect.critics`:
indicative, indicative + ground truth, self-critique, a separate critic model or an OpenAI-compatible endpoint), the
policy writes a refinement from (question, failed response, critique), and refinements join the group.
How it differs from GRPO:
- group composition: in the refined groups (paper: groups with no correct response, `refine_groups: no_correct`; the
  public code: every group, `all`) k = `num_refinements` refinements (paper: 1 of G = 8) replace the wrong responses
  they refine, correct refinements preferred; the group holds n = G - k responses + k refinements, so batch shapes,
  the loss normalizer and the rank layout are those of plain GRPO;
- advantages: `A = R - mean(R over the n responses and k refinements)`, no std division (`scale_rewards: none`);
- refinement tokens are scored as a continuation of the ORIGINAL question (the refinement prompt is never in the
  loss's context) and weighted by the policy-shaping weight `rho = pi / (pi + gamma)` (`shaping_gamma`, 0.1) in place
  of the clipped importance ratio, without clipping; sampled responses keep TRL's clipped objective;
- no KL (`beta: 0`) and Dr. GRPO aggregation (`loss_type: dr_grpo`: sum over tokens / (B * max_completion_length)).

Everything that is per group is computed on rows gathered over ranks (a group can span ranks), and every rank makes
the same generation calls with the same number of contexts (padded), as multi-process generation requires.
Subclass hooks (besides `MultiAttemptGRPOTrainer`'s): `refinement_prompt(row, response, critique)` and
`critique_request(row, response, answer, correct)`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from accelerate.utils import gather_object

from ..algos import (
    REFINE_GROUPS,
    choose_refinements,
    mixed_group_advantages,
    policy_shaping_loss,
    policy_shaping_weight,
    refinement_candidates,
)
from ..critics import Critic, CritiqueRequest, ModelCritic, critique_rates, validate_critic_settings
from ..episodes import attempt_verdict
from ..feedback import check_template, fill_template
from ..rewards import extract_boxed, question_text
from .base import MultiAttemptConfig, MultiAttemptGRPOTrainer, Step
from .registry import register_method

logger = logging.getLogger("selfcorrect")

# The paper's refinement instruction: question, previous solution, critique; fix the named errors, reason step by
# step, final answer in \boxed{}.
REFINEMENT_TEMPLATE = (
    "{question}\n\n"
    "Here is a previous solution to this problem:\n{response}\n\n"
    "Here is a critique of that solution:\n{critique}\n\n"
    "Write a new, correct solution. Fix the errors the critique points out, reason step by step, and put the final "
    "answer inside \\boxed{}."
)
REFINEMENT_PLACEHOLDERS = frozenset({"question", "response", "critique"})


def check_refinement_template(template: str) -> str:
    """The refinement prompt needs {question}, {response} and {critique}; other braces (\\boxed{}) are literal."""
    return check_template(template, REFINEMENT_PLACEHOLDERS, "refinement_template", allowed=REFINEMENT_PLACEHOLDERS)


@dataclass
class CritiqueGRPOConfig(MultiAttemptConfig):
    """Critique-GRPO; defaults follow Zhang et al. 2025 (k = 1 refinement in groups with no correct response,
    gamma = 0.1, no std scaling, no KL, Dr. GRPO aggregation)."""

    own_credit: ClassVar[str | None] = "Critique-GRPO's mixed-group credit"

    max_attempts: int = field(default=1, metadata={"help": "One sampled attempt per row (refinements replace rows)."})
    beta: float = field(default=0.0, metadata={"help": "KL coefficient (the paper uses none)."})
    loss_type: str = field(default="dr_grpo", metadata={"help": "TRL loss type; the paper aggregates as Dr. GRPO."})
    scale_rewards: str = field(default="none", metadata={"help": "No std division of advantages (the paper)."})
    num_refinements: int = field(
        default=1, metadata={"help": "k: refinements placed into each refined group, 1 <= k < num_generations."}
    )
    refine_groups: str = field(
        default="no_correct",
        metadata={"help": "no_correct: refine only groups without a correct response (paper); all: every group."},
    )
    max_refinements_per_group: int | None = field(
        default=None,
        metadata={
            "help": "Refinements generated per refined group (one per wrong response, the first ones), from which "
            "k are placed, correct ones first; null: one for every wrong response."
        },
    )
    refinement_template: str = field(
        default=REFINEMENT_TEMPLATE,
        metadata={"help": "User turn of the refinement prompt; must contain {question}, {response} and {critique}."},
    )
    shaping_gamma: float = field(
        default=0.1, metadata={"help": "gamma of the policy-shaping weight pi / (pi + gamma) on refinement tokens."}
    )

    def __post_init__(self):
        super().__post_init__()
        if self.max_attempts != 1:
            raise ValueError(
                f"Critique-GRPO samples one attempt per row: `max_attempts` must be 1; got {self.max_attempts}."
            )
        if not 1 <= self.num_refinements < self.num_generations:
            raise ValueError(
                f"`num_refinements` (k = {self.num_refinements}) must be at least 1 and less than `num_generations` "
                f"(G = {self.num_generations}): a group keeps G - k >= 1 sampled responses."
            )
        if self.refine_groups not in REFINE_GROUPS:
            raise ValueError(f"`refine_groups` must be one of {', '.join(REFINE_GROUPS)}; got {self.refine_groups!r}.")
        if self.max_refinements_per_group is not None and self.max_refinements_per_group < self.num_refinements:
            raise ValueError(
                f"`max_refinements_per_group` ({self.max_refinements_per_group}) must be at least `num_refinements` "
                f"({self.num_refinements}), or null."
            )
        if self.shaping_gamma <= 0:
            raise ValueError(f"`shaping_gamma` must be positive (paper 0.1); got {self.shaping_gamma}.")
        check_refinement_template(self.refinement_template)
        validate_critic_settings(self)


class CritiqueGRPOTrainer(MultiAttemptGRPOTrainer):
    """Critique-GRPO (Zhang et al. 2025) on TRL's GRPO: see the module docstring for how it differs from GRPO."""

    _tag_names = ["trl", "grpo", "selfcorrect", "critique-grpo"]
    episode_keys = (*MultiAttemptGRPOTrainer.episode_keys, "is_refinement")  # gathered: which rows hold a refinement

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.critic: Critic = self.build_critic()

    # --- hooks -----------------------------------------------------------------------------------------------------

    def critique_request(self, row: dict[str, Any], response: str, answer: str | None, correct: bool | None):
        """What the critic is asked about one response."""
        return CritiqueRequest(
            question=question_text(row["prompt"]),
            response=response,
            correct=correct,
            solution=str(row.get("solution", "")),
            answer=answer,
        )

    def refinement_prompt(self, row: dict[str, Any], response: str, critique: str):
        """The prompt the policy refines from: the original system turn, then the filled `refinement_template`."""
        prompt = row["prompt"]
        text = fill_template(
            self.args.refinement_template, question=question_text(prompt), response=response, critique=critique
        )
        if isinstance(prompt, list):
            return [dict(m) for m in prompt if m.get("role") == "system"] + [{"role": "user", "content": text}]
        return text

    # --- rollout ---------------------------------------------------------------------------------------------------

    def _rollout_episodes(self, prompts: list, trainer=None) -> dict[str, Any]:
        output = super()._rollout_episodes(prompts)
        rows, size = self._current_step().rows, len(prompts)
        responses = [texts[0] for texts in output["attempt_texts"]]
        output.update(
            is_refinement=[False] * size, response=list(responses), critique=[""] * size, refinement=[""] * size
        )
        if not self.model.training:  # evaluation: plain sampled responses
            return output

        device = self.accelerator.device
        group = self.num_generations
        correct = [c[0] for c in output["attempt_correct"]]
        response_tokens = sum(len(ids) for ids in output["completion_ids"])  # before any is replaced
        all_correct = torch.tensor([float(bool(c)) for c in gather_object(correct)], device=device)  # (N,)
        candidates = refinement_candidates(
            all_correct, group, self.args.refine_groups, self.args.max_refinements_per_group
        )  # (N,)
        local = self._local_rows(size)
        mine = candidates[local].nonzero().flatten().tolist()  # local row indices with a refinement to write

        critique_tokens_before = self._critique_tokens  # a running count (`critic: self` writes with the policy)
        self.critic.stats.reset()
        requests = [
            self.critique_request(rows[i], responses[i], output["attempt_answers"][i][0], correct[i]) for i in mine
        ]
        critiques = self.critic.critique(requests)
        critique_tokens = self._critique_tokens - critique_tokens_before
        contexts = self._tokenize_messages(
            [self.refinement_prompt(rows[i], responses[i], c.text) for i, c in zip(mine, critiques)]
        )
        ids, _ = self._generate_collective(contexts, self.args.max_attempt_length)

        refined: dict[int, dict[str, Any]] = {}
        local_refined_correct = [float("nan")] * size
        for i, critique, tokens in zip(mine, critiques, ids):
            tokens = list(tokens)
            text = self._tokenizer.decode(tokens, skip_special_tokens=True)
            truncated = not self.chat_turns.ends_attempt(tokens)
            judged = self.judge(text, rows[i])
            verdict = bool(attempt_verdict(judged, truncated))
            refined[i] = dict(
                ids=tokens, text=text, correct=verdict, judged=judged, truncated=truncated, critique=critique.text
            )
            local_refined_correct[i] = float(verdict)
        all_refined_correct = torch.tensor(gather_object(local_refined_correct), device=device)  # (N,) NaN: none
        placed = choose_refinements(candidates, all_refined_correct, group, self.args.num_refinements)  # (N,)

        for i in placed[local].nonzero().flatten().tolist():
            r = refined[i]
            # The refinement's tokens go under the ORIGINAL prompt ids: the loss scores them as a continuation of
            # the question, never of the refinement prompt.
            output["completion_ids"][i] = r["ids"]
            output["env_mask"][i] = [1] * len(r["ids"])
            if output["logprobs"] is not None:
                # Sampled under another context: NaN sampling log-probs make TRL's vLLM importance weight exactly 1.
                output["logprobs"][i] = [float("nan")] * len(r["ids"])
            output["attempt_spans"][i] = [(0, len(r["ids"]))]
            output["attempt_texts"][i] = [r["text"]]
            output["attempt_answers"][i] = [extract_boxed(r["text"])]
            output["attempt_correct"][i] = [r["correct"]]
            output["attempt_judged"][i] = [r["judged"]]
            output["attempt_truncated"][i] = [r["truncated"]]
            output["is_refinement"][i] = True
            output["critique"][i] = r["critique"]
            output["refinement"][i] = r["text"]
        for i in mine:  # critiques of refinements that were not placed still show in the table
            output["critique"][i] = refined[i]["critique"]
        self._log_refinements(
            all_correct, candidates, all_refined_correct, placed, ids, response_tokens, critique_tokens
        )
        return output

    def _log_refinements(self, correct, candidates, refined_correct, placed, ids, response_tokens, critique_tokens):
        metrics = self._metrics["train"]
        device = self.accelerator.device
        group = self.num_generations
        stats = self.critic.stats
        local = torch.tensor(
            [*stats.counts(), sum(len(i) for i in ids), response_tokens, critique_tokens],
            dtype=torch.float32,
            device=device,
        )
        totals = self.accelerator.reduce(local, reduction="sum").tolist()
        *critic_counts, refine_tokens, response_tokens, critique_tokens = totals
        metrics["selfcorrect/acc_responses"].append(correct.mean().item())
        metrics["selfcorrect/refined_group_frac"].append(placed.view(-1, group).any(dim=1).float().mean().item())
        metrics["selfcorrect/refinements_generated"].append(float(candidates.sum().item()))
        metrics["selfcorrect/refinements_placed"].append(float(placed.sum().item()))
        metrics["selfcorrect/response_tokens"].append(response_tokens)  # sampled, summed over ranks
        metrics["selfcorrect/refinement_tokens"].append(refine_tokens)  # every refinement generated, placed or not
        if candidates.any():
            metrics["selfcorrect/refinement_success"].append(refined_correct[candidates].mean().item())
        if isinstance(self.critic, ModelCritic):
            metrics["selfcorrect/critique_tokens"].append(critique_tokens)
            for name, rate in critique_rates(critic_counts).items():
                metrics[f"selfcorrect/{name}"].append(rate)

    # --- scoring ---------------------------------------------------------------------------------------------------

    def attempt_advantages(self, rewards: torch.Tensor, episodes: dict[str, list]) -> torch.Tensor:
        """(N, 1) rewards of the mixed groups -> (N, 1) advantages `R - mean(group)` (no std by default)."""
        return mixed_group_advantages(rewards[:, 0], self.group_size, self.scale_rewards).unsqueeze(1)

    def _log_episodes(self, step: Step) -> None:
        super()._log_episodes(step)
        if self.model.training:
            values = step.rewards[:, 0]  # (N,)
            placed = torch.tensor(step.episodes["is_refinement"], dtype=torch.bool, device=values.device)  # (N,)
            metrics = self._metrics["train"]
            if placed.any():
                metrics["selfcorrect/reward_refinements"].append(values[placed].nanmean().item())
            if (~placed).any():
                metrics["selfcorrect/reward_responses"].append(values[~placed].nanmean().item())
        # Completions table: the sampled response, its critique and the refinement that replaced it (if any).
        for column in ("response", "critique", "refinement"):
            self._pending_extra_logs[column].extend([row.get(column, "") for row in step.rows])

    def _generate_and_score_completions(self, inputs):
        output = super()._generate_and_score_completions(inputs)
        device = output["completion_ids"].device
        flags = [bool(row.get("is_refinement")) for row in inputs]
        flags += [False] * (output["completion_ids"].size(0) - len(flags))  # rows other features add (RISE)
        output["refinement_mask"] = torch.tensor(flags, device=device)  # (B,)
        return output

    # --- loss ------------------------------------------------------------------------------------------------------

    def _compute_loss(self, model, inputs):
        """TRL's loss on the sampled responses; the policy-shaping term `-A * rho` on refinement rows, added with the
        same normalization (TRL's term is zero there: their advantages are zeroed for it)."""
        refine = inputs["refinement_mask"].bool()  # (B,)
        advantages = inputs["advantages"]  # (B, T)
        if advantages.dim() == 1:
            advantages = advantages.unsqueeze(1).expand_as(inputs["completion_ids"])
        trl_inputs = {**inputs, "advantages": advantages.masked_fill(refine.unsqueeze(1), 0.0)}
        with self._trl_loss_parts(own_kl=False) as parts:
            loss = super()._compute_loss(model, trl_inputs)
        logps = parts["logps"]  # (B, T) current policy, refinement tokens under the original prompt
        mask = inputs["completion_mask"] * inputs.get("tool_mask", 1)  # (B, T) the loss mask TRL used
        rows = refine.unsqueeze(1).to(logps.dtype)  # (B, 1)
        shaping = policy_shaping_loss(logps, advantages, self.args.shaping_gamma) * rows  # (B, T)
        shaping_term = self._reduce_like_trl(shaping, mask, inputs)
        mode = "train" if self.model.training else "eval"
        with torch.no_grad():
            rho = policy_shaping_weight(logps, self.args.shaping_gamma)  # (B, T)
            weight = mask * rows  # (B, T) refinement tokens
            totals = self.accelerator.reduce(torch.stack([(rho * weight).sum(), weight.sum().float()]), "sum")
        if totals[1] > 0:
            self._metrics[mode]["selfcorrect/shaping_weight_mean"].append((totals[0] / totals[1]).item())
        return loss + shaping_term


register_method("critique_grpo", CritiqueGRPOTrainer, CritiqueGRPOConfig)
