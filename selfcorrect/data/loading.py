"""Load the problems a recipe names and map them to the canonical columns `prompt` (chat messages) and `solution`.

Sources: `bundled:arithmetic` (the deterministic generator in `arithmetic.py`), a local .jsonl/.json/.parquet/.csv file
or folder, or a hub dataset id. Every other column is kept: reward functions receive all columns as keyword arguments.
Gold answers that math-verify cannot parse are dropped and reported; above `max_unparseable_gold_fraction` loading
fails, since such rows would otherwise be scored as wrong no matter what the model writes.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

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
        splits = load_dataset(builder, data_files={"train": str(path)})
    elif path.is_dir():
        splits = load_dataset(str(path))
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
    """(train, test) datasets with `prompt` and `solution` columns, or None for a split not asked for."""
    train_ds = test_ds = None
    if train:
        raw = _raw_split(data_args, data_args.dataset_train_split)
        train_ds = prepare_split(raw, data_args, data_args.dataset_train_split, data_args.max_train_samples)
    if test:
        raw = _raw_split(data_args, data_args.dataset_test_split)
        test_ds = prepare_split(raw, data_args, data_args.dataset_test_split, data_args.max_eval_samples)
    return train_ds, test_ds
