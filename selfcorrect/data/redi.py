"""REDI training data: label traces with the `accuracy` verifier, build (prompt, correct, incorrect) pairs and an SFT set.

    selfcorrect redi-data --config recipes/demo/grpo.yaml --redi_samples 4 --redi_temperature 0.7 \\
        --redi_max_new_tokens 64 --max_train_samples 64 --output_dir outputs/demo-redi-data

    selfcorrect redi-data --traces teacher_traces.jsonl --output_dir outputs/redi-teacher-data

`build_redi_data` works on any dataset of traces with columns `prompt`, `completion`, `solution` (one row per trace;
e.g. a teacher's samples, or the policy's own). The command samples those traces from the recipe's model on the
recipe's training problems (or reads them from `--traces`) and writes, under `--output_dir`:
- `sft.jsonl`: one row per distinct correct trace (`prompt`, `completion`, `solution`) for stage 1 (`method: sft`);
- `pairs.jsonl`: (`prompt`, `chosen`, `rejected`, `solution`) for stage 2 (`method: redi`, `dataset_name: .../pairs.jsonl`);
- `counts.json`: what was kept and dropped, and why.
A trace is correct when its last `\\boxed{}` answer is equivalent to the gold answer (`selfcorrect.rewards.verify_answer`,
math-verify); a trace cut off by the token cap counts as incorrect, as in training; prompts whose gold answer does not
parse are dropped. Each prompt gives up to `max_pairs_per_prompt` pairs, and no trace is used in two pairs.
"""

from __future__ import annotations

import argparse
import json
import logging
from collections import OrderedDict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .loading import DataError

if TYPE_CHECKING:
    from datasets import Dataset

logger = logging.getLogger(__name__)

TRACE_COLUMNS = ("prompt", "completion", "solution")


def _text(completion: Any) -> str:
    from ..rewards import completion_text

    return completion_text(completion)


def prompt_key(prompt: Any) -> str:
    """A hashable key for a prompt (text, or chat messages as canonical JSON): traces of one problem share it."""
    return prompt if isinstance(prompt, str) else json.dumps(prompt, sort_keys=True)


def build_redi_data(
    traces: Dataset | list[dict[str, Any]], max_pairs_per_prompt: int = 1
) -> tuple[list[dict], list[dict], dict[str, int]]:
    """(sft_rows, pair_rows, counts) from traces labelled by the `accuracy` verifier.

    `traces`: rows with `prompt` (text or chat messages), `completion` (text or messages), `solution` (gold answer) and
    optionally `truncated` (True: cut off by the token cap, hence incorrect). Identical completions of one prompt count
    once; empty completions are dropped. Counts: traces, prompts, empty_traces, duplicate_traces,
    unparseable_gold_prompts (all their traces dropped), correct_traces, incorrect_traces, truncated_traces,
    prompts_without_correct, prompts_without_incorrect, pair_prompts, pairs, sft_rows.
    """
    from ..rewards import check_gold_answers, extract_boxed, verify_answer

    if max_pairs_per_prompt < 1:
        raise ValueError(f"`max_pairs_per_prompt` must be at least 1; got {max_pairs_per_prompt}.")
    columns = list(traces.column_names) if hasattr(traces, "column_names") else list(traces[0]) if traces else []
    missing = [c for c in TRACE_COLUMNS if c not in columns]
    if missing:
        raise DataError(
            f"REDI traces need the columns {', '.join(TRACE_COLUMNS)}; missing {', '.join(missing)} "
            f"(columns: {', '.join(columns) or 'none'})."
        )
    counts = dict.fromkeys(
        (
            "traces",
            "prompts",
            "empty_traces",
            "duplicate_traces",
            "unparseable_gold_prompts",
            "correct_traces",
            "incorrect_traces",
            "truncated_traces",
            "prompts_without_correct",
            "prompts_without_incorrect",
            "pair_prompts",
            "pairs",
            "sft_rows",
        ),
        0,
    )
    groups: OrderedDict[str, dict[str, Any]] = OrderedDict()  # prompt key -> prompt, solution, traces (first seen)
    for row in traces:
        counts["traces"] += 1
        group = groups.setdefault(
            prompt_key(row["prompt"]), {"prompt": row["prompt"], "solution": row["solution"], "texts": []}
        )
        group["texts"].append((_text(row["completion"]), bool(row.get("truncated") or False)))
    counts["prompts"] = len(groups)

    sft_rows: list[dict] = []
    pair_rows: list[dict] = []
    for group in groups.values():
        gold = "" if group["solution"] is None else str(group["solution"]).strip()
        if check_gold_answers([gold]):
            counts["unparseable_gold_prompts"] += 1
            continue
        correct: list[str] = []
        incorrect: list[str] = []
        seen: set[str] = set()
        for text, truncated in group["texts"]:
            if not text.strip():
                counts["empty_traces"] += 1
                continue
            if text in seen:
                counts["duplicate_traces"] += 1
                continue
            seen.add(text)
            verdict = verify_answer(gold, extract_boxed(text) or "")
            if truncated:
                counts["truncated_traces"] += 1
            (correct if verdict and not truncated else incorrect).append(text)
        counts["correct_traces"] += len(correct)
        counts["incorrect_traces"] += len(incorrect)
        counts["prompts_without_correct"] += not correct
        counts["prompts_without_incorrect"] += not incorrect
        for text in correct:
            sft_rows.append({"prompt": group["prompt"], "completion": _assistant(text), "solution": gold})
        n_pairs = min(len(correct), len(incorrect), max_pairs_per_prompt)
        counts["pair_prompts"] += n_pairs > 0
        for chosen, rejected in zip(correct[:n_pairs], incorrect[:n_pairs]):
            pair_rows.append(
                {
                    "prompt": group["prompt"],
                    "chosen": _assistant(chosen),
                    "rejected": _assistant(rejected),
                    "solution": gold,
                }
            )
    counts["pairs"] = len(pair_rows)
    counts["sft_rows"] = len(sft_rows)
    return sft_rows, pair_rows, counts


def _assistant(text: str) -> list[dict[str, str]]:
    return [{"role": "assistant", "content": text}]


def write_jsonl(rows: list[dict], path: Path) -> None:
    with path.open("w") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")


def sample_traces(
    model,
    tokenizer,
    dataset,
    samples: int,
    max_new_tokens: int,
    temperature: float,
    top_p: float,
    batch_size: int,
    chat_template_kwargs: dict | None = None,
) -> list[dict[str, Any]]:
    """`samples` sampled completions per problem of `dataset` (columns `prompt`, `solution`), one row per trace.

    Prompts are rendered and attempts ended as in training and evaluation (`ChatTurns.for_model`): a trace is
    `truncated` when it does not end in one of the model's EOS ids."""
    from ..episodes import ChatTurns, HFGenerate

    rows = [dict(row) for row in dataset]
    turns = ChatTurns.for_model(tokenizer, model, chat_template_kwargs)
    contexts = [turns.prompt_ids(row["prompt"]) for row in rows for _ in range(samples)]
    model.eval()
    generate = HFGenerate(model, tokenizer, temperature=temperature, top_p=top_p, batch_size=batch_size)
    outputs: list[list[int]] = []
    for start in range(0, len(contexts), batch_size):
        outputs += generate(contexts[start : start + batch_size], max_new_tokens, 0)[0]
        logger.info("sampled %d / %d traces", len(outputs), len(contexts))
    return [
        {
            "prompt": rows[i // samples]["prompt"],
            "completion": tokenizer.decode(ids, skip_special_tokens=True),
            "solution": rows[i // samples]["solution"],
            "truncated": not turns.ends_attempt(ids),
        }
        for i, ids in enumerate(outputs)
    ]


USAGE = (
    "selfcorrect redi-data --config RECIPE.yaml --output_dir DIR [--redi_samples 8] [--field value ...]\n"
    "       selfcorrect redi-data --traces TRACES.jsonl --output_dir DIR"
)


def main(argv: list[str] | None = None) -> dict[str, int]:
    """`selfcorrect redi-data`: sample traces from the recipe's model on its training problems, write the REDI data."""
    from transformers import set_seed

    from ..configs import RecipeError, parse_recipe
    from ..models import load_model, load_tokenizer
    from ..precision import autocast_context
    from .loading import load_datasets

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    parser = argparse.ArgumentParser(prog="selfcorrect redi-data", usage=USAGE, allow_abbrev=False)
    parser.add_argument("--output_dir", required=True, help="Folder for sft.jsonl, pairs.jsonl and counts.json.")
    parser.add_argument(
        "--traces", default=None, help="A .jsonl of existing traces (prompt, completion, solution): no sampling."
    )
    parser.add_argument("--redi_samples", type=int, default=8, help="Sampled traces per problem.")
    parser.add_argument(
        "--redi_max_new_tokens", type=int, default=None, help="Token cap (default eval_max_new_tokens)."
    )
    parser.add_argument("--redi_temperature", type=float, default=1.0, help="Sampling temperature (> 0).")
    parser.add_argument("--redi_top_p", type=float, default=1.0, help="Nucleus sampling threshold.")
    parser.add_argument(
        "--redi_max_pairs_per_prompt", type=int, default=1, help="Pairs per problem (no trace reused)."
    )
    try:
        options, rest = parser.parse_known_args(argv)
    except SystemExit as exc:
        if exc.code == 0:  # --help printed the options
            raise
        raise RecipeError(f"redi-data: invalid arguments; usage: {USAGE}") from exc
    for name in ("redi_samples", "redi_max_pairs_per_prompt"):
        if getattr(options, name) < 1:
            raise RecipeError(f"`--{name}` must be at least 1; got {getattr(options, name)}.")
    if options.redi_temperature <= 0:
        raise RecipeError(f"`--redi_temperature` must be > 0 (traces are sampled); got {options.redi_temperature}.")
    out_dir = Path(options.output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if options.traces:  # a teacher's (or any earlier) traces: label and pair them, no model needed
        path = Path(options.traces)
        if not path.is_file() or path.stat().st_size == 0:
            raise DataError(f"`--traces`: {path} does not exist or is empty.")
        traces = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    else:
        model_args, data_args, script_args, training_args = parse_recipe(rest)
        max_new_tokens = options.redi_max_new_tokens or script_args.eval_max_new_tokens
        problems, _ = load_datasets(data_args, train=True, test=False)
        set_seed(training_args.seed)
        tokenizer = load_tokenizer(model_args.model_name_or_path)
        model = load_model(model_args)
        logger.info(
            "sampling %d traces for each of %d problems (<= %d tokens)",
            options.redi_samples,
            len(problems),
            max_new_tokens,
        )
        with autocast_context(script_args.precision):  # bf16 recipes sample in bf16 (fp32 weights)
            traces = sample_traces(
                model,
                tokenizer,
                problems,
                options.redi_samples,
                max_new_tokens,
                options.redi_temperature,
                options.redi_top_p,
                script_args.eval_batch_size,
                script_args.eval_chat_template_kwargs,
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
