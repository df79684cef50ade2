"""The `selfcorrect` command: `selfcorrect train --config R.yaml [...]`, `selfcorrect eval --config R.yaml [...]`."""

from __future__ import annotations

import sys

USAGE = """usage: selfcorrect {train,eval} --config RECIPE.yaml [--field value ...]

  train   train with the recipe's method (same as python -m selfcorrect.train)
  eval    self-correction evaluation of the recipe's model on its test split
"""


def main(argv: list[str] | None = None) -> int:
    from .configs import RecipeError
    from .data import DataError
    from .models import ModelLoadError

    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0
    command, rest = argv[0], argv[1:]
    if command == "train":
        from .train import main as run
    elif command == "eval":
        from .evaluate import main as run
    else:
        print(f"selfcorrect: unknown command '{command}'\n\n{USAGE}", file=sys.stderr)
        return 2
    try:
        run(rest)
    except (RecipeError, DataError, ModelLoadError) as exc:
        print(f"selfcorrect: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
