"""Trainer families, one file each, and the one registry that maps a recipe's `method` to them.

`register_method(name, trainer, config)` adds a method (one line, in the file that defines it); a recipe names it as
`method: name`, or as `method: package.module:name` for a method defined outside selfcorrect (the module is imported,
and registers itself, when the recipe is parsed). `METHODS[name]` holds the trainer class, its config class, and for
offline methods the dataset columns they train on besides the prompt. `METHODS` is a `selfcorrect.registry.Registry`,
the style every recipe-named choice shares (feedback providers, critics, advantage modes, reward functions).
"""

from __future__ import annotations

from typing import NamedTuple

from trl import SFTConfig, SFTTrainer

from ..registry import Registry
from .base import METHOD_CONFIGS, MultiAttemptConfig, MultiAttemptGRPOTrainer
from .critique import CritiqueGRPOConfig, CritiqueGRPOTrainer
from .grpo import GRPOConfig, GRPOTrainer
from .nsr import NegativeSampleConfig, NegativeSampleTrainer
from .redi import REDIConfig, REDITrainer
from .rise import RISEConfig, RISETrainer
from .score import SCoReConfig, SCoReTrainer, UFOConfig, UFOTrainer


class Method(NamedTuple):
    trainer: type
    config: type
    offline_columns: tuple[str, ...] | None = None  # offline methods: trace columns instead of reward functions


METHODS: Registry[Method] = Registry("method", "method")


def register_method(name: str, trainer: type, config: type, offline_columns: tuple[str, ...] | None = None) -> Method:
    """Make `method: name` build `trainer(args=config(...))`; re-registering a name with other classes is an error."""
    method = METHODS.register(name, Method(trainer, config, offline_columns))
    if isinstance(trainer, type) and issubclass(trainer, MultiAttemptGRPOTrainer):
        METHOD_CONFIGS[trainer] = config  # `trainer(args=None)` builds this config's defaults
    return method


def get_method(name: str) -> Method:
    """The registered method `name` (`package.module:name` imports the module first); ValueError names the
    registered methods otherwise."""
    return METHODS.lookup(name)


register_method("grpo", GRPOTrainer, GRPOConfig)
register_method("multi_attempt", MultiAttemptGRPOTrainer, MultiAttemptConfig)
register_method("score", SCoReTrainer, SCoReConfig)
register_method("ufo", UFOTrainer, UFOConfig)
register_method("nsr", NegativeSampleTrainer, NegativeSampleConfig)
register_method("critique_grpo", CritiqueGRPOTrainer, CritiqueGRPOConfig)
register_method("rise", RISETrainer, RISEConfig)
register_method("redi", REDITrainer, REDIConfig, offline_columns=("chosen", "rejected"))
register_method("sft", SFTTrainer, SFTConfig, offline_columns=("completion",))  # TRL's, unchanged: REDI stage 1

__all__ = [
    "METHODS",
    "CritiqueGRPOConfig",
    "CritiqueGRPOTrainer",
    "GRPOConfig",
    "GRPOTrainer",
    "Method",
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
    "get_method",
    "register_method",
]
