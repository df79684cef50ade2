"""Negative-sample reinforcement: PSR / NSR / W-REINFORCE and OREAL-style reshaping, single-turn.

PSR / NSR / W-REINFORCE — Zhu et al. 2025, "The Surprising Effectiveness of Negative Reinforcement in LLM Reasoning".
OREAL — Lyu et al. 2025, "Exploring the Limit of Outcome Reward for Learning Mathematical Reasoning".

The same advantage modes work in every multi-attempt trainer (`advantage_mode` in a SCoRe or UFO recipe, applied to
each attempt); this file is the single-turn trainer (`method: nsr`): one attempt per episode. How it differs from GRPO:
- rewards are mapped to +-1 by the verifier's verdict (math-verify on the last boxed answer), not used as numbers;
- no group baseline and no std scaling: PSR gives +1 to correct samples and drops wrong ones, NSR gives -1 to wrong
  samples and drops correct ones, W-REINFORCE gives +lambda (0.1) / -1; dropped samples have advantage 0 (their tokens
  still count in the token-mean normalizer, as a zero-advantage sample does in TRL);
- OREAL: behaviour cloning (+1) on correct samples, eta (0.5) * (1 - p) * RLOO advantage on wrong ones, groups whose
  pass rate p is 0 or 1 dropped;
- paper settings (W-REINFORCE): no KL (`beta: 0`), PPO clip 0.2, one PPO epoch, token-mean loss (`loss_type: dapo`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .base import MultiAttemptConfig, MultiAttemptGRPOTrainer
from .registry import register_method


@dataclass
class NegativeSampleConfig(MultiAttemptConfig):
    """Single-turn negative-sample reinforcement; defaults follow Zhu et al. 2025 (W-REINFORCE, lambda 0.1, no KL)."""

    max_attempts: int = field(default=1, metadata={"help": "One attempt: single-turn RL."})
    advantage_mode: str = field(
        default="w_reinforce", metadata={"help": "psr, nsr, w_reinforce (default) or oreal; grpo for TRL's GRPO."}
    )
    beta: float = field(default=0.0, metadata={"help": "KL coefficient (the paper uses none)."})


class NegativeSampleTrainer(MultiAttemptGRPOTrainer):
    """PSR / NSR / W-REINFORCE / OREAL on TRL's GRPO: see the module docstring for how it differs from GRPO."""

    _tag_names = ["trl", "grpo", "selfcorrect", "negative-sample"]


register_method("nsr", NegativeSampleTrainer, NegativeSampleConfig, verdict_credit=True)
