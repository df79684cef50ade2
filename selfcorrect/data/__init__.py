"""Datasets: the bundled arithmetic generator, local files and hub datasets, mapped to `prompt` / `solution`."""

from .formatting import DEFAULT_ANSWER_FORMAT, DEFAULT_SYSTEM_PROMPT, build_prompt, extract_gold_answer
from .loading import DataError, load_completion_dataset, load_datasets

__all__ = [
    "DEFAULT_ANSWER_FORMAT",
    "DEFAULT_SYSTEM_PROMPT",
    "DataError",
    "build_prompt",
    "extract_gold_answer",
    "load_completion_dataset",
    "load_datasets",
]
