"""Load the problems a recipe names and map them to the canonical columns `prompt` (chat messages) and `solution`.

Sources: `bundled:arithmetic` (the deterministic generator in `arithmetic.py`), a local .jsonl/.json/.parquet/.csv file
or folder (`train.jsonl` + `test.jsonl` give two splits), or a hub dataset id; `eval_split_fraction` / `eval_size` carve
a seeded, disjoint test split out of a single file or a train-only dataset. Every other column is kept: reward
functions receive all columns as keyword arguments.

The final answer is read from `solution_column` as `solution_format` says (`formatting.read_gold_answer`), and every gold
answer is classified (`selfcorrect.answers`): number, expression or text. Text golds are compared by normalized string
match, dropped or refused (`text_gold`); unusable ones (empty, not parseable) are dropped and reported, and above
`max_unparseable_gold_fraction` loading fails, since such rows would be scored as wrong whatever the model writes.
`load_datasets` always prints a load report: rows per split, gold answers by kind, where the answers came from, and a
warning when the evaluation runs on the training rows.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..answers import GOLD_KINDS
from ..errors import DataError
from .formatting import build_prompt

if TYPE_CHECKING:
    from datasets import Dataset

    from .args import DataArgs

logger = logging.getLogger(__name__)

BUNDLED_PREFIX = "bundled:"
_FILE_BUILDERS = {".jsonl": "json", ".json": "json", ".parquet": "parquet", ".csv": "csv"}
LONG_TEXT_GOLD_WORDS = 5  # longer text golds are reported: an exact string match of prose almost never happens
_BUNDLED_SPLITS = {"train": "train", "test": "test", "eval": "test", "validation": "test"}


def _bundled_split(data_args: DataArgs, split: str) -> Dataset:
    from datasets import Dataset

    from .arithmetic import make_splits, to_records

    name = data_args.dataset_name[len(BUNDLED_PREFIX) :]
    if name != "arithmetic":
        raise DataError(f"`dataset_name`: unknown bundled dataset '{name}'; the bundled one is `bundled:arithmetic`.")
    splits = make_splits(
        levels=tuple(data_args.arithmetic_levels),
        train_size=data_args.arithmetic_train_size,
        eval_size=data_args.arithmetic_eval_size,
        seed=data_args.arithmetic_seed,
    )
    key = _BUNDLED_SPLITS.get(split)
    if key is None:
        raise DataError(f"`bundled:arithmetic` has the splits train and test; got '{split}'.")
    return Dataset.from_list(to_records(splits[key]))


def _raw_splits(data_args: DataArgs):
    """Every split of `dataset_name` that is a local file or folder or a hub dataset (a `DatasetDict`)."""
    from datasets import load_dataset

    name = data_args.dataset_name
    path = Path(name).expanduser()
    if path.is_file():
        if path.stat().st_size == 0:
            raise DataError(f"`dataset_name`: {path} is empty.")
        builder = _FILE_BUILDERS.get(path.suffix.lower())
        if builder is None:
            raise DataError(f"`dataset_name`: {path} must end in one of {', '.join(_FILE_BUILDERS)}.")
        return _load_local(path, lambda: load_dataset(builder, data_files={"train": str(path)}))
    if path.is_dir():
        return _load_local(path, lambda: load_dataset(str(path)))
    if name.startswith((".", "/", "~")):
        raise DataError(f"`dataset_name`: the local path {name} does not exist.")
    from ..network import hub_is_reachable

    if not hub_is_reachable():
        raise DataError(
            f"`dataset_name`: '{name}' is not a local file or folder and the Hugging Face hub cannot be reached "
            "from this machine. Use `bundled:arithmetic`, or a local .jsonl/.parquet copy of the dataset."
        )
    return load_dataset(name, data_args.dataset_config)


def _raw_split(data_args: DataArgs, split: str) -> Dataset:
    if data_args.dataset_name.startswith(BUNDLED_PREFIX):
        return _bundled_split(data_args, split)
    splits = _raw_splits(data_args)
    if split not in splits:
        raise DataError(
            f"dataset '{data_args.dataset_name}' has no split '{split}'; it has {', '.join(splits)}. "
            "Set `dataset_train_split` / `dataset_test_split`, or carve a test split out of the training rows with "
            "`eval_split_fraction` (or `eval_size`)."
        )
    return splits[split]


def carves_eval_split(data_args: DataArgs) -> bool:
    """Does the recipe carve its test split out of the training rows (`eval_split_fraction` / `eval_size`)?"""
    return data_args.eval_split_fraction is not None or data_args.eval_size is not None


def _carved_splits(data_args: DataArgs) -> tuple[Dataset, Dataset]:
    """(train, test) rows of `dataset_train_split`: a seeded, disjoint carve, each part in file order.

    The same recipe carves the same rows in `selfcorrect train` and `selfcorrect eval` (the carve depends only on the
    rows, the size and `eval_split_seed`).
    """
    import random

    splits = _raw_splits(data_args)
    train_split, test_split = data_args.dataset_train_split, data_args.dataset_test_split
    if train_split not in splits:
        raise DataError(
            f"dataset '{data_args.dataset_name}' has no split '{train_split}' to carve a test split from; it has "
            f"{', '.join(splits)}. Set `dataset_train_split`."
        )
    if test_split in splits and test_split != train_split:
        raise DataError(
            f"dataset '{data_args.dataset_name}' already has a '{test_split}' split; `eval_split_fraction` / "
            "`eval_size` carve one out of a dataset that has none. Drop them to evaluate on it, or set "
            "`dataset_test_split` to another name."
        )
    raw = splits[train_split]
    n = len(raw)
    if data_args.eval_size is not None:
        n_test, field_ = data_args.eval_size, f"`eval_size` = {data_args.eval_size}"
    else:
        n_test = max(1, round(data_args.eval_split_fraction * n))
        field_ = f"`eval_split_fraction` = {data_args.eval_split_fraction}"
    if not 1 <= n_test < n:
        raise DataError(
            f"{field_}: dataset '{data_args.dataset_name}' (split '{train_split}') has {n} rows; the carve must leave "
            "at least one row on each side."
        )
    order = list(range(n))
    random.Random(data_args.eval_split_seed).shuffle(order)
    return raw.select(sorted(order[n_test:])), raw.select(sorted(order[:n_test]))


def evaluates_training_rows(data_args: DataArgs) -> bool:
    """Is the test split the training split itself (scores that are not held out)?"""
    if carves_eval_split(data_args):
        return False
    if data_args.eval_dataset_name and data_args.eval_dataset_name != data_args.dataset_name:
        return False
    if data_args.dataset_name.startswith(BUNDLED_PREFIX):
        return _BUNDLED_SPLITS.get(data_args.dataset_test_split) == "train"
    return data_args.dataset_test_split == data_args.dataset_train_split


def eval_split_summary(data_args: DataArgs) -> dict[str, Any]:
    """What the evaluation ran on, for its results file: dataset, split, and whether the rows were held out."""
    carve = carves_eval_split(data_args)
    return {
        "dataset": data_args.eval_dataset_name or data_args.dataset_name,
        "split": f"held out of '{data_args.dataset_train_split}'" if carve else data_args.dataset_test_split,
        "held_out": not evaluates_training_rows(data_args),
    }


def _load_local(path: Path, load):
    """`datasets.load_dataset` on a local file or folder, with its parse errors turned into a `DataError`."""
    try:
        return load()
    except Exception as exc:  # datasets wraps JSON/CSV/Parquet decoding errors in DatasetGenerationError
        cause = exc.__cause__ or exc
        raise DataError(
            f"`dataset_name`: {path} could not be read as a dataset ({type(cause).__name__}: {str(cause)[:200]}). "
            "Expected one JSON object per line (.jsonl), a JSON list (.json), Parquet or CSV with a header."
        ) from exc


def _is_prompt(value: Any) -> bool:
    if isinstance(value, str):
        return bool(value.strip())
    return (
        isinstance(value, list)
        and bool(value)
        and all(isinstance(m, dict) and isinstance(m.get("role"), str) and "content" in m for m in value)
    )


def check_columns(raw: Dataset, prompt_column: str, solution_column: str, source: str) -> None:
    """Questions must be non-empty text or chat messages, gold answers text or numbers: else a `DataError`."""
    for column, ok, expected in (
        (prompt_column, _is_prompt, "a non-empty question or a list of chat messages ({'role', 'content'})"),
        (solution_column, lambda v: v is None or isinstance(v, str | int | float), "a string or a number"),
    ):
        bad = [i for i, value in enumerate(raw[column]) if not ok(value)]
        if bad:
            example = raw[bad[0]][column]
            raise DataError(
                f"{source}: column '{column}' must hold {expected}; {len(bad)} of {len(raw)} rows do not "
                f"(row {bad[0]}: {example!r:.80})."
            )


def _read_golds(raw: Dataset, data_args: DataArgs, source: str) -> tuple[list[str], dict[str, int]]:
    """The final answer of every row (`solution_format`) and how many came from each form; a `DataError` naming the
    column, the count and the first row when the column does not hold what the format says."""
    from .formatting import SolutionFormatError, read_gold_answer

    column, fmt = data_args.solution_column, data_args.solution_format
    golds, sources, failures = [], {}, []
    for i, value in enumerate(raw[column]):
        try:
            gold, where = read_gold_answer(value, fmt)
        except SolutionFormatError as exc:
            failures.append((i, value, str(exc)))
            continue
        golds.append(gold)
        sources[where] = sources.get(where, 0) + 1
    if failures:
        i, value, why = failures[0]
        hint = (
            "Set `solution_format: last_number` to take the last number of each solution, `final` if the column holds "
            "the answers themselves, or point `solution_column` at a column of final answers."
            if fmt == "auto"
            else "Check `solution_format` and `solution_column`."
        )
        raise DataError(
            f"{source}: column '{column}' (`solution_format: {fmt}`): {len(failures)} of {len(raw)} rows cannot be "
            f"read; row {i} {why} ({str(value)!r:.100}). {hint}"
        )
    return golds, sources


def prepare_split(
    raw: Dataset, data_args: DataArgs, split: str, max_samples: int | None = None, report: list[str] | None = None
) -> Dataset:
    """Check the columns, build `prompt` and `solution`, classify the gold answers and apply `text_gold`, drop and
    count unusable ones. Appends its lines of the load report to `report` when given."""
    from ..rewards import classify_gold_answers

    source = f"dataset '{data_args.dataset_name}' (split '{split}')"
    missing = [c for c in (data_args.prompt_column, data_args.solution_column) if c not in raw.column_names]
    if missing:
        raise DataError(
            f"{source} has no column(s) {', '.join(repr(c) for c in missing)}; its columns are "
            f"{', '.join(raw.column_names)}. Map them with `prompt_column` / `solution_column`."
        )
    if len(raw) == 0:
        raise DataError(f"{source} is empty.")
    if max_samples is not None:
        raw = raw.select(range(min(max_samples, len(raw))))
    check_columns(raw, data_args.prompt_column, data_args.solution_column, source)
    golds, sources = _read_golds(raw, data_args, source)
    kinds = classify_gold_answers(golds)

    def to_canonical(row, index):
        return {
            "prompt": build_prompt(row[data_args.prompt_column], data_args.system_prompt, data_args.answer_format),
            "solution": golds[index],
        }

    drop = [c for c in ("prompt", "solution") if c in raw.column_names]
    dataset = raw.map(to_canonical, with_indices=True, remove_columns=drop, desc=f"formatting {split}")
    text = [i for i, kind in enumerate(kinds) if kind == "text"]
    if text and data_args.text_gold == "error":
        raise DataError(
            f"{source}: {len(text)} of {len(kinds)} gold answers are text, not math ({_examples(golds, text)}); "
            "`text_gold: error` refuses them. Use `text_gold: match` (normalized string match) or `drop`."
        )
    bad = [i for i, kind in enumerate(kinds) if kind is None]
    if bad:
        fraction = len(bad) / len(dataset)
        message = f"{source}: {len(bad)} of {len(dataset)} gold answers do not parse ({_examples(golds, bad)})"
        if fraction > data_args.max_unparseable_gold_fraction:
            raise DataError(
                f"{message}; that is more than `max_unparseable_gold_fraction` = "
                f"{data_args.max_unparseable_gold_fraction}. Check `solution_column` and `solution_format`."
            )
        logger.warning("%s; dropping them.", message)
    dropped = set(bad) | (set(text) if data_args.text_gold == "drop" else set())
    if dropped:
        dataset = dataset.select([i for i in range(len(dataset)) if i not in dropped])
    if len(dataset) == 0:
        raise DataError(
            f"{source}: no row is left once the unusable and text gold answers are dropped (`text_gold: drop`); "
            "check `solution_column` and `solution_format`, or use `text_gold: match`."
        )
    if report is not None:
        report.extend(_gold_report(kinds, sources, text, bad, data_args, golds))
    return dataset


def _examples(golds: list[str], indices: list[int], count: int = 3) -> str:
    return ", ".join(f"row {i}: '{golds[i][:60]}'" for i in indices[:count])


def _gold_report(
    kinds: list[str | None], sources: dict[str, int], text: list[int], bad: list[int], data_args: DataArgs, golds
) -> list[str]:
    """The gold lines of the load report: answers by kind, what happens to text and unusable ones, where answers came
    from."""
    counts = ", ".join(f"{sum(k == kind for k in kinds)} {kind}" for kind in GOLD_KINDS)
    lines = [f"  gold answers: {counts}, {len(bad)} unusable" + (" (dropped)" if bad else "")]
    if text:
        what = {
            "match": "compared by normalized string match, never as math (`text_gold: drop` drops them)",
            "drop": "dropped (`text_gold: drop`)",
        }[data_args.text_gold]
        lines.append(f"  text gold answers: {what}; e.g. {_examples(golds, text, 2)}")
        long = [i for i in text if len(golds[i].split()) > LONG_TEXT_GOLD_WORDS]
        if long and data_args.text_gold == "match":
            lines.append(
                f"  WARNING: {len(long)} text gold answers have more than {LONG_TEXT_GOLD_WORDS} words (e.g. "
                f"{_examples(golds, long, 1)}): a model rarely writes them verbatim, so they score 0 almost always. "
                "Rewrite them as math, or drop them with `text_gold: drop`."
            )
    if bad:
        lines.append(f"  unusable gold answers: {_examples(golds, bad, 2)}")
    names = {"gsm8k": "after ####", "boxed": "from \\boxed{}", "final": "as given", "last_number": "last number"}
    read = ", ".join(f"{n} {names[where]}" for where, n in sources.items())
    lines.append(
        f"  answers read from '{data_args.solution_column}' (solution_format: {data_args.solution_format}): {read}"
    )
    return lines


def print_load_report(lines: list[str]) -> None:
    """The load report on the console, once (on the main process under `accelerate launch`)."""
    if os.environ.get("RANK", "0") == "0" and lines:
        print("\n".join(lines), flush=True)


def load_datasets(data_args: DataArgs, train: bool = True, test: bool = True) -> tuple[Dataset | None, Dataset | None]:
    """(train, test) datasets with `prompt` and `solution` columns, or None for a split not asked for.

    The test split comes from `eval_dataset_name` when it is set (e.g. the problems of a REDI run whose `dataset_name`
    holds trace pairs), else from `dataset_name`; with `eval_split_fraction` / `eval_size` it is carved out of the
    training split (and the training split loses those rows). Prints the load report: rows, gold answers by kind,
    where the answers came from, and a warning when the evaluation runs on the training rows.
    """
    train_ds = test_ds = None
    report: list[str] = []
    carve = carves_eval_split(data_args)
    carved = _carved_splits(data_args) if carve else None
    name, train_split = data_args.dataset_name, data_args.dataset_train_split
    if train:
        raw = carved[0] if carved else _raw_split(data_args, train_split)
        lines: list[str] = []
        train_ds = prepare_split(raw, data_args, train_split, data_args.max_train_samples, lines)
        held = (
            f", {len(carved[1])} rows held out for the test split (seed {data_args.eval_split_seed})" if carve else ""
        )
        report += [f"data: '{name}' split '{train_split}': {len(train_ds)} training problems{held}", *lines]
    if test:
        test_args = data_args
        if data_args.eval_dataset_name:
            test_args = dataclasses.replace(data_args, dataset_name=data_args.eval_dataset_name)
        split = f"{train_split} (held out)" if carve else data_args.dataset_test_split
        raw = carved[1] if carved else _raw_split(test_args, test_args.dataset_test_split)
        lines = []
        test_ds = prepare_split(raw, test_args, split, data_args.max_eval_samples, lines)
        report += [f"data: '{test_args.dataset_name}' split '{split}': {len(test_ds)} test problems", *lines]
        if evaluates_training_rows(data_args):
            report.append(
                f"  WARNING: the test split '{data_args.dataset_test_split}' is the training split: evaluation scores "
                "are not held out. Carve a test split with `eval_split_fraction` (or `eval_size`), or give a test "
                "split (a folder with train.jsonl and test.jsonl, or `eval_dataset_name`)."
            )
    print_load_report(report)
    return train_ds, test_ds


def _assistant_turn(value: Any) -> list[dict[str, str]] | None:
    """A completion as TRL's conversational format wants it (a list with one assistant message); None if empty."""
    if isinstance(value, str):
        return [{"role": "assistant", "content": value}] if value.strip() else None
    if isinstance(value, list) and value and all(isinstance(m, dict) for m in value):
        messages = [dict(m) for m in value]
        text = "".join(str(m.get("content") or "") for m in messages if m.get("role", "assistant") == "assistant")
        return messages if text.strip() else None
    return None


def load_completion_dataset(data_args: DataArgs, completion_columns: tuple[str, ...]) -> Dataset:
    """Offline training rows: a prompt and one or more completions, in TRL's conversational format.

    `completion_columns` is ("chosen", "rejected") for preference pairs (`method: redi`) or ("completion",) for SFT.
    The prompt is read from `prompt_column` if the dataset has it, else from `prompt`, and built like every other
    prompt (system prompt and answer format added to a plain-text question). A completion is a string or a list of chat
    messages. A missing column, an empty dataset, or an empty completion fails, naming the dataset, row and column.
    """
    split = data_args.dataset_train_split
    raw = _raw_split(data_args, split)
    source = f"dataset '{data_args.dataset_name}' (split '{split}')"
    prompt_column = data_args.prompt_column if data_args.prompt_column in raw.column_names else "prompt"
    missing = [c for c in (prompt_column, *completion_columns) if c not in raw.column_names]
    if missing:
        raise DataError(
            f"{source} has no column(s) {', '.join(repr(c) for c in missing)}; its columns are "
            f"{', '.join(raw.column_names)}. This method trains on a prompt (`prompt_column` or 'prompt') and "
            f"{' and '.join(repr(c) for c in completion_columns)} (`selfcorrect redi-data` writes such files)."
        )
    if len(raw) == 0:
        raise DataError(f"{source} is empty.")
    if data_args.max_train_samples is not None:
        raw = raw.select(range(min(data_args.max_train_samples, len(raw))))
    rows = []
    for i, row in enumerate(raw):
        out = {"prompt": build_prompt(row[prompt_column], data_args.system_prompt, data_args.answer_format)}
        for column in completion_columns:
            turn = _assistant_turn(row[column])
            if turn is None:
                raise DataError(
                    f"{source}, row {i}: column '{column}' is empty or not text / chat messages ({row[column]!r:.80}). "
                    f"Every row needs a non-empty {' and a '.join(repr(c) for c in completion_columns)} trace."
                )
            out[column] = turn
        rows.append(out)
    from datasets import Dataset

    return Dataset.from_list(rows)
