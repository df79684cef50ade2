"""Malformed recipes and datasets fail with our clear errors (RecipeError / DataError), never a traceback from TRL.

A seeded sample of mutations of a real recipe: every field of the method's dataclasses, set to values of the wrong
type, empty, negative, zero or huge. Parsing must either accept the value or raise `RecipeError`; anything else (a
ZeroDivisionError inside TRL, an AttributeError from transformers) is a failure.
"""

from __future__ import annotations

import dataclasses
import json
import random

import pytest
import yaml

from selfcorrect.configs import DataArgs, RecipeError, parse_recipe, recipe_dataclasses
from selfcorrect.data import DataError, load_datasets
from tests.helpers import ROOT

BAD_VALUES = ["", "abc", -1, 0, 10**12, 1e308, [], {}, None, True, [1, "x"], "1e-3", {"a": [1]}]


def _mutations(method: str, count: int, seed: int = 0) -> list[tuple[str, object]]:
    names = sorted({f.name for cls in recipe_dataclasses(method) for f in dataclasses.fields(cls) if f.init})
    every = [(name, value) for name in names for value in BAD_VALUES]
    return random.Random(seed).sample(every, min(count, len(every)))


@pytest.mark.parametrize("recipe", ["demo/score.yaml", "demo/grpo.yaml", "demo/ufo.yaml", "demo/nsr.yaml"])
def test_mutated_recipes_parse_or_raise_recipe_error(tmp_path, recipe):
    base = yaml.safe_load((ROOT / "recipes" / recipe).read_text())
    failures = []
    for name, value in _mutations(base.get("method", "grpo"), count=150):
        path = tmp_path / "recipe.yaml"
        path.write_text(yaml.safe_dump({**base, name: value}))
        try:
            parse_recipe(["--config", str(path)])
        except RecipeError as exc:
            assert str(exc).strip()
        except BaseException as exc:  # noqa: BLE001 - collect every escape, report them together
            failures.append(f"{name}={value!r}: {type(exc).__name__}: {exc}"[:300])
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--num_generations", "0"], "`num_generations` must be a positive integer; got 0"),
        (["--method", "scorer"], "unknown method 'scorer'"),
        (["--accelerator_config", "missing.json"], "missing.json"),
        (["--learning_rate", "fast"], "invalid command-line arguments"),
    ],
)
def test_bad_command_line_overrides_name_the_field(argv, message):
    with pytest.raises(RecipeError, match=message):
        parse_recipe(["--config", str(ROOT / "recipes" / "demo" / "score.yaml"), *argv])


def _row(problem="1 + 1?", solution="2"):
    return json.dumps({"problem": problem, "solution": solution})


@pytest.mark.parametrize(
    "lines, message",
    [
        ([], "is empty"),
        (["not json", "{"], "could not be read as a dataset"),
        ([json.dumps({"problem": "1 + 1?"})], r"has no column\(s\) 'solution'"),
        ([_row(solution=[2])], "column 'solution' must hold a string or a number; 1 of 1 rows"),
        ([_row(solution={"a": 1})], "column 'solution' must hold a string or a number"),
        ([_row(solution=None)], "gold answers do not parse"),
        ([_row(solution="")], "gold answers do not parse"),
        ([_row(), _row(problem="")], r"column 'problem' must hold a non-empty question.*1 of 2 rows .*row 1"),
        ([_row(problem=None)], "column 'problem' must hold a non-empty question"),
        ([_row(problem=7)], "column 'problem' must hold a non-empty question"),
        ([_row(problem=[{"text": "hi"}])], "list of chat messages"),
        ([json.dumps([1, 2])], r"has no column\(s\)"),
    ],
    ids=lambda v: v if isinstance(v, str) and len(v) < 40 else None,
)
def test_malformed_datasets_raise_data_error_naming_file_and_column(tmp_path, lines, message):
    path = tmp_path / "data.jsonl"
    path.write_text("".join(line + "\n" for line in lines))
    with pytest.raises(DataError, match=message):
        load_datasets(DataArgs(dataset_name=str(path)), train=True, test=False)


def test_huge_and_unicode_questions_load(tmp_path):
    path = tmp_path / "data.jsonl"
    path.write_text("\n".join([_row(problem="x" * 200_000), _row(problem="Combien font 1 + 1 ? ½ ✓ 漢字")]) + "\n")
    train, _ = load_datasets(DataArgs(dataset_name=str(path)), train=True, test=False)
    assert len(train) == 2 and train[1]["prompt"][-1]["content"].startswith("Combien font 1 + 1 ? ½ ✓ 漢字")
