"""Load the problems a recipe names and map them to the canonical columns `prompt` (chat messages) and `solution`.

Sources: `bundled:arithmetic` (the deterministic generator in `arithmetic.py`), a local .jsonl/.json/.parquet/.csv file
or folder, or a hub dataset id. Every other column is kept: reward functions receive all columns as keyword arguments.
Gold answers that math-verify cannot parse are dropped and reported; above `max_unparseable_gold_fraction` loading
fails, since such rows would otherwise be scored as wrong no matter what the model writes.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .formatting import build_prompt, extract_gold_answer

if TYPE_CHECKING:
    from datasets import Dataset

    from ..configs import DataArgs

logger = logging.getLogger(__name__)

BUNDLED_PREFIX = "bundled:"
_FILE_BUILDERS = {".jsonl": "json", ".json": "json", ".parquet": "parquet", ".csv": "csv"}


class DataError(ValueError):
    """A dataset cannot be used as the recipe describes; the message names the dataset, split or column."""


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
    key = {"train": "train", "test": "test", "eval": "test", "validation": "test"}.get(split)
    if key is None:
        raise DataError(f"`bundled:arithmetic` has the splits train and test; got '{split}'.")
    return Dataset.from_list(to_records(splits[key]))


def _raw_split(data_args: DataArgs, split: str) -> Dataset:
    from datasets import load_dataset

    name = data_args.dataset_name
    if name.startswith(BUNDLED_PREFIX):
        return _bundled_split(data_args, split)
    path = Path(name).expanduser()
    if path.is_file():
        if path.stat().st_size == 0:
            raise DataError(f"`dataset_name`: {path} is empty.")
        builder = _FILE_BUILDERS.get(path.suffix.lower())
        if builder is None:
            raise DataError(f"`dataset_name`: {path} must end in one of {', '.join(_FILE_BUILDERS)}.")
        splits = _load_local(path, lambda: load_dataset(builder, data_files={"train": str(path)}))
    elif path.is_dir():
        splits = _load_local(path, lambda: load_dataset(str(path)))
    elif name.startswith((".", "/", "~")):
        raise DataError(f"`dataset_name`: the local path {name} does not exist.")
    else:
        from ..models import _hub_is_reachable

        if not _hub_is_reachable():
            raise DataError(
                f"`dataset_name`: '{name}' is not a local file or folder and the Hugging Face hub cannot be reached "
                "from this machine. Use `bundled:arithmetic`, or a local .jsonl/.parquet copy of the dataset."
            )
        splits = load_dataset(name, data_args.dataset_config)
    if split not in splits:
        raise DataError(
            f"dataset '{name}' has no split '{split}'; it has {', '.join(splits)}. "
            "Set `dataset_train_split` / `dataset_test_split`."
        )
    return splits[split]


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


def prepare_split(raw: Dataset, data_args: DataArgs, split: str, max_samples: int | None = None) -> Dataset:
    """Check the columns, build `prompt` and `solution`, drop and count unparseable gold answers."""
    from ..rewards import check_gold_answers

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

    def to_canonical(row):
        return {
            "prompt": build_prompt(row[data_args.prompt_column], data_args.system_prompt, data_args.answer_format),
            "solution": extract_gold_answer(row[data_args.solution_column]),
        }

    drop = [c for c in ("prompt", "solution") if c in raw.column_names]
    dataset = raw.map(to_canonical, remove_columns=drop, desc=f"formatting {split}")
    bad = check_gold_answers(dataset["solution"])
    if bad:
        fraction = len(bad) / len(dataset)
        examples = ", ".join(f"row {i}: {dataset[i]['solution']!r}" for i in bad[:3])
        message = f"{source}: {len(bad)} of {len(dataset)} gold answers do not parse ({examples})"
        if fraction > data_args.max_unparseable_gold_fraction:
            raise DataError(
                f"{message}; that is more than `max_unparseable_gold_fraction` = "
                f"{data_args.max_unparseable_gold_fraction}. Check `solution_column`."
            )
        logger.warning("%s; dropping them.", message)
        bad_set = set(bad)
        dataset = dataset.select([i for i in range(len(dataset)) if i not in bad_set])
    return dataset


def load_datasets(data_args: DataArgs, train: bool = True, test: bool = True) -> tuple[Dataset | None, Dataset | None]:
    """(train, test) datasets with `prompt` and `solution` columns, or None for a split not asked for.

    The test split comes from `eval_dataset_name` when it is set (e.g. the problems of a REDI run whose `dataset_name`
    holds trace pairs), else from `dataset_name`.
    """
    train_ds = test_ds = None
    if train:
        raw = _raw_split(data_args, data_args.dataset_train_split)
        train_ds = prepare_split(raw, data_args, data_args.dataset_train_split, data_args.max_train_samples)
    if test:
        if data_args.eval_dataset_name:
            data_args = dataclasses.replace(data_args, dataset_name=data_args.eval_dataset_name)
        raw = _raw_split(data_args, data_args.dataset_test_split)
        test_ds = prepare_split(raw, data_args, data_args.dataset_test_split, data_args.max_eval_samples)
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
