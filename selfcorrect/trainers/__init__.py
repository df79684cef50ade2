"""Trainer families, one file each. `TRAINERS` / `TRAINER_CONFIGS` map a recipe's `method` to its classes."""

from trl import SFTConfig, SFTTrainer

from .base import MultiAttemptConfig, MultiAttemptGRPOTrainer
from .critique import CritiqueGRPOConfig, CritiqueGRPOTrainer
from .grpo import GRPOConfig, GRPOTrainer
from .nsr import NegativeSampleConfig, NegativeSampleTrainer
from .redi import REDIConfig, REDITrainer
from .score import SCoReConfig, SCoReTrainer, UFOConfig, UFOTrainer
from .verify import RISEConfig, RISETrainer

TRAINERS: dict[str, type] = {
    "grpo": GRPOTrainer,
    "multi_attempt": MultiAttemptGRPOTrainer,
    "score": SCoReTrainer,
    "ufo": UFOTrainer,
    "nsr": NegativeSampleTrainer,
    "critique_grpo": CritiqueGRPOTrainer,
    "rise": RISETrainer,
    "redi": REDITrainer,
    "sft": SFTTrainer,  # TRL's, unchanged: REDI stage 1 (SFT on correct traces)
}
TRAINER_CONFIGS: dict[str, type] = {
    "grpo": GRPOConfig,
    "multi_attempt": MultiAttemptConfig,
    "score": SCoReConfig,
    "ufo": UFOConfig,
    "nsr": NegativeSampleConfig,
    "critique_grpo": CritiqueGRPOConfig,
    "rise": RISEConfig,
    "redi": REDIConfig,
    "sft": SFTConfig,
}

__all__ = [
    "TRAINERS",
    "TRAINER_CONFIGS",
    "CritiqueGRPOConfig",
    "CritiqueGRPOTrainer",
    "GRPOTrainer",
    "MultiAttemptConfig",
    "MultiAttemptGRPOTrainer",
    "NegativeSampleConfig",
    "NegativeSampleTrainer",
    "REDIConfig",
    "REDITrainer",
    "RISEConfig",
    "RISETrainer",
    "SCoReConfig",
    "SCoReTrainer",
    "UFOConfig",
    "UFOTrainer",
]
