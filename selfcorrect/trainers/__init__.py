"""Trainer families, one file each, and the one registry that maps a recipe's `method` to them.

`register_method(name, trainer, config)` adds a method (one line, in the file that defines it); a recipe names it as
`method: name`, or as `method: package.module:name` for a method defined outside selfcorrect (the module is imported,
and registers itself, when the recipe is parsed). `METHODS[name]` holds the trainer class, its config class, and for
offline methods the dataset columns they train on besides the prompt.
"""

from __future__ import annotations

import importlib
from typing import NamedTuple

from trl import SFTConfig, SFTTrainer

from .base import MultiAttemptConfig, MultiAttemptGRPOTrainer
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


METHODS: dict[str, Method] = {}


def register_method(name: str, trainer: type, config: type, offline_columns: tuple[str, ...] | None = None) -> Method:
    """Make `method: name` build `trainer(args=config(...))`; re-registering a name with other classes is an error."""
    method = Method(trainer, config, offline_columns)
    if METHODS.get(name, method) != method:
        raise ValueError(f"method '{name}' is already registered to {METHODS[name].trainer.__name__}.")
    METHODS[name] = method
    return method


def get_method(name: str) -> Method:
    """The registered method `name`, importing `package.module` first for `package.module:name`; ValueError names
    the registered methods otherwise."""
    if ":" in name:
        module, _, short = name.partition(":")
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise ValueError(f"method '{name}': cannot import module '{module}' ({exc}).") from exc
        name = short
    if name not in METHODS:
        raise ValueError(f"unknown method '{name}'. Registered: {', '.join(sorted(METHODS))}.")
    return METHODS[name]


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
