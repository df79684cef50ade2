"""`selfcorrect revision-data`: revision warm-up rows for the recipe's training problems, written under `--output_dir`
(`sft.jsonl`, `counts.json`, and with self sampling `traces.jsonl`); what a row is: `selfcorrect.data.revision`.

    selfcorrect revision-data --config recipes/demo/score.yaml --source gold --output_dir outputs/demo-revision-data

    selfcorrect revision-data --config recipes/demo/score.yaml --source both --revision_samples 4 \\
        --revision_temperature 0.7 --revision_max_new_tokens 64 --max_train_samples 64 --output_dir DIR

The command parses its options and the recipe, picks the feedback provider, samples the model's own answers when the
source asks for them, and writes what `build_revision_rows` (no model) makes of them.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from .data.revision import SOURCES, build_revision_rows, feedback_provider, no_rows_reason
from .errors import DataError, RecipeError
from .trace_sampling import (
    add_sampling_options,
    command_parser,
    parse_command_line,
    sample_from_recipe_model,
    write_jsonl,
)

USAGE = (
    "selfcorrect revision-data --config RECIPE.yaml --output_dir DIR [--source gold|self|both] "
    "[--feedback NAME] [--keep_right_fraction 0.5] [--max_rows_per_problem 1] [--revision_samples 4 ...] "
    "[--field value ...]"
)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """`selfcorrect revision-data`: revision rows for the recipe's training problems, written under `--output_dir`."""
    from .configs import parse_recipe
    from .data.loading import load_datasets

    options, rest = parse_options(argv)
    model_args, data_args, script_args, training_args = parse_recipe(rest)
    provider = recipe_feedback(options, script_args, training_args)
    seed = training_args.seed if options.seed is None else options.seed
    problems, _ = load_datasets(data_args, train=True, test=False)
    out_dir = Path(options.output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    traces = None
    if samples_own_answers(options):
        traces = sample_from_recipe_model(model_args, script_args, seed, problems, options, "revision", "answers")
        write_jsonl(traces, out_dir / "traces.jsonl")
    rows, counts = build_revision_rows(
        problems,
        provider,
        source=options.source,
        traces=traces,
        keep_right_fraction=options.keep_right_fraction,
        max_rows_per_problem=options.max_rows_per_problem,
        seed=seed,
    )
    write_jsonl(rows, out_dir / "sft.jsonl")
    (out_dir / "counts.json").write_text(json.dumps(counts, indent=2) + "\n")
    print(json.dumps(counts, indent=2))
    if not rows:
        hint = (
            " Sample more (`--revision_samples`), raise `--revision_temperature`, or use `--source both`."
            * samples_own_answers(options)
        )
        raise DataError(f"no revision rows: {no_rows_reason(counts)}; see {out_dir / 'counts.json'}.{hint}")
    print(f"wrote {out_dir / 'sft.jsonl'} ({len(rows)} rows)")
    return counts


def parse_options(argv: list[str] | None) -> tuple[argparse.Namespace, list[str]]:
    """(the command's options, checked; the rest: the recipe's `--config` and field overrides)."""
    parser = command_parser("revision-data", USAGE, "sft.jsonl, counts.json (and traces.jsonl)")
    parser.add_argument("--source", default="gold", help="Wrong first answers: gold (derived), self (sampled), both.")
    parser.add_argument("--feedback", default=None, help="Feedback provider (default: the recipe's).")
    parser.add_argument("--feedback_template", default=None, help="Its template (default: the recipe's).")
    parser.add_argument(
        "--keep_right_fraction", type=float, default=0.5, help="Kept-right rows per wrong-first row (1.0: as many)."
    )
    parser.add_argument("--max_rows_per_problem", type=int, default=1, help="Wrong-first rows per problem and source.")
    add_sampling_options(parser, "revision", samples=4, samples_help="Sampled answers per problem (self source).")
    parser.add_argument("--seed", type=int, default=None, help="Seed of the draws (default: the recipe's seed).")
    options, rest = parse_command_line(parser, argv, USAGE)
    if options.source not in SOURCES:
        raise RecipeError(f"`--source` must be one of {', '.join(SOURCES)}; got {options.source!r}.")
    for name in ("revision_samples", "max_rows_per_problem"):
        if getattr(options, name) < 1:
            raise RecipeError(f"`--{name}` must be at least 1; got {getattr(options, name)}.")
    if not options.keep_right_fraction >= 0:
        raise RecipeError(f"`--keep_right_fraction` must be >= 0; got {options.keep_right_fraction}.")
    if samples_own_answers(options) and options.revision_temperature <= 0:
        raise RecipeError(
            f"`--revision_temperature` must be > 0 (`--source {options.source}` samples answers); got "
            f"{options.revision_temperature}."
        )
    if options.revision_max_new_tokens is not None and options.revision_max_new_tokens < 1:
        raise RecipeError(f"`--revision_max_new_tokens` must be at least 1; got {options.revision_max_new_tokens}.")
    return options, rest


def samples_own_answers(options: argparse.Namespace) -> bool:
    """Does `--source` ask for the recipe's model's own answers (`self`, `both`)?"""
    return options.source in ("self", "both")


def recipe_feedback(options: argparse.Namespace, script_args, training_args):
    """The feedback provider: `--feedback` / `--feedback_template`, else the recipe's `feedback` / `feedback_template`,
    else its `eval_feedback`. An unknown name or a bad template is a `RecipeError`."""
    from .feedback import FEEDBACK

    feedback = options.feedback or getattr(training_args, "feedback", None) or script_args.eval_feedback
    try:
        FEEDBACK.lookup(feedback)
    except ValueError as exc:
        raise RecipeError(str(exc)) from None  # names the field (`feedback`) and the registered providers
    template = options.feedback_template
    if template is None and options.feedback is None:
        template = getattr(training_args, "feedback_template", None)
    try:
        return feedback_provider(feedback, template)
    except DataError as exc:
        raise RecipeError(str(exc)) from exc
