"""Trainer families, one file each. `TRAINERS` / `TRAINER_CONFIGS` map a recipe's `method` to its classes."""

from .base import MultiAttemptConfig, MultiAttemptGRPOTrainer
from .nsr import NegativeSampleConfig, NegativeSampleTrainer
from .score import SCoReConfig, SCoReTrainer, UFOConfig, UFOTrainer

TRAINERS: dict[str, type] = {
    "multi_attempt": MultiAttemptGRPOTrainer,
    "score": SCoReTrainer,
    "ufo": UFOTrainer,
    "nsr": NegativeSampleTrainer,
}
TRAINER_CONFIGS: dict[str, type] = {
    "multi_attempt": MultiAttemptConfig,
    "score": SCoReConfig,
    "ufo": UFOConfig,
    "nsr": NegativeSampleConfig,
}

__all__ = [
    "TRAINERS",
    "TRAINER_CONFIGS",
    "MultiAttemptConfig",
    "MultiAttemptGRPOTrainer",
    "NegativeSampleConfig",
    "NegativeSampleTrainer",
    "SCoReConfig",
    "SCoReTrainer",
    "UFOConfig",
    "UFOTrainer",
]
