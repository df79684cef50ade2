"""`selfcorrect redi-data`: sample traces from the recipe's model on its training problems (or read `--traces`), label
them with the verifier and write the REDI data: `sft.jsonl` (stage 1, `method: sft`), `pairs.jsonl` (stage 2,
`method: redi`) and `counts.json` under `--output_dir` (what the files hold: `selfcorrect.data.redi`).

    selfcorrect redi-data --config recipes/demo/grpo.yaml --redi_samples 4 --redi_temperature 0.7 \\
        --redi_max_new_tokens 64 --max_train_samples 64 --output_dir outputs/demo-redi-data

    selfcorrect redi-data --traces teacher_traces.jsonl --output_dir outputs/redi-teacher-data
"""

from __future__ import annotations

import json
from pathlib import Path

from .data.redi import build_redi_data
from .errors import DataError, RecipeError
from .trace_sampling import (
    add_sampling_options,
    command_parser,
    parse_command_line,
    sample_from_recipe_model,
    write_jsonl,
)

USAGE = (
    "selfcorrect redi-data --config RECIPE.yaml --output_dir DIR [--redi_samples 8] [--field value ...]\n"
    "       selfcorrect redi-data --traces TRACES.jsonl --output_dir DIR"
)


def main(argv: list[str] | None = None) -> dict[str, int]:
    """`selfcorrect redi-data`: sample traces from the recipe's model on its training problems, write the REDI data."""
    parser = command_parser("redi-data", USAGE, "sft.jsonl, pairs.jsonl and counts.json")
    parser.add_argument(
        "--traces", default=None, help="A .jsonl of existing traces (prompt, completion, solution): no sampling."
    )
    add_sampling_options(parser, "redi", samples=8, samples_help="Sampled traces per problem.")
    parser.add_argument(
        "--redi_max_pairs_per_prompt", type=int, default=1, help="Pairs per problem (no trace reused)."
    )
    options, rest = parse_command_line(parser, argv, USAGE)
    for name in ("redi_samples", "redi_max_pairs_per_prompt"):
        if getattr(options, name) < 1:
            raise RecipeError(f"`--{name}` must be at least 1; got {getattr(options, name)}.")
    if options.redi_temperature <= 0:
        raise RecipeError(f"`--redi_temperature` must be > 0 (traces are sampled); got {options.redi_temperature}.")
    out_dir = Path(options.output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if options.traces:  # a teacher's (or any earlier) traces: label and pair them, no model needed
        traces = read_traces(Path(options.traces))
    else:
        from .configs import parse_recipe
        from .data.loading import load_datasets

        model_args, data_args, script_args, training_args = parse_recipe(rest)
        problems, _ = load_datasets(data_args, train=True, test=False)
        traces = sample_from_recipe_model(
            model_args, script_args, training_args.seed, problems, options, "redi", "traces"
        )
        write_jsonl(traces, out_dir / "traces.jsonl")
    sft_rows, pair_rows, counts = build_redi_data(traces, options.redi_max_pairs_per_prompt)
    write_jsonl(sft_rows, out_dir / "sft.jsonl")
    write_jsonl(pair_rows, out_dir / "pairs.jsonl")
    (out_dir / "counts.json").write_text(json.dumps(counts, indent=2) + "\n")
    print(json.dumps(counts, indent=2))
    if not pair_rows:
        raise DataError(
            f"no REDI pairs: no problem has both a correct and an incorrect trace ({counts['prompts_without_correct']} "
            f"of {counts['prompts']} problems have no correct trace, {counts['prompts_without_incorrect']} no incorrect "
            f"one; see {out_dir / 'counts.json'}). Sample more (`--redi_samples`), change `--redi_temperature`, or use "
            "easier problems."
        )
    print(f"wrote {out_dir / 'sft.jsonl'} ({len(sft_rows)} rows), {out_dir / 'pairs.jsonl'} ({len(pair_rows)} pairs)")
    return counts


def read_traces(path: Path) -> list[dict]:
    """The rows of a `--traces` file (one JSON object a line)."""
    if not path.is_file() or path.stat().st_size == 0:
        raise DataError(f"`--traces`: {path} does not exist or is empty.")
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
