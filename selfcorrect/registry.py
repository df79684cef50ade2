"""One registry style for everything a recipe names: methods, feedback providers, critics, advantage modes.

A `Registry` maps the names a recipe field accepts to what they build. Each entry is registered once, in the file that
defines it (`REGISTRY.register(name, entry)`); `lookup(name)` is what configs and trainers call: it accepts
`package.module:name` for an entry defined outside selfcorrect (the module is imported, and registers itself, first)
and otherwise raises a `ValueError` that names the recipe field and the registered names.
"""

from __future__ import annotations

import importlib
from typing import Generic, TypeVar

T = TypeVar("T")


class Registry(dict[str, T], Generic[T]):
    """`name -> entry` for one recipe field (`field`), entries of one kind (`kind`, used in error messages)."""

    def __init__(self, kind: str, field: str):
        super().__init__()
        self.kind, self.field = kind, field

    def register(self, name: str, entry: T) -> T:
        """Add `entry` under `name`; registering the same entry again is a no-op, another one is an error."""
        if name in self and self[name] != entry:
            raise ValueError(f"{self.kind} '{name}' is already registered ({self[name]!r}).")
        self[name] = entry
        return entry

    def lookup(self, name: str) -> T:
        """The entry for `name` (or `package.module:name`, importing the module first)."""
        if not isinstance(name, str):
            raise ValueError(f"`{self.field}` must be a string naming a {self.kind}; got {name!r}.")
        if ":" in name:
            module, _, short = name.partition(":")
            try:
                importlib.import_module(module)
            except ImportError as exc:
                raise ValueError(f"`{self.field}: {name}`: cannot import module '{module}' ({exc}).") from exc
            name = short
        if name not in self:
            raise ValueError(f"`{self.field}`: unknown {self.kind} '{name}'; registered: {', '.join(self)}.")
        return self[name]
