"""Loading: canonical columns, column maps, gold answers, and errors that name the dataset, split or column."""

from __future__ import annotations

import pytest

from selfcorrect.configs import DataArgs
from selfcorrect.data import DataError, build_prompt, extract_gold_answer, load_datasets
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
