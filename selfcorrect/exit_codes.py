"""The command layer's one mapping from errors to exit codes, shared by `selfcorrect ...` (`selfcorrect.cli`) and
`python -m selfcorrect.train / .evaluate`, below all three so that none imports another."""

from __future__ import annotations

import sys
from collections.abc import Callable

from .errors import STOPPED_RUN_ERRORS, USER_ERRORS


def run_reporting_errors(run: Callable[[list[str]], object], argv: list[str]) -> int:
    """Run one command's `main(argv)`: a bad recipe, data or model (exit 2) or a run stopped by a guard (exit 1) is
    one line on stderr, not a traceback (the errors: `selfcorrect.errors`). Shared by `selfcorrect ...` and
    `python -m selfcorrect.train / .evaluate`."""
    try:
        run(argv)
    except USER_ERRORS as exc:
        print(f"selfcorrect: error: {exc}", file=sys.stderr)
        return 2
    except STOPPED_RUN_ERRORS as exc:  # mid-run: the last checkpoint is kept
        print(f"selfcorrect: training stopped: {exc}", file=sys.stderr)
        return 1
    from .launch_utils import destroy_process_group

    destroy_process_group()  # under `accelerate launch`: a clean exit, not a SIGABRT at interpreter teardown
    return 0
