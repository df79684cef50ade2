"""Single-turn GRPO (`method: grpo`): TRL's `GRPOTrainer` unchanged, plus one policy on unscorable batches.

The only difference from TRL: a batch in which every reward function returned None for every sample warns (TRL's own
warning and ours, naming the functions) and contributes no policy gradient, as in TRL; after `max_unscored_batches`
such batches in a row the run stops with a clear error (`selfcorrect.guards.RewardBatchGuard`) instead of training on
zero rewards for ever. Under `bf16`, each generation call runs in one autocast region
(`selfcorrect.precision.AutocastGeneration`): the same bf16 arithmetic as TRL's per-forward regions, each weight cast
once per call instead of once per token.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from trl import GRPOConfig as TRLGRPOConfig
from trl import GRPOTrainer as TRLGRPOTrainer
from trl import SFTConfig, SFTTrainer

from ..guards import RewardBatchGuard
from ..precision import AutocastGeneration
from .registry import register_method


@dataclass
class GRPOConfig(TRLGRPOConfig):
    """TRL's `GRPOConfig` plus `max_unscored_batches`; every other field is TRL's."""

    max_unscored_batches: int = field(
        default=3,
        metadata={
            "help": "Stop the run after this many batches in a row that no reward function scored (each one warns "
            "and contributes no policy gradient)."
        },
    )

    def __post_init__(self):
        super().__post_init__()
        if self.max_unscored_batches < 1:
            raise ValueError(f"`max_unscored_batches` must be at least 1; got {self.max_unscored_batches}.")


class GRPOTrainer(AutocastGeneration, RewardBatchGuard, TRLGRPOTrainer):
    """TRL's GRPO with `RewardBatchGuard` and, under `bf16`, one autocast region per generation call
    (`AutocastGeneration`); everything else, including every option of `GRPOConfig`, is TRL's."""

    _tag_names = ["trl", "grpo", "selfcorrect"]


__all__ = ["GRPOConfig", "GRPOTrainer"]


register_method("grpo", GRPOTrainer, GRPOConfig)
register_method("sft", SFTTrainer, SFTConfig, offline_columns=("completion",))  # TRL's, unchanged: REDI stage 1
