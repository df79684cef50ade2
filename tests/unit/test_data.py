"""Loading: canonical columns, column maps, gold answers, and errors that name the dataset, split or column."""

from __future__ import annotations

import pytest

from selfcorrect.configs import DataArgs, RecipeError
from selfcorrect.data import (
    DataError,
    build_prompt,
    eval_split_summary,
    extract_gold_answer,
    load_datasets,
    read_gold_answer,
)
from selfcorrect.data.formatting import SolutionFormatError
from tests.helpers import write_jsonl


def test_bundled_dataset_has_canonical_columns():
    train, test = load_datasets(DataArgs(arithmetic_train_size=8, arithmetic_eval_size=4))
    assert len(train) == 8 and len(test) == 4
    row = train[0]
    assert [m["role"] for m in row["prompt"]] == ["system", "user"]
    assert "\\boxed{}" in row["prompt"][1]["content"] and row["solution"].isdigit()
    assert {"level", "expression"} <= set(train.column_names)  # kept for reward functions


def test_prompt_building_and_gold_extraction():
    assert build_prompt("2+2?", None, None) == [{"role": "user", "content": "2+2?"}]
    chat = [{"role": "user", "content": "hi"}]
    assert build_prompt(chat, "sys", "fmt") == [{"role": "system", "content": "sys"}, *chat]
    assert extract_gold_answer("Natalia sold ... #### 1,072") == "1072"  # GSM8K
    assert extract_gold_answer("so the answer is $\\boxed{\\frac{1}{2}}$.") == "\\frac{1}{2}"  # MATH
    assert extract_gold_answer(7) == "7"


def test_local_jsonl_with_column_map(tmp_path):
    path = str(
        write_jsonl(tmp_path / "d.jsonl", [{"question": f"{i} + 1?", "answer": f"#### {i + 1}"} for i in range(5)])
    )
    args = DataArgs(dataset_name=path, prompt_column="question", solution_column="answer")
    train, _ = load_datasets(args, test=False)
    assert train["solution"] == ["1", "2", "3", "4", "5"]


def test_missing_column_names_the_columns(tmp_path):
    path = str(write_jsonl(tmp_path / "d.jsonl", [{"question": "q", "answer": "1"}]))
    with pytest.raises(DataError, match=r"no column\(s\) 'problem'.*question, answer.*prompt_column"):
        load_datasets(DataArgs(dataset_name=path, solution_column="answer"), test=False)


def test_empty_dataset_and_missing_split(tmp_path):
    empty = tmp_path / "e.jsonl"
    empty.write_text("")
    with pytest.raises(DataError, match="e.jsonl is empty"):
        load_datasets(DataArgs(dataset_name=str(empty)), test=False)
    path = str(write_jsonl(tmp_path / "d.jsonl", [{"problem": "q", "solution": "1"}]))
    with pytest.raises(DataError, match="no split 'test'"):
        load_datasets(DataArgs(dataset_name=path), train=False)


def test_unparseable_gold_answers_dropped_then_fatal(tmp_path):
    rows = [{"problem": f"q{i}", "solution": str(i)} for i in range(99)] + [{"problem": "bad", "solution": "??"}]
    path = str(write_jsonl(tmp_path / "d.jsonl", rows))
    train, _ = load_datasets(DataArgs(dataset_name=path, max_unparseable_gold_fraction=0.05), test=False)
    assert len(train) == 99
    with pytest.raises(DataError, match="1 of 100 gold answers do not parse.*row 99"):
        load_datasets(DataArgs(dataset_name=path, max_unparseable_gold_fraction=0.0), test=False)


def test_hub_dataset_without_network_fails_fast(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(DataError, match="cannot be reached"):
        load_datasets(DataArgs(dataset_name="openai/gsm8k"), test=False)


# --- solution formats --------------------------------------------------------------------------------------------------

WORKED = "Natalia sold 48 clips in April. In May she sold half as many, 24 clips. Altogether 72 clips."


@pytest.mark.parametrize(
    "value, solution_format, expected",
    [
        ("She sold 48 + 24 = 72 clips.\n#### 72", "auto", ("72", "gsm8k")),
        ("so $\\boxed{\\frac{1}{2}}$. Then \\boxed{3}", "auto", ("3", "boxed")),  # the last box
        ("\\frac{1}{2}", "auto", ("\\frac{1}{2}", "final")),  # short answers are final answers
        ("the sum of the first n cubes", "auto", ("the sum of the first n cubes", "final")),
        (72, "auto", ("72", "final")),
        ("#### 7 is the answer", "final", ("#### 7 is the answer", "final")),  # final: the value as is
        ("x #### 1,234", "gsm8k", ("1234", "gsm8k")),
        ("\\boxed{x^2}", "boxed", ("x^2", "boxed")),
        (WORKED, "last_number", ("72", "last_number")),
        ("It costs 1,250 dollars, or -3.5 a day", "last_number", ("-3.5", "last_number")),
        (None, "boxed", ("", "boxed")),  # a missing gold: "" is counted and dropped as unusable
    ],
)
def test_read_gold_answer(value, solution_format, expected):
    assert read_gold_answer(value, solution_format) == expected


@pytest.mark.parametrize(
    "value, solution_format, reason",
    [
        (WORKED, "auto", "worked solution with neither"),  # no ####, no box: its last number is a guess
        ("First add.\nThen 72", "auto", "worked solution"),
        ("the answer is \\boxed{}", "boxed", "no non-empty, closed"),
        ("the answer is 72", "gsm8k", "no `####`"),
        ("no digits here", "last_number", "no number"),
    ],
)
def test_read_gold_answer_refuses(value, solution_format, reason):
    with pytest.raises(SolutionFormatError, match=reason):
        read_gold_answer(value, solution_format)


def test_worked_solutions_are_refused_naming_the_column_and_row(tmp_path):
    rows = [{"problem": "q0", "solution": "#### 5"}, {"problem": "q1", "solution": WORKED}]
    path = str(write_jsonl(tmp_path / "d.jsonl", rows))
    with pytest.raises(
        DataError,
        match=r"column 'solution' \(`solution_format: auto`\): 1 of 2 rows .*row 1 is a "
        r"worked solution.*Natalia.*solution_format: last_number",
    ):
        load_datasets(DataArgs(dataset_name=path), test=False)
    train, _ = load_datasets(DataArgs(dataset_name=path, solution_format="last_number"), test=False)
    assert train["solution"] == ["5", "72"]


def test_bad_data_fields_fail_early_naming_the_field():
    with pytest.raises(RecipeError, match="`solution_format` must be one of auto, final, gsm8k, boxed, last_number"):
        DataArgs(solution_format="latex")
    with pytest.raises(RecipeError, match="`text_gold` must be one of match, drop, error; got 'keep'"):
        DataArgs(text_gold="keep")
    with pytest.raises(RecipeError, match="`eval_split_fraction` must be between 0 and 1"):
        DataArgs(dataset_name="d.jsonl", eval_split_fraction=1.5)
    with pytest.raises(RecipeError, match="not both"):
        DataArgs(dataset_name="d.jsonl", eval_split_fraction=0.1, eval_size=3)
    with pytest.raises(RecipeError, match="`eval_size` must be a positive"):
        DataArgs(dataset_name="d.jsonl", eval_size=0)
    with pytest.raises(RecipeError, match="has its own test split; size it with `arithmetic_eval_size`"):
        DataArgs(eval_split_fraction=0.1)
    with pytest.raises(RecipeError, match="`eval_dataset_name` names another test set"):
        DataArgs(dataset_name="d.jsonl", eval_dataset_name="t.jsonl", eval_size=2)


# --- gold kinds and the load report ------------------------------------------------------------------------------------

MIXED = [
    {"problem": "q0", "solution": "42"},
    {"problem": "q1", "solution": "\\frac{n(n+1)}{2}"},
    {"problem": "q2", "solution": "No"},
    {"problem": "q3", "solution": "(B)"},
    {"problem": "q4", "solution": "\\{1, 2\\}"},
    {"problem": "q5", "solution": "the sum of the first n cubes, or equivalently (n(n+1)/2)^2"},
]


def test_load_report_counts_gold_kinds_and_text_policy(tmp_path, capsys):
    path = str(write_jsonl(tmp_path / "d.jsonl", MIXED))
    train, _ = load_datasets(DataArgs(dataset_name=path), test=False)
    assert len(train) == 6  # text_gold: match keeps the text golds
    out = capsys.readouterr().out
    assert f"data: '{path}' split 'train': 6 training problems" in out
    assert "gold answers: 1 number, 2 expression, 3 text, 0 unusable" in out
    assert "compared by normalized string match, never as math" in out
    assert "answers read from 'solution' (solution_format: auto): 6 as given" in out
    assert "WARNING: 1 text gold answers have more than 5 words (e.g. row 5: 'the sum of the first n" in out

    train, _ = load_datasets(DataArgs(dataset_name=path, text_gold="drop"), test=False)
    assert train["solution"] == ["42", "\\frac{n(n+1)}{2}", "\\{1, 2\\}"]
    out = capsys.readouterr().out
    assert "3 text, 0 unusable" in out and "dropped (`text_gold: drop`)" in out  # counted, dropped or not
    with pytest.raises(DataError, match=r"3 of 6 gold answers are text.*row 2: 'No'.*`text_gold: error`"):
        load_datasets(DataArgs(dataset_name=path, text_gold="error"), test=False)


# --- a held-out split from one file ------------------------------------------------------------------------------------


def test_eval_split_fraction_carves_a_deterministic_disjoint_test_split(tmp_path, capsys):
    rows = [{"problem": f"{i} + 1?", "solution": str(i + 1)} for i in range(20)]
    path = str(write_jsonl(tmp_path / "d.jsonl", rows))
    args = DataArgs(dataset_name=path, eval_split_fraction=0.25)
    train, test = load_datasets(args)
    assert (len(train), len(test)) == (15, 5)
    train_q = [p[-1]["content"] for p in train["prompt"]]
    test_q = [p[-1]["content"] for p in test["prompt"]]
    assert not set(train_q) & set(test_q) and len(set(train_q) | set(test_q)) == 20
    assert load_datasets(args)[1]["solution"] == test["solution"]  # the same rows every time (train and eval agree)
    assert (
        load_datasets(DataArgs(dataset_name=path, eval_split_fraction=0.25), train=False)[1]["solution"]
        == (test["solution"])
    )
    other = load_datasets(DataArgs(dataset_name=path, eval_split_fraction=0.25, eval_split_seed=1), train=False)[1]
    assert other["solution"] != test["solution"]
    assert len(load_datasets(DataArgs(dataset_name=path, eval_size=3), train=False)[1]) == 3
    out = capsys.readouterr().out
    assert "15 training problems, 5 rows held out for the test split (seed 0)" in out
    assert "split 'train (held out)': 5 test problems" in out and "WARNING" not in out
    assert eval_split_summary(args) == {"dataset": path, "split": "held out of 'train'", "held_out": True}
    with pytest.raises(DataError, match=r"`eval_size` = 20: .* has 20 rows; the carve must leave at least one row"):
        load_datasets(DataArgs(dataset_name=path, eval_size=20))


def test_eval_split_refused_where_the_dataset_has_a_test_split(tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    write_jsonl(folder / "train.jsonl", [{"problem": f"q{i}", "solution": str(i)} for i in range(4)])
    write_jsonl(folder / "test.jsonl", [{"problem": "t", "solution": "1"}])
    train, test = load_datasets(DataArgs(dataset_name=str(folder)))  # the folder form: train and test files
    assert (len(train), len(test)) == (4, 1)
    with pytest.raises(DataError, match="already has a 'test' split"):
        load_datasets(DataArgs(dataset_name=str(folder), eval_size=1))


def test_evaluating_the_training_split_warns_and_is_recorded(tmp_path, capsys, monkeypatch):
    from selfcorrect import evaluate

    path = str(write_jsonl(tmp_path / "d.jsonl", [{"problem": "1+1?", "solution": "2"}]))
    args = DataArgs(dataset_name=path, dataset_test_split="train")
    load_datasets(args, train=False)
    assert "WARNING: the test split 'train' is the training split: evaluation scores are not held out" in (
        capsys.readouterr().out
    )
    assert eval_split_summary(args) == {"dataset": path, "split": "train", "held_out": False}

    saved = {}
    monkeypatch.setattr(evaluate, "load_model_for_eval", lambda model_args: (None, None))
    monkeypatch.setattr(evaluate, "evaluate_with_script_args", lambda *a: {"metrics": {}, "samples": [], "config": {}})
    monkeypatch.setattr(evaluate, "save_results", lambda result, d, name: saved.update(result) or tmp_path / "e.json")
    monkeypatch.setattr(evaluate, "markdown_table", lambda *a, **k: "")
    argv = ["--dataset_name", path, "--dataset_test_split", "train", "--output_dir", str(tmp_path / "o")]
    evaluate.main([*argv, "--use_cpu", "true", "--bf16", "false", "--report_to", "none"])
    assert saved["config"]["eval_split"] == {"dataset": path, "split": "train", "held_out": False}
