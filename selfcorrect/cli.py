"""The `selfcorrect` command: `selfcorrect train --config R.yaml [...]`, `selfcorrect eval --config R.yaml [...]`."""

from __future__ import annotations

import sys

USAGE = """usage: selfcorrect {train,eval} --config RECIPE.yaml [--field value ...]
       selfcorrect redi-data (--config RECIPE.yaml | --traces TRACES.jsonl) --output_dir DIR [...]

  train      train with the recipe's method (same as python -m selfcorrect.train)
  eval       self-correction evaluation of the recipe's model on its test split
  redi-data  sample traces from the recipe's model on its training problems (or read --traces), label them with
             the verifier and write REDI pairs + an SFT set ([--redi_samples 8 --redi_max_new_tokens N
             --redi_temperature 1.0 --redi_max_pairs_per_prompt 1])
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
    elif command == "redi-data":
        from .data.redi import main as run
    else:
        print(f"selfcorrect: unknown command '{command}'\n\n{USAGE}", file=sys.stderr)
        return 2
    from .guards import NonFiniteTrainingError
    from .rewards import RewardFunctionError

    try:
        run(rest)
    except (RecipeError, DataError, ModelLoadError) as exc:
        print(f"selfcorrect: error: {exc}", file=sys.stderr)
        return 2
    except (RewardFunctionError, NonFiniteTrainingError) as exc:  # mid-run: the last checkpoint is kept
        print(f"selfcorrect: training stopped: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
