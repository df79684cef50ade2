"""Single-turn GRPO (`method: grpo`): TRL's `GRPOTrainer` unchanged, plus one safety check.

The only difference from TRL: a batch in which every reward function returned None for every sample raises
(`selfcorrect.guards.RewardBatchGuard`) instead of training on all-zero rewards.
"""

from __future__ import annotations

from trl import GRPOConfig
from trl import GRPOTrainer as TRLGRPOTrainer

from ..guards import RewardBatchGuard


class GRPOTrainer(RewardBatchGuard, TRLGRPOTrainer):
    """TRL's GRPO with `RewardBatchGuard`; everything else, including every option of `GRPOConfig`, is TRL's."""

    _tag_names = ["trl", "grpo", "selfcorrect"]


__all__ = ["GRPOConfig", "GRPOTrainer"]
