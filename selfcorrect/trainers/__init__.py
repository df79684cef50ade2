"""Trainer families, one file each. `TRAINERS` / `TRAINER_CONFIGS` map a recipe's `method` to its classes."""

from .base import MultiAttemptConfig, MultiAttemptGRPOTrainer
from .score import SCoReConfig, SCoReTrainer, UFOConfig, UFOTrainer

TRAINERS: dict[str, type] = {
    "multi_attempt": MultiAttemptGRPOTrainer,
    "score": SCoReTrainer,
    "ufo": UFOTrainer,
}
TRAINER_CONFIGS: dict[str, type] = {
    "multi_attempt": MultiAttemptConfig,
    "score": SCoReConfig,
    "ufo": UFOConfig,
}

__all__ = [
    "TRAINERS",
    "TRAINER_CONFIGS",
    "MultiAttemptConfig",
    "MultiAttemptGRPOTrainer",
    "SCoReConfig",
    "SCoReTrainer",
    "UFOConfig",
    "UFOTrainer",
]
