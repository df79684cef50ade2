"""Run safety: no silent corruption, no lost work.

- `NonFiniteGradientGuard` (a `TrainerCallback`): before each optimizer step, if any gradient is NaN or inf (on any
  rank), the step is skipped (gradients dropped, so the optimizer leaves weights and moments untouched) with a warning;
  after `max_nonfinite_steps` skipped steps in a row the run stops with `NonFiniteTrainingError`. Skipped steps are
  logged as `selfcorrect/skipped_steps`. Under DeepSpeed ZeRO the engine owns the (partitioned) gradients, the guard
  sees none of them, and DeepSpeed's own overflow handling applies.
- `UnscoredBatches` / `RewardBatchGuard` (a `GRPOTrainer` mixin): a batch in which every reward function returned
  None for every sample follows the non-finite step's policy. TRL warns (its own per-row warning, kept) and trains on
  zero rewards, which gives every sample advantage 0: no policy gradient. We add a warning naming the functions and
  the count, make sure the batch's advantages are 0 in every trainer (a verdict-based credit would otherwise push
  down every "wrong" sample of an unscorable batch), and stop the run with `RewardFunctionError` after
  `max_unscored_batches` (default 3) such batches in a row, since that means the scoring is broken (gold answers that
  do not parse, a reward function that never applies).
- `ZeroSignalWarning` (a `TrainerCallback`): a logged step in which every group had zero advantage (all wrong, all
  right, or truncated: `zero_signal_reason` reads our `selfcorrect/zero_advantage_frac` or TRL's
  `frac_reward_zero_std`) trains nothing; the console's step line says so and why, and after `zero_signal_warn_steps`
  such steps in a row a warning names the likely cause and the recipe field to change. Unscored batches are left to
  `UnscoredBatches`, which already warns about them.
- `last_complete_checkpoint(output_dir)`: the newest `checkpoint-N` whose `trainer_state.json` (written last by the
  Trainer, after model, optimizer, scheduler and RNG states) is present and valid, so a crash while a checkpoint is
  being written resumes from the previous one instead of failing to load a partial one.
"""

from __future__ import annotations

import json
import logging
import math
import re
from pathlib import Path
from typing import Any

import torch
from transformers import TrainerCallback

from .collective import any_rank
from .errors import NonFiniteTrainingError, RewardFunctionError

logger = logging.getLogger(__name__)


class NonFiniteGradientGuard(TrainerCallback):
    """Skip optimizer steps whose gradients are not finite; stop after `max_consecutive` of them in a row."""

    def __init__(self, max_consecutive: int = 3, accelerator=None):
        if max_consecutive < 1:
            raise ValueError(f"`max_nonfinite_steps` must be at least 1; got {max_consecutive}.")
        self.max_consecutive = max_consecutive
        self.accelerator = accelerator
        self.consecutive = 0
        self.skipped_steps: list[int] = []

    def on_pre_optimizer_step(self, args, state, control, model=None, **kwargs):
        params = [p for p in model.parameters() if p.grad is not None] if model is not None else []
        local_bad = any(not torch.isfinite(p.grad).all() for p in params)
        if not any_rank(self.accelerator, local_bad):
            self.consecutive = 0
            return
        for p in params:  # torch optimizers skip parameters without a gradient: weights and moments stay as they are
            p.grad = None
        self.consecutive += 1
        step = state.global_step + 1
        self.skipped_steps.append(step)
        logger.warning(
            "step %d: non-finite gradients, optimizer step skipped (%d in a row, limit `max_nonfinite_steps` = %d)",
            step,
            self.consecutive,
            self.max_consecutive,
        )
        if self.consecutive >= self.max_consecutive:
            raise NonFiniteTrainingError(
                f"gradients were NaN/inf for {self.consecutive} optimizer steps in a row (steps "
                f"{self.skipped_steps[-self.consecutive :]}); the weights are those of step {step - self.consecutive}. "
                "Lower the learning rate, check the rewards and the data, or raise `max_nonfinite_steps`."
            )

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs is not None and "loss" in logs:
            logs["selfcorrect/skipped_steps"] = float(len(self.skipped_steps))


class UnscoredBatches:
    """Count generation batches that no reward function scored; warn on each, raise after `limit` in a row."""

    def __init__(self, limit: int = 3):
        if limit < 1:
            raise ValueError(f"`max_unscored_batches` must be at least 1; got {limit}.")
        self.limit = limit
        self.in_a_row = 0
        self.total = 0

    def check(self, rewards_per_func: torch.Tensor, names: list[str]) -> bool:
        """(N, F) gathered rewards, NaN where a function returned None. True: this batch is unscored (warned)."""
        if not rewards_per_func.numel() or not torch.isnan(rewards_per_func).all():
            self.in_a_row = 0
            return False
        self.in_a_row += 1
        self.total += 1
        if self.in_a_row >= self.limit:
            check_rewards_scored(rewards_per_func, names, in_a_row=self.in_a_row)
        logger.warning(
            "every reward function (%s) returned None for all %d samples of this batch: it contributes no policy "
            "gradient (%d such batches in a row; the run stops at `max_unscored_batches` = %d)",
            ", ".join(names),
            rewards_per_func.size(0),
            self.in_a_row,
            self.limit,
        )
        return True


class RewardBatchGuard:
    """Mixin for `GRPOTrainer` subclasses: the unscored-batch policy of `UnscoredBatches` (TRL's zero rewards already
    give such a batch advantage 0)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.unscored_batches = UnscoredBatches(getattr(self.args, "max_unscored_batches", 3))  # TRL's config: 3

    def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list):
        rewards_per_func = super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)  # (N, F)
        self.unscored_batches.check(rewards_per_func, self.reward_func_names)
        return rewards_per_func


def check_rewards_scored(rewards_per_func: torch.Tensor, names: list[str], in_a_row: int = 1) -> None:
    """(N, F) gathered rewards with NaN where a function returned None: all NaN is an error naming the functions."""
    if rewards_per_func.numel() and torch.isnan(rewards_per_func).all():
        raise RewardFunctionError(
            f"every reward function ({', '.join(names)}) returned None for all {rewards_per_func.size(0)} samples of "
            f"{'this batch' if in_a_row == 1 else f'{in_a_row} batches in a row'}, so no sample has a reward. Check "
            "that the gold answers parse (`solution_column`) and that the reward functions apply to this data, or "
            "raise `max_unscored_batches`."
        )


def _logged(logs: dict[str, Any], *keys: str) -> float | None:
    """The first of `keys` logged as a number (NaN included), else None."""
    for key in keys:
        value = logs.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    return None


ATTEMPT_ACCURACY = re.compile(r"selfcorrect/acc_t\d+")


def zero_signal_reason(logs: dict[str, Any]) -> str | None:
    """Why every group of a logged training step had zero advantage (so the step trains nothing), or None when some
    group had signal or the log does not say.

    Reads the multi-attempt trainers' `selfcorrect/zero_advantage_frac` (else TRL's `frac_reward_zero_std`), the
    accuracy (`selfcorrect/acc_t<k>`, else TRL's `rewards/accuracy/mean`) and the cut-off share
    (`selfcorrect/truncated_attempts`, else TRL's `completions/clipped_ratio`). Returns `all truncated`, `all wrong`,
    `all right`, `every group's rewards equal` (no accuracy logged, or each group all right or all wrong) or
    `unscored`, with the truncated share when some attempts were cut off: e.g. `all wrong, 75 % truncated`.
    """
    zero = _logged(logs, "selfcorrect/zero_advantage_frac", "frac_reward_zero_std")
    if zero is None or not zero >= 1.0 - 1e-6:
        return None
    reward = _logged(logs, "reward")
    if reward is not None and math.isnan(reward):
        return "unscored"
    truncated = _logged(logs, "selfcorrect/truncated_attempts", "completions/clipped_ratio")
    if truncated is not None and truncated >= 1.0 - 1e-6:
        return "all truncated"
    accuracy = [float(v) for k, v in logs.items() if ATTEMPT_ACCURACY.fullmatch(k) and isinstance(v, int | float)]
    if not accuracy and (single := _logged(logs, "rewards/accuracy/mean")) is not None:
        accuracy = [single]
    if accuracy and max(accuracy) <= 0.0:
        kind = "all wrong"
    elif accuracy and min(accuracy) >= 1.0:
        kind = "all right"
    else:
        kind = "every group's rewards equal"
    if truncated:
        kind += f", {100 * truncated:.0f} % truncated"
    return kind


def zero_signal_advice(reason: str, args: Any = None) -> str:
    """The likely cause of `zero_signal_reason`'s `reason` and the recipe field to change (current values from the
    training `args` when given)."""

    def now(name: str) -> str:
        value = getattr(args, name, None)
        return f"`{name}` (now {value})" if value is not None else f"`{name}`"

    truncated = re.search(r"(\d+) % truncated", reason)
    if reason == "all truncated" or (truncated and int(truncated.group(1)) >= 50):
        cap = (
            f"{now('max_attempt_length')} and `max_completion_length` with it"
            if getattr(args, "max_attempt_length", None) is not None
            else now("max_completion_length")
        )
        return (
            "most answers are cut off at the token cap, and a cut-off answer scores as wrong: raise "
            f"{cap}, or ask for shorter answers (`answer_format`, `system_prompt`)."
        )
    if reason.startswith("all wrong"):
        return (
            "the problems are too hard for the model (or its answers are not read right): use easier problems "
            f"(`arithmetic_levels`, `dataset_name`), more samples per problem ({now('num_generations')}) or a higher "
            f"{now('temperature')}; check that the gold answers (`solution_column`) parse."
        )
    if reason.startswith("all right"):
        return "the problems are too easy for the model: use harder ones (`arithmetic_levels`, `dataset_name`)."
    return (
        f"the samples of each problem score alike: raise {now('num_generations')} or {now('temperature')} for more "
        "varied samples, or use problems of mixed difficulty."
    )


class ZeroSignalWarning(TrainerCallback):
    """Warn once per run of `limit` logged training steps in a row whose groups all had zero advantage, naming the
    likely cause (of the last of them) and the field to change (`zero_signal_reason`, `zero_signal_advice`); `limit`
    0: never warn.
    Unscored batches (`unscored`) are `UnscoredBatches`' to report and do not count here."""

    def __init__(self, limit: int = 5):
        if limit < 0:
            raise ValueError(f"`zero_signal_warn_steps` must be >= 0; got {limit}.")
        self.limit = limit
        self.in_a_row = 0

    def on_log(self, args, state, control, logs=None, **kwargs):
        if (
            not logs
            or not state.is_world_process_zero
            or not any(key in logs for key in ("selfcorrect/zero_advantage_frac", "frac_reward_zero_std"))
        ):
            return  # not a training step's log (the end-of-training summary, an evaluation)
        reason = zero_signal_reason(logs)
        if reason is None or reason == "unscored":
            self.in_a_row = 0
            return
        self.in_a_row += 1
        if self.limit and self.in_a_row == self.limit:
            logger.warning(
                "%s (up to step %d) had zero advantage in every group (%s): no gradient, nothing learned. "
                "Likely cause: %s (This warning: `zero_signal_warn_steps` = %d.)",
                f"{self.in_a_row} logged steps in a row" if self.in_a_row > 1 else "a logged step",
                state.global_step,
                reason,
                zero_signal_advice(reason, args),
                self.limit,
            )


CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")


def last_complete_checkpoint(output_dir: str | Path) -> str | None:
    """The newest `checkpoint-N` in `output_dir` with a readable `trainer_state.json`; incomplete ones are skipped."""
    folder = Path(output_dir)
    if not folder.is_dir():
        return None
    candidates = sorted(
        (int(m.group(1)), p) for p in folder.iterdir() if p.is_dir() and (m := CHECKPOINT.match(p.name))
    )
    for _, path in reversed(candidates):
        try:
            json.loads((path / "trainer_state.json").read_text())
        except (OSError, ValueError):
            logger.warning("%s is incomplete (no valid trainer_state.json): not resuming from it", path)
            continue
        return str(path)
    return None
