"""Self-verification rewards: RISE.

    python -m selfcorrect.train --config recipes/demo/rise.yaml

RISE — Liu et al. 2025, "Trust, But Verify: A Self-Verification Approach to Reinforcement Learning with Verifiable
Rewards". Each step the policy solves problems and then verifies some of its own on-policy solutions; both kinds of
rows go into one policy update. How it differs from GRPO:
- solutions are rewarded by the outcome verifier: 1 (boxed and correct), -0.5 (boxed, wrong), -1 (no boxed answer);
  name it in the recipe as `reward_funcs: [outcome]`;
- B_v solutions of each generation batch (`verification_solutions`, paper 128 of 1024 x 8), spread over the groups,
  are wrapped in a verification prompt that states that rubric and asks for the rating in `\\boxed{}`; the policy
  samples n verifications of each (`verification_generations`);
- a verification earns 1 if its boxed rating equals the solution's outcome score (compared as numbers), -0.5 if it
  differs, -1 without a rating; the n verifications of one solution form a group for the group-relative advantage
  (the paper trains with PPO and a critic instead; here TRL's GRPO normalization, `scale_rewards`, applies);
- verification rows are appended to the solution rows before TRL's loss: `num_items_in_batch` counts both.

The pass itself is `selfcorrect.trainers.self_verification.SelfVerification`, composed into any multi-attempt trainer
whose config sets `verification_solutions` (`with_verification`): a SCoRe or UFO recipe with `verification_solutions:
16` verifies attempt `verification_attempt` (1: the first, before revising) of 16 episodes per batch. This file is the
single-attempt method `rise` (max_attempts 1): the single-attempt trainer with the pass composed in, since its config
always asks for it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from .base import MultiAttemptConfig, MultiAttemptGRPOTrainer
from .registry import register_method

logger = logging.getLogger(__name__)


@dataclass
class RISEConfig(MultiAttemptConfig):
    """RISE: one attempt per problem plus self-verification of B_v of the batch's solutions (paper: 128 of 1024 x 8)."""

    max_attempts: int = field(default=1, metadata={"help": "One attempt: plain RISE."})
    verification_solutions: int = field(
        default=128,
        metadata={"help": "B_v solutions verified per generation batch, spread over groups (paper: 128 of 1024 x 8)."},
    )
    beta: float = field(default=0.01, metadata={"help": "KL coefficient (paper: 0.01, in the reward)."})

    def __post_init__(self):
        super().__post_init__()
        if self.verification_solutions < 1:
            raise ValueError(
                f"RISE needs `verification_solutions` (B_v) >= 1; got {self.verification_solutions}. "
                "For no verification use `method: multi_attempt` or `grpo`."
            )


class RISETrainer(MultiAttemptGRPOTrainer):
    """RISE (Liu et al. 2025) on TRL's GRPO: see the module docstring for how it differs from GRPO. `RISEConfig` always
    sets `verification_solutions`, so the trainer built is `with_verification(RISETrainer)`."""

    _tag_names = ["trl", "grpo", "selfcorrect", "rise"]

    def __new__(cls, *args, **kwargs):
        """An instance of `with_verification(cls)`: RISE always verifies (the pass's code loads here, when built)."""
        from .self_verification import with_verification

        return super().__new__(with_verification(cls))

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if "outcome" not in self.reward_func_names:
            logger.warning(
                "RISE scores solutions with the outcome verifier (1 / -0.5 / -1): add `outcome` to `reward_funcs` "
                "(now %s). The verification targets use that rubric whatever the reward functions are.",
                ", ".join(self.reward_func_names),
            )


register_method("rise", RISETrainer, RISEConfig)
