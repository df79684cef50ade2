"""`selfcorrect revision-data`: gold-derived mistakes with hand-checked values, rows and counts on a small fixed input,
the self-sampled path, unary / indicative feedback, the warm-up context against the episode engine's token splice,
SFT on the rows (loss on the revision only), and bad input."""

from __future__ import annotations

import json

import pytest

from selfcorrect.configs import RecipeError
from selfcorrect.data import DataError
from selfcorrect.data.revision import build_revision_rows, correct_solution, gold_mistakes
from selfcorrect.revision_data import main
from selfcorrect.rewards import extract_boxed, verify_answer
from tests.helpers import dump_recipe, unchanged_parameters

SYSTEM = {"role": "system", "content": "Solve it. Answer in \\boxed{}."}


def _problem(question, solution, expression=None):
    row = {"prompt": [SYSTEM, {"role": "user", "content": question}], "solution": solution}
    if expression is not None:
        row["expression"] = expression
    return row


def _judged(gold, text):
    return verify_answer(gold, extract_boxed(text) or "")


def _by_kind(mistakes):
    out = {}
    for m in mistakes:
        out.setdefault(m.kind, set()).add(m.answer)
    return out


# --- gold-derived mistakes -------------------------------------------------------------------------------------------


def test_gold_mistakes_hand_values_are_all_judged_wrong():
    assert _by_kind(gold_mistakes("42", "17 + 25")) == {"carry": {"32"}, "wrong_op": {"8"}, "off_by_one": {"41", "43"}}
    assert _by_kind(gold_mistakes("25", "42 - 17")) == {
        "borrow": {"35"},  # 2 - 7 -> 5 and 4 - 1 -> 3, no borrow
        "wrong_op": {"59"},
        "swap": {"-25"},
        "off_by_one": {"24", "26"},
    }
    two_step = _by_kind(gold_mistakes("20", "(2 + 3) * 4"))
    assert two_step["order"] == {"14"} and two_step["skipped_step"] == {"5"} and two_step["wrong_op"] == {"4", "9"}
    assert _by_kind(gold_mistakes("56", "7 * 8")) == {"wrong_op": {"15"}, "off_by_one": {"55", "57"}}
    # no expression (or one that does not give the gold answer): perturbations of the gold number only
    generic = {"off_by_one": {"41", "43"}, "digit_swap": {"24"}, "times_ten": {"420"}}
    assert _by_kind(gold_mistakes("42")) == generic
    assert _by_kind(gold_mistakes("42", "17 + 26")) == generic
    assert _by_kind(gold_mistakes("0", "5 - 5")) == {"wrong_op": {"10"}, "off_by_one": {"1"}}  # no -1 count
    assert gold_mistakes("\\frac{1}{2}") == []
    texts = {m.answer: m.text for m in gold_mistakes("42", "17 + 25")}
    assert texts["32"] == "17 + 25 = 32. The answer is \\boxed{32}."
    assert correct_solution("42", "17 + 25") == "17 + 25 = 42. The answer is \\boxed{42}."
    assert correct_solution("20", "(2 + 3) * 4") == "2 + 3 = 5, then 5 * 4 = 20. The answer is \\boxed{20}."
    for gold, expression in (("42", "17 + 25"), ("25", "42 - 17"), ("20", "(2 + 3) * 4"), ("17", "3 * 4 + 5")):
        assert _judged(gold, correct_solution(gold, expression)) is True
        for mistake in gold_mistakes(gold, expression) + gold_mistakes(gold):
            assert _judged(gold, mistake.text) is False, mistake
            assert extract_boxed(mistake.text) == mistake.answer


# --- rows and counts -------------------------------------------------------------------------------------------------

PROBLEMS = [
    _problem("Ravi has 17 cards and buys 25 more. How many now?", "42", "17 + 25"),
    _problem("3 boxes of 4 pens and 5 loose pens. How many pens?", "17", "3 * 4 + 5"),
    _problem("A number question without an expression.", "42"),
    _problem("A question whose gold answer is empty.", ""),  # does not parse: skipped
    _problem("Half of one?", "\\frac{1}{2}"),  # parses, but no number to make mistakes from
]


def test_gold_rows_with_hand_counts():
    rows, counts = build_revision_rows(PROBLEMS, "score_instruction", max_rows_per_problem=2, keep_right_fraction=0.5)
    assert counts == {
        "problems": 5,
        "source": "gold",
        "feedback": "score_instruction",
        "rows": 9,  # 3 problems x 2 wrong first answers, then round(0.5 * 6) = 3 kept right answers
        "rows_by_kind": {"gold_wrong": 6, "self_wrong": 0, "kept_right": 3},
        "wrong_answer_kinds": counts["wrong_answer_kinds"],
        "single_turn_kept_right": 0,
        "kept_right_requested": 3,
        "problems_with_rows": 3,
        "problems_with_expression": 2,
        "unparseable_golds": 1,
        "skipped": {"gold_not_a_number": 1, "unparseable_gold": 1},
    }
    assert sum(counts["wrong_answer_kinds"].values()) == 6
    # each problem gives two different kinds of mistake first (kind-balanced draw)
    for question in (p["prompt"][1]["content"] for p in PROBLEMS[:3]):
        mine = [r for r in rows if r["prompt"][1]["content"] == question and r["kind"] == "gold_wrong"]
        assert len(mine) == 2 and mine[0]["mistake"] != mine[1]["mistake"]
    for row, problem in ((r, next(p for p in PROBLEMS if p["prompt"] == r["prompt"][:2])) for r in rows):
        first, feedback = row["prompt"][2], row["prompt"][3]
        revision = row["completion"][0]["content"]
        assert row["prompt"][:2] == problem["prompt"] and len(row["prompt"]) == 4
        assert first["role"] == "assistant" and feedback["role"] == "user"
        assert feedback["content"].startswith("There might be an error in the solution above")
        assert row["completion"][0]["role"] == "assistant" and _judged(row["solution"], revision) is True
        assert row["first_answer"] == extract_boxed(first["content"])
        if row["kind"] == "gold_wrong":
            assert _judged(row["solution"], first["content"]) is False and row["mistake"]
        else:  # kept right: the right first answer, repeated as the revision
            assert row["kind"] == "kept_right" and first["content"] == revision and row["mistake"] == ""
    # deterministic for a seed
    assert build_revision_rows(PROBLEMS, "score_instruction", max_rows_per_problem=2)[0] == rows
    assert build_revision_rows(PROBLEMS, keep_right_fraction=0.0)[1]["rows_by_kind"]["kept_right"] == 0
    assert (
        build_revision_rows(PROBLEMS, keep_right_fraction=5.0)[1]["skipped"]["kept_right_short"] == 11
    )  # 15 - 4 (1/2 is kept)


def test_unary_kept_right_rows_are_single_turn_and_indicative_says_correct():
    rows, counts = build_revision_rows(PROBLEMS[:3], "unary", keep_right_fraction=1.0)
    kept = [r for r in rows if r["kind"] == "kept_right"]
    assert len(kept) == 3 and counts["single_turn_kept_right"] == 3
    for row in kept:  # a correct answer ends a unary episode: the problem, then the right answer
        assert len(row["prompt"]) == 2 and _judged(row["solution"], row["completion"][0]["content"]) is True
    for row in (r for r in rows if r["kind"] == "gold_wrong"):
        assert row["prompt"][3]["content"] == "Incorrect. Please think again."
    rows, _ = build_revision_rows(PROBLEMS[:3], "indicative", keep_right_fraction=1.0)
    said = {r["kind"]: r["prompt"][3]["content"] for r in rows}
    assert said["kept_right"].startswith("The generated solution is correct.")
    assert said["gold_wrong"].startswith("The generated solution is incorrect.")
    rows, _ = build_revision_rows(PROBLEMS[:1], "unary", feedback_template="No: {answer} is wrong (try {attempt}).")
    assert rows[0]["prompt"][3]["content"] == f"No: {rows[0]['first_answer']} is wrong (try 1)."


def _trace(problem, text, truncated=False):
    return {"prompt": problem["prompt"], "completion": text, "solution": problem["solution"], "truncated": truncated}


def test_self_sampled_rows_with_hand_counts():
    a, b, c = PROBLEMS[0], PROBLEMS[1], PROBLEMS[2]
    traces = [
        _trace(a, "17 + 25 = 42, so \\boxed{42}"),  # correct: the revision of A's wrong answers
        _trace(a, "It is \\boxed{41}"),  # wrong
        _trace(a, "It is \\boxed{41}"),  # duplicate
        _trace(a, "It is \\boxed{40} and"),  # wrong, but cut off by the cap: not a first attempt
        _trace(a, "   "),  # empty
        _trace(b, "I do not know"),  # wrong (no answer): revised with the gold-derived solution
        _trace(c, "\\boxed{42}"),  # correct only: may be kept
        _trace(_problem("Not a problem of the set", "1"), "\\boxed{2}"),
    ]
    traces[3]["truncated"] = True
    rows, counts = build_revision_rows([a, b, c], "score_instruction", "self", traces, keep_right_fraction=1.0)
    assert counts["traces"] == {
        "traces": 8,
        "unmatched_traces": 1,
        "empty_traces": 1,
        "duplicate_traces": 1,
        "truncated_traces": 1,
        "unjudged_traces": 0,
        "correct_traces": 2,
        "wrong_traces": 2,
        "wrong_traces_without_answer": 1,
        "wrong_traces_without_revision": 0,
        "revisions_own": 1,
        "revisions_gold": 1,
    }
    assert counts["rows_by_kind"] == {"gold_wrong": 0, "self_wrong": 2, "kept_right": 2}  # A and C have right answers
    assert counts["skipped"] == {"self_no_wrong_sample": 1}  # C
    assert counts["wrong_answer_kinds"] == {"sampled": 2}
    wrong = {r["prompt"][1]["content"]: r for r in rows if r["kind"] == "self_wrong"}
    assert wrong[a["prompt"][1]["content"]]["prompt"][2]["content"] == "It is \\boxed{41}"
    assert wrong[a["prompt"][1]["content"]]["completion"][0]["content"] == "17 + 25 = 42, so \\boxed{42}"
    assert wrong[b["prompt"][1]["content"]]["completion"][0]["content"] == correct_solution("17", "3 * 4 + 5")
    assert wrong[b["prompt"][1]["content"]]["first_answer"] == ""
    kept = {r["prompt"][1]["content"]: r["completion"][0]["content"] for r in rows if r["kind"] == "kept_right"}
    assert kept == {
        a["prompt"][1]["content"]: "17 + 25 = 42, so \\boxed{42}",
        c["prompt"][1]["content"]: "\\boxed{42}",
    }
    both_rows, both = build_revision_rows([a, b, c], "score_instruction", "both", traces, keep_right_fraction=1.0)
    assert both["rows_by_kind"] == {"gold_wrong": 3, "self_wrong": 2, "kept_right": 5}
    # kept right: one per problem (A and C their own sample, B the gold-derived solution), then A's and C's gold one
    kept = sorted(
        (r["prompt"][1]["content"][:5], r["completion"][0]["content"]) for r in both_rows if not r["mistake"]
    )
    assert kept == sorted(
        [(p["prompt"][1]["content"][:5], correct_solution(p["solution"], p.get("expression"))) for p in (a, b, c)]
        + [
            (a["prompt"][1]["content"][:5], "17 + 25 = 42, so \\boxed{42}"),
            (c["prompt"][1]["content"][:5], "\\boxed{42}"),
        ]
    )


# --- the warm-up context is the episode engine's context -------------------------------------------------------------


@pytest.mark.parametrize("feedback", ["score_instruction", "unary", "indicative"])
def test_warm_up_context_has_the_episode_splice_token_ids(tokenizer, feedback):
    from selfcorrect.data.formatting import DEFAULT_SYSTEM_PROMPT, build_prompt
    from selfcorrect.episodes import ChatTurns

    problem = {
        "prompt": build_prompt("Ravi has 17 cards and buys 25 more. How many now?", DEFAULT_SYSTEM_PROMPT, None),
        "solution": "42",
        "expression": "17 + 25",
    }
    turns = ChatTurns(tokenizer)
    rows, _ = build_revision_rows([problem], feedback, max_rows_per_problem=4, keep_right_fraction=0.0)
    assert len(rows) == 4
    for row in rows:
        attempt, message = row["prompt"][2]["content"], row["prompt"][3]["content"]
        rendered = tokenizer.apply_chat_template(
            row["prompt"], add_generation_prompt=True, tokenize=True, return_dict=False
        )
        prompt_ids = tokenizer.apply_chat_template(
            problem["prompt"], add_generation_prompt=True, tokenize=True, return_dict=False
        )
        attempt_ids = tokenizer(attempt, add_special_tokens=False)["input_ids"]
        splice = list(prompt_ids) + attempt_ids + [tokenizer.eos_token_id] + turns.feedback_ids(message)
        assert list(rendered) == splice, (tokenizer.decode(rendered), tokenizer.decode(splice))
        # TRL's SFT tokenization: the prompt + completion render starts with the rendered prompt (the loss mask's
        # boundary), so the revision is trained as the continuation of exactly this context
        full = tokenizer.apply_chat_template(row["prompt"] + row["completion"], tokenize=True, return_dict=False)
        assert list(full[: len(rendered)]) == list(rendered)


# --- the command and SFT on its rows ---------------------------------------------------------------------------------


def test_command_gold_then_sft_trains_on_the_revision_only(tmp_path, tiny_model_dir, tokenizer):
    from selfcorrect.cli import main as cli_main
    from selfcorrect.train import main as train

    out = tmp_path / "data"
    assert (
        cli_main(
            ["revision-data", "--config", "recipes/demo/score.yaml", "--max_train_samples", "8"]
            + ["--source", "gold", "--output_dir", str(out)]
        )
        == 0
    )
    counts = json.loads((out / "counts.json").read_text())
    rows = [json.loads(line) for line in (out / "sft.jsonl").read_text().splitlines()]
    assert counts["problems"] == 8 and counts["rows_by_kind"] == {"gold_wrong": 8, "self_wrong": 0, "kept_right": 4}
    assert len(rows) == counts["rows"] == 12 and counts["feedback"] == "score_instruction"  # the recipe's feedback
    assert not (out / "traces.jsonl").exists()

    trainer = train(
        ["--config", "recipes/demo/revision_sft.yaml", "--model_name_or_path", str(tiny_model_dir)]
        + ["--dataset_name", str(out / "sft.jsonl"), "--output_dir", str(tmp_path / "sft"), "--max_steps", "1"]
        + ["--eval_before_training", "false", "--eval_after_training", "false", "--learning_rate", "0.01"]
    )
    assert type(trainer).__name__ == "SFTTrainer" and trainer.state.global_step == 1
    assert not unchanged_parameters(tiny_model_dir, tmp_path / "sft")
    # the loss mask covers the revision (and its end of turn), never the first attempt or the feedback
    for example, row in zip(trainer.train_dataset, rows):
        ids, labels = example["input_ids"], example["labels"]  # TRL's labels: -100 = not trained on
        trained = tokenizer.decode([t for t, label in zip(ids, labels) if label != -100])
        assert trained.startswith(row["completion"][0]["content"]), trained
        context = tokenizer.decode([t for t, label in zip(ids, labels) if label == -100])
        assert context.endswith("<|im_start|>assistant\n") and row["prompt"][2]["content"] in context


def _recipe(tmp_path, model_dir, **fields):
    values = dict(
        model_name_or_path=str(model_dir),
        output_dir=str(tmp_path / "unused"),
        use_cpu=True,
        bf16=False,
        arithmetic_train_size=3,
        eval_batch_size=8,
    )
    return dump_recipe(tmp_path, values | fields)


def test_command_samples_the_tiny_model(tmp_path, tiny_model_dir):
    out = tmp_path / "self"
    recipe = _recipe(tmp_path, tiny_model_dir)
    args = ["--config", str(recipe), "--output_dir", str(out), "--revision_samples", "2"]
    counts = main(args + ["--source", "both", "--revision_max_new_tokens", "4", "--feedback", "unary"])
    traces = [json.loads(line) for line in (out / "traces.jsonl").read_text().splitlines()]
    assert len(traces) == 6 and all(t["truncated"] for t in traces)  # random weights: no end of turn in 4 tokens
    # every sampled answer is cut off, so only gold-derived mistakes; unary: kept right rows are single turn
    assert counts["traces"]["truncated_traces"] + counts["traces"]["duplicate_traces"] == 6
    assert counts["rows_by_kind"] == {"gold_wrong": 3, "self_wrong": 0, "kept_right": 2}
    assert counts["single_turn_kept_right"] == 2 and counts["skipped"]["self_no_wrong_sample"] == 3
    with pytest.raises(DataError, match=r"no revision rows.*self_no_wrong_sample: 3.*--revision_samples"):
        main(args + ["--source", "self", "--revision_max_new_tokens", "4", "--output_dir", str(tmp_path / "none")])


@pytest.mark.parametrize("levels, eval_size", [([1, 2], 64), ([3, 4], 160)])
def test_command_draws_from_the_train_split_only(tmp_path, levels, eval_size):
    """Every row of `selfcorrect revision-data` is a training problem, and none shares its arithmetic (by
    `expression_key`) with a test problem of the recipe's split, at the sizes the recipes and reproduce.py use."""
    from selfcorrect.data.arithmetic import make_splits

    recipe = _recipe(
        tmp_path,
        "/nonexistent/model",
        arithmetic_levels=levels,
        arithmetic_train_size=512,
        arithmetic_eval_size=eval_size,
    )
    out = tmp_path / "gold"
    counts = main(["--config", str(recipe), "--output_dir", str(out), "--feedback", "unary"])
    rows = [json.loads(line) for line in (out / "sft.jsonl").read_text().splitlines()]
    assert counts["problems"] == 512 and len(rows) == counts["rows"] > 0
    splits = make_splits(levels=levels, train_size=512, eval_size=eval_size)
    train = {p.question: p for p in splits["train"]}
    test_keys = {p.key for p in splits["test"]}
    test_questions = [p.question for p in splits["test"]]
    for row in rows:
        user = row["prompt"][1]["content"]
        (question,) = [q for q in train if q in user]
        assert train[question].key not in test_keys and str(train[question].answer) == row["solution"]
        assert not any(q in user for q in test_questions)


# --- bad input -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--revision_samples", "0"], r"--revision_samples.*at least 1"),
        (["--source", "self", "--revision_temperature", "0"], r"--revision_temperature.*> 0"),
        (["--feedback", "shout"], r"^`feedback`: unknown feedback provider 'shout'"),
        (["--feedback_template", "Wrong: {nope}"], r"--feedback_template.*nope"),
        (["--source", "teacher"], r"--source.*gold, self, both"),
        (["--max_rows_per_problem", "0"], r"--max_rows_per_problem.*at least 1"),
        (["--keep_right_fraction", "-1"], r"--keep_right_fraction.*>= 0"),
    ],
)
def test_bad_options_fail_before_any_model(tmp_path, extra, message):
    recipe = _recipe(tmp_path, "/nonexistent/model")
    with pytest.raises(RecipeError, match=message):
        main(["--config", str(recipe), "--output_dir", str(tmp_path / "out"), *extra])


def test_bad_datasets_fail_clearly(tmp_path):
    no_gold = tmp_path / "no_gold.jsonl"
    no_gold.write_text(json.dumps({"problem": "What is 1 + 1?", "answer": "2"}) + "\n")
    recipe = _recipe(tmp_path, "/nonexistent/model", dataset_name=str(no_gold))
    with pytest.raises(DataError, match=r"no_gold\.jsonl.*no column\(s\) 'solution'"):
        main(["--config", str(recipe), "--output_dir", str(tmp_path / "out")])
    fractions = tmp_path / "fractions.jsonl"
    fractions.write_text(json.dumps({"problem": "Half of one?", "solution": "\\frac{1}{2}"}) + "\n")
    recipe = _recipe(tmp_path, "/nonexistent/model", dataset_name=str(fractions))
    with pytest.raises(DataError, match=r"no revision rows: no problem of 1 .*gold_not_a_number: 1"):
        main(["--config", str(recipe), "--output_dir", str(tmp_path / "out")])
    with pytest.raises(DataError, match=r"columns prompt and solution; missing solution"):
        build_revision_rows([{"prompt": [SYSTEM]}])
    with pytest.raises(DataError, match=r"--source self.*needs sampled traces"):
        build_revision_rows(PROBLEMS, source="self")
    with pytest.raises(
        DataError, match=r"^`feedback`: unknown feedback provider 'loud'; registered: .*unary"
    ) as error:
        build_revision_rows(PROBLEMS, "loud")
    assert str(error.value).count("feedback`") == 1  # the field is named once
