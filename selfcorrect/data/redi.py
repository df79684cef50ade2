"""REDI training data: label traces with the `accuracy` verifier, build (prompt, correct, incorrect) pairs and an SFT set.

    selfcorrect redi-data --config recipes/demo/grpo.yaml --redi_samples 4 --redi_temperature 0.7 \\
        --redi_max_new_tokens 64 --max_train_samples 64 --output_dir outputs/demo-redi-data

    selfcorrect redi-data --traces teacher_traces.jsonl --output_dir outputs/redi-teacher-data

`build_redi_data` works on any dataset of traces with columns `prompt`, `completion`, `solution` (one row per trace;
e.g. a teacher's samples, or the policy's own); it runs no model. The command (`selfcorrect.redi_data`) samples those
traces from the recipe's model on the recipe's training problems (or reads them from `--traces`) and writes, under
`--output_dir`:
- `sft.jsonl`: one row per distinct correct trace (`prompt`, `completion`, `solution`) for stage 1 (`method: sft`);
- `pairs.jsonl`: (`prompt`, `chosen`, `rejected`, `solution`) for stage 2 (`method: redi`, `dataset_name: .../pairs.jsonl`);
- `counts.json`: what was kept and dropped, and why.
A trace is correct when its last `\\boxed{}` answer is equivalent to the gold answer (`selfcorrect.rewards.verify_answer`,
math-verify); a trace cut off by the token cap counts as incorrect, as in training; prompts whose gold answer does not
parse are dropped. Each prompt gives up to `max_pairs_per_prompt` pairs, and no trace is used in two pairs.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

from ..errors import DataError

if TYPE_CHECKING:
    from datasets import Dataset

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
