"""How a command reports the errors a user can fix: one line on stderr and an exit code, not a traceback.

Imported by `selfcorrect.cli` and by the `__main__` blocks of `selfcorrect.train` / `selfcorrect.evaluate`, and
importing none of them (no import cycle).
"""

from __future__ import annotations

import sys
from collections.abc import Callable


def run_reporting_errors(run: Callable[[list[str]], object], argv: list[str]) -> int:
    """Run one command's `main(argv)`: a bad recipe, data or model (exit 2) or a run stopped by a guard (exit 1) is
    one line on stderr, not a traceback. Shared by `selfcorrect ...` and `python -m selfcorrect.train / .evaluate`."""
    from .configs import RecipeError
    from .data import DataError
    from .guards import NonFiniteTrainingError
    from .launch_utils import destroy_process_group
    from .models import ModelLoadError
    from .plots import PlotError
    from .rewards import RewardFunctionError

    try:
        run(argv)
    except (RecipeError, DataError, ModelLoadError, PlotError) as exc:
        print(f"selfcorrect: error: {exc}", file=sys.stderr)
        return 2
    except (RewardFunctionError, NonFiniteTrainingError) as exc:  # mid-run: the last checkpoint is kept
        print(f"selfcorrect: training stopped: {exc}", file=sys.stderr)
        return 1
    destroy_process_group()  # under `accelerate launch`: a clean exit, not a SIGABRT at interpreter teardown
    return 0
