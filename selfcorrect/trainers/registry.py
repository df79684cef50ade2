"""The registry of methods: what a recipe's `method: name` builds. The bottom of `selfcorrect.trainers`: it imports
no trainer, so each trainer file imports it and registers its own methods (one line, under the class it defines).

`register_method(name, trainer, config)` adds a method; a recipe names it as `method: name`, or as
`method: package.module:name` for a method defined outside selfcorrect (the module is imported, and registers itself,
when the recipe is parsed). `METHODS[name]` holds the trainer class, its config class, for offline methods the dataset
columns they train on besides the prompt, and whether its credit is made of the verifier's verdicts only. `METHODS` is
a `selfcorrect.registry.Registry`, the style every recipe-named choice shares (feedback providers, critics, advantage
modes, reward functions).
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import NamedTuple

from ..registry import Registry


class Method(NamedTuple):
    trainer: type
    config: type
    offline_columns: tuple[str, ...] | None = None  # offline methods: trace columns instead of reward functions
    # Credit made of the verifier's verdicts only (its trainer's `credit_reads_rewards()` is False under the config's
    # defaults): reward functions feed only its logs, so `accuracy` (the verdict itself) is all it needs.
    verdict_credit: bool = False


METHODS: Registry[Method] = Registry("method", "method")

# trainer class -> the config class it was registered with: `trainer(args=None)` of a multi-attempt trainer (or of a
# subclass) builds this config's defaults.
METHOD_CONFIGS: dict[type, type] = {}


def register_method(
    name: str,
    trainer: type,
    config: type,
    offline_columns: tuple[str, ...] | None = None,
    verdict_credit: bool = False,
) -> Method:
    """Make `method: name` build `trainer(args=config(...))`; re-registering a name with other classes is an error."""
    method = METHODS.register(name, Method(trainer, config, offline_columns, verdict_credit))
    METHOD_CONFIGS[trainer] = config
    return method


def import_families() -> None:
    """Import every module of `selfcorrect.trainers` (each registers the methods it defines): a method file added to
    the folder is found without a line elsewhere. Modules already imported are not run again."""
    package = importlib.import_module(__package__)
    for module in pkgutil.iter_modules(package.__path__):
        importlib.import_module(f"{__package__}.{module.name}")


def get_method(name: str) -> Method:
    """The registered method `name` (`package.module:name` imports the module first; a bare name none of the
    imported families registered imports the package's other modules first); ValueError names the registered
    methods otherwise."""
    if isinstance(name, str) and ":" not in name and name not in METHODS:
        import_families()
    return METHODS.lookup(name)
