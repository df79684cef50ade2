"""Datasets: the bundled arithmetic generator, local files and hub datasets, mapped to `prompt` / `solution`."""

from .formatting import (
    DEFAULT_ANSWER_FORMAT,
    DEFAULT_SYSTEM_PROMPT,
    SOLUTION_FORMATS,
    build_prompt,
    extract_gold_answer,
    read_gold_answer,
)
from .loading import DataError, eval_split_summary, load_completion_dataset, load_datasets

__all__ = [
    "DEFAULT_ANSWER_FORMAT",
    "DEFAULT_SYSTEM_PROMPT",
    "SOLUTION_FORMATS",
    "DataError",
    "build_prompt",
    "eval_split_summary",
    "extract_gold_answer",
    "load_completion_dataset",
    "load_datasets",
    "read_gold_answer",
]
