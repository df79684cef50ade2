"""The `selfcorrect` command: `selfcorrect train --config R.yaml [...]`, `selfcorrect eval --config R.yaml [...]`,
`selfcorrect plot RUN_DIR` (a run's learning curves), and the data builders."""

from __future__ import annotations

import sys

from .exit_codes import run_reporting_errors

USAGE = """usage: selfcorrect {train,eval} --config RECIPE.yaml [--field value ...]
       selfcorrect redi-data (--config RECIPE.yaml | --traces TRACES.jsonl) --output_dir DIR [...]
       selfcorrect revision-data --config RECIPE.yaml --output_dir DIR [--source gold|self|both] [...]
       selfcorrect plot RUN_DIR [--output PNG]

  train      train with the recipe's method (same as python -m selfcorrect.train)
  eval       self-correction evaluation of the recipe's model on its test split
  redi-data  sample traces from the recipe's model on its training problems (or read --traces), label them with
             the verifier and write REDI pairs + an SFT set ([--redi_samples 8 --redi_max_new_tokens N
             --redi_temperature 1.0 --redi_max_pairs_per_prompt 1])
  revision-data  SFT warm-up rows for multi-attempt training: a wrong first answer (derived from the gold answer
             and/or sampled from the recipe's model), the recipe's feedback turn, the correct revision; plus kept
             right answers ([--source gold --feedback NAME --keep_right_fraction 0.5 --max_rows_per_problem 1
             --revision_samples 4 --revision_temperature 1.0 --revision_max_new_tokens N])
  plot       redraw a training run's learning curves (acc@tk, Δ, reward, loss over steps) from
             RUN_DIR/log_history.jsonl (or its newest checkpoint) into RUN_DIR/eval/learning_curves.png

  Every command but plot takes --num_threads N (default: the cores free now, or an explicit OMP_NUM_THREADS; the
  choice is printed) and --quiet (no progress lines). `selfcorrect train --help` / `eval --help` list the fields.
"""

MODEL_COMMANDS = ("train", "eval", "redi-data", "revision-data")  # they load torch: threads and noise set first


def main(argv: list[str] | None = None) -> int:
    """Run one command. As the process's command (`argv` None: read from `sys.argv`), a command that loads a model
    first sets the CPU threads and hides known third-party noise (`launch_utils.prepare_command`); called from Python
    with an `argv` (tests, scripts) it leaves the calling process's threads, environment and warnings alone."""
    is_process = argv is None
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0
    command, rest = argv[0], argv[1:]
    if command in ("train", "eval") and any(arg in ("-h", "--help") for arg in rest):
        from .configs import recipe_help

        print(recipe_help(command))  # fast: no torch
        return 0
    if "--help-all" in rest:
        rest = ["--help" if arg == "--help-all" else arg for arg in rest]
    if command in MODEL_COMMANDS and is_process:
        from .launch_utils import prepare_command

        prepare_command(rest)
    if command == "train":
        from .train import main as run
    elif command == "eval":
        from .evaluate import main as run
    elif command == "redi-data":
        from .redi_data import main as run
    elif command == "revision-data":
        from .revision_data import main as run
    elif command == "plot":
        from .plots import main as run
    else:
        print(f"selfcorrect: unknown command '{command}'\n\n{USAGE}", file=sys.stderr)
        return 2
    return run_reporting_errors(run, rest)


if __name__ == "__main__":
    sys.exit(main())
