"""Trainer families, one file each; each file registers its own methods (`register_method(name, trainer, config)`,
one line under the classes it defines) in `METHODS`, the registry that maps a recipe's `method` to them
(`selfcorrect.trainers.registry`, the bottom of this package: it imports no trainer).

Importing this package imports the families named below. A new method in this folder is one file, with no line to
add here: a recipe's `method: name` that none of them registered imports the package's other modules first
(`import_families`), as do the listings that must show every method (the benchmark, the docs tests). A method defined
outside selfcorrect is named `method: package.module:name` and registers itself when the recipe is parsed.
"""

# ruff: noqa: I001  (the imports below keep registration order)
from __future__ import annotations

# Import order is registration order (`METHODS` lists them so): grpo (and TRL's sft), multi_attempt, then the rest.
from .grpo import GRPOConfig, GRPOTrainer
from .base import MultiAttemptConfig, MultiAttemptGRPOTrainer
from .score import SCoReConfig, SCoReTrainer, UFOConfig, UFOTrainer
from .nsr import NegativeSampleConfig, NegativeSampleTrainer
from .critique import CritiqueGRPOConfig, CritiqueGRPOTrainer
from .rise import RISEConfig, RISETrainer
from .redi import REDIConfig, REDITrainer
from .registry import METHODS, Method, get_method, import_families, register_method


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
    "import_families",
    "register_method",
]
