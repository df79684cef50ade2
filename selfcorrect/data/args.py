"""The recipe's data fields (`DataArgs`): where the problems come from and how they become prompts.

They live with the data they describe, so that the loaders (`selfcorrect.data.loading`) need nothing from the recipe
layer above; `selfcorrect.configs` gathers them with the model, script and training fields into a recipe.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import RecipeError
from .formatting import DEFAULT_ANSWER_FORMAT, DEFAULT_SYSTEM_PROMPT, SOLUTION_FORMATS

TEXT_GOLD_POLICIES = ("match", "drop", "error")  # what the loader does with text gold answers (`text_gold`)


@dataclass
class DataArgs:
    """Where the problems come from and how they become prompts."""

    dataset_name: str = field(
        default="bundled:arithmetic",
        metadata={
            "help": "`bundled:arithmetic` (generated word problems), a local .jsonl/.json/.parquet/.csv file or folder, "
            "or a hub dataset id."
        },
    )
    dataset_config: str | None = field(default=None, metadata={"help": "Hub dataset configuration name."})
    dataset_train_split: str = field(default="train", metadata={"help": "Split used for training."})
    dataset_test_split: str = field(default="test", metadata={"help": "Split used for evaluation."})
    eval_dataset_name: str | None = field(
        default=None,
        metadata={
            "help": "Problems for the evaluation (default: `dataset_name`); set it when `dataset_name` holds traces "
            "rather than problems (`method: redi` pairs, `method: sft` completions)."
        },
    )
    prompt_column: str = field(
        default="problem",
        metadata={"help": "Column with the question: plain text, or a list of chat messages (used as is)."},
    )
    solution_column: str = field(
        default="solution", metadata={"help": "Column with the gold final answer (or a solution holding it)."}
    )
    solution_format: str = field(
        default="auto",
        metadata={
            "help": "How the final answer is read from `solution_column`: `final` (the column is the answer), "
            "`gsm8k` (after `####`), `boxed` (the last `\\boxed{}`), `last_number` (the last number of the text), or "
            "`auto`: `####`, else the last `\\boxed{}`, else the value itself when it is a short final answer; a "
            "column of worked solutions with neither is refused."
        },
    )
    text_gold: str = field(
        default="match",
        metadata={
            "help": "Gold answers that are text, not math (prose, yes/no, choice letters, words around a formula; see "
            "`selfcorrect.answers`): `match` compares them by normalized string match, `drop` drops those rows, "
            "`error` refuses the dataset. They are never compared as math."
        },
    )
    eval_split_fraction: float | None = field(
        default=None,
        metadata={
            "help": "Carve this fraction of `dataset_train_split` out as the test split (deterministic, disjoint; "
            "for a single file or a train-only dataset). Exclusive with `eval_size`."
        },
    )
    eval_size: int | None = field(
        default=None,
        metadata={
            "help": "Carve this many rows of `dataset_train_split` out as the test split (as `eval_split_fraction`)."
        },
    )
    eval_split_seed: int = field(
        default=0, metadata={"help": "Seed of the rows `eval_split_fraction` / `eval_size` carve."}
    )
    system_prompt: str | None = field(
        default=DEFAULT_SYSTEM_PROMPT,
        metadata={"help": "System message prepended to every prompt (null for none)."},
    )
    answer_format: str | None = field(
        default=DEFAULT_ANSWER_FORMAT,
        metadata={"help": "Instruction appended to each question, e.g. how to write the final answer (null: none)."},
    )
    arithmetic_levels: list[int] = field(
        default_factory=lambda: [1, 2],
        metadata={"help": "Difficulty levels (1-5) of the bundled problems."},
    )
    arithmetic_train_size: int = field(default=512, metadata={"help": "Bundled problems in the train split."})
    arithmetic_eval_size: int = field(default=64, metadata={"help": "Bundled problems in the test split."})
    arithmetic_seed: int = field(default=0, metadata={"help": "Seed of the bundled problem generator."})
    max_train_samples: int | None = field(default=None, metadata={"help": "Keep the first N training rows."})
    max_eval_samples: int | None = field(default=None, metadata={"help": "Keep the first N evaluation rows."})
    max_unparseable_gold_fraction: float = field(
        default=0.01,
        metadata={
            "help": "Rows whose gold answer math-verify cannot parse are dropped and reported; above this fraction "
            "of the split, loading fails."
        },
    )

    def __post_init__(self):
        if self.solution_format not in SOLUTION_FORMATS:
            raise RecipeError(
                f"`solution_format` must be one of {', '.join(SOLUTION_FORMATS)}; got {self.solution_format!r}."
            )
        if self.text_gold not in TEXT_GOLD_POLICIES:
            raise RecipeError(f"`text_gold` must be one of {', '.join(TEXT_GOLD_POLICIES)}; got {self.text_gold!r}.")
        self._check_eval_split()
        if not 0.0 <= self.max_unparseable_gold_fraction <= 1.0:
            raise RecipeError(
                f"`max_unparseable_gold_fraction` must be in [0, 1]; got {self.max_unparseable_gold_fraction}."
            )
        for name in ("arithmetic_train_size", "arithmetic_eval_size"):
            if getattr(self, name) < 1:
                raise RecipeError(f"`{name}` must be a positive integer; got {getattr(self, name)}.")
        bad = [level for level in self.arithmetic_levels if level not in (1, 2, 3, 4, 5)]
        if bad or not self.arithmetic_levels:
            raise RecipeError(
                f"`arithmetic_levels` must be a non-empty list of levels 1-5; got {self.arithmetic_levels}."
            )

    def _check_eval_split(self) -> None:
        """`eval_split_fraction` / `eval_size`: one of them, in range, and only where there is a split to carve."""
        if self.eval_split_fraction is None and self.eval_size is None:
            return
        if self.eval_split_fraction is not None and self.eval_size is not None:
            raise RecipeError("set `eval_split_fraction` or `eval_size`, not both.")
        if self.eval_split_fraction is not None and not 0.0 < self.eval_split_fraction < 1.0:
            raise RecipeError(
                f"`eval_split_fraction` must be between 0 and 1 (e.g. 0.1); got {self.eval_split_fraction}."
            )
        if self.eval_size is not None and self.eval_size < 1:
            raise RecipeError(f"`eval_size` must be a positive number of rows; got {self.eval_size}.")
        carve = "`eval_split_fraction`" if self.eval_split_fraction is not None else "`eval_size`"
        if self.dataset_name.startswith("bundled:"):
            raise RecipeError(
                f"{carve}: `{self.dataset_name}` has its own test split; size it with `arithmetic_eval_size`."
            )
        if self.eval_dataset_name:
            raise RecipeError(
                f"{carve} carves the test split out of `dataset_name`; `eval_dataset_name` names another test set. "
                "Set one of them."
            )
