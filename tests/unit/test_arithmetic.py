"""The bundled arithmetic generator: determinism, correct answers, level ranges and splits disjoint by arithmetic."""

from __future__ import annotations

import random
import re
import subprocess
import sys
from collections import Counter

import pytest

from selfcorrect.data.arithmetic import (
    _TEMPLATES,
    LEVELS,
    Problem,
    _fields,
    _Template,
    describe_levels,
    expression_key,
    generate_problem,
    generate_problems,
    make_splits,
    split_report,
    to_records,
)

# Inclusive answer bounds per level.
ANSWER_RANGES = {1: (2, 20), 2: (0, 20), 3: (0, 198), 4: (1, 108), 5: (0, 108)}


def _numbers(text: str) -> list[int]:
    return sorted(int(n) for n in re.findall(r"\d+", text))


@pytest.fixture(scope="module")
def many() -> list[Problem]:
    return [p for level in LEVELS for p in generate_problems(level, 400, seed=7)]


def test_generate_problems_is_deterministic():
    assert generate_problems(3, 50, seed=1) == generate_problems(3, 50, seed=1)
    assert generate_problems(3, 50, seed=1) != generate_problems(3, 50, seed=2)
    assert generate_problems(3, 50, seed=1) != generate_problems(4, 50, seed=1)
    assert generate_problems(2, 0, seed=0) == []


def test_deterministic_across_processes():
    code = "from selfcorrect.data.arithmetic import make_splits; print([p.question for p in make_splits((1, 5), 8, 4)['train']])"
    runs = {
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout for _ in "ab"
    }
    assert len(runs) == 1
    assert runs.pop().strip() == str([p.question for p in make_splits((1, 5), 8, 4)["train"]])


def test_generate_problem_does_not_touch_global_rng():
    random.seed(123)
    expected = random.random()
    random.seed(123)
    generate_problems(5, 20, seed=0)
    generate_problem(random.Random(0), 1)
    assert random.random() == expected


def test_answers_match_expressions_and_text(many):
    assert len(many) == 2000
    for problem in many:
        assert eval(problem.expression) == problem.answer >= 0  # noqa: S307 - our own arithmetic strings
        # The numbers in the question are exactly the operands of the expression.
        assert _numbers(problem.question) == _numbers(problem.expression), problem
        assert problem.question.endswith("?")
        assert "{" not in problem.question and "}" not in problem.question


def test_answer_ranges_per_level(many):
    for problem in many:
        low, high = ANSWER_RANGES[problem.level]
        assert low <= problem.answer <= high, problem


def test_level_operands(many):
    for problem in many:
        ops = _numbers(problem.expression)
        if problem.level == 1:
            assert "+" in problem.expression and all(1 <= n <= 19 for n in ops) and sum(ops) <= 20
        elif problem.level == 2:
            assert all(1 <= n <= 20 for n in ops) and "*" not in problem.expression
            assert "-" in problem.expression or sum(ops) <= 20
        elif problem.level == 3:
            assert all(10 <= n <= 99 for n in ops) and "*" not in problem.expression
        elif problem.level == 4:
            a, op, b = problem.expression.split()
            a, b = int(a), int(b)
            if op == "*":
                assert 2 <= a <= 9 and 2 <= b and a * b <= 99
            else:
                assert 10 <= a <= 99 and 1 <= b <= 9
                assert (a % 10 + b >= 10) if op == "+" else (a % 10 < b)
        else:
            assert len(ops) == 3 and all(1 <= n <= 20 for n in ops)


def test_every_operation_kind_is_generated(many):
    shapes = {re.sub(r"\d+", "n", p.expression) for p in many}
    kinds = {"n + n", "n - n", "n * n", "n + n - n", "n - n + n", "n + n + n", "n * n + n", "n * n - n", "(n + n) * n"}
    assert shapes == kinds


@pytest.mark.parametrize("kind", sorted(_TEMPLATES))
def test_every_template_renders_with_every_noun(kind):
    """All fields resolve and only the operands appear as numbers, for every template, noun and container."""
    assert len(_TEMPLATES[kind]) >= 6
    rng = random.Random(0)
    arity = 2 if kind in ("add", "sub", "mul") else 3
    for template in _TEMPLATES[kind]:
        variants = [
            _Template(template.text, containers=((cont, conts, (noun,)),))
            for cont, conts, nouns in template.containers
            for noun in nouns
        ] or [_Template(template.text, nouns=(noun,)) for noun in template.nouns]
        for variant in variants:
            for operands in [(1, 1, 1), (2, 3, 4), (12, 7, 19)]:
                question = variant.text.format_map(_fields(rng, variant, operands[:arity]))
                assert _numbers(question) == sorted(operands[:arity]), question
                assert question[0].isupper() and question.endswith("?") and "  " not in question


def test_singular_and_plural_agreement(many):
    for problem in many:
        q = problem.question
        assert not re.search(r"\bare 1\b|\bis (?:[02-9]|\d\d+)\b", q), q
        for word in re.findall(r"\b1 (\w+)", q):
            assert word in {"is", "gets", "leaves", "arrives"} or not word.endswith("s"), q


def test_expression_key_is_the_arithmetic_whatever_its_order():
    assert expression_key("3 + 5") == expression_key("5 + 3") == expression_key("(5 + 3)") == "(+3 +5)"
    assert expression_key("9 - 2 + 4") == expression_key("4 + 9 - 2") == "(+4 +9 -2)"
    assert expression_key("3 * 4 + 2") == expression_key("2 + 4 * 3") == "(+2 +(3*4))"
    assert expression_key("(2 + 3) * 4") == expression_key("4 * (3 + 2)") == "(4*(+2 +3))"
    assert expression_key("9 - (2 + 3)") == "(+9 -2 -3)"  # a subtracted sum flips its terms
    assert expression_key("9 - 2") != expression_key("2 - 9")
    assert expression_key("10 + 9") == "(+9 +10)"  # numbers in numeric order
    assert expression_key("3 * 4 + 2") != expression_key("(3 + 4) * 2")
    with pytest.raises(ValueError, match="not an expression"):
        expression_key("3 / 4")


def test_level_spaces_hold_the_hand_counted_expressions():
    """Levels 1, 2 and level 4's products, counted by hand: sums a + b <= 20 (a, b >= 1): 1 + 1 + 2 + 2 + ... + 9 + 9
    + 10 = 100 unordered pairs; differences a - b (2 <= a <= 20, 1 <= b <= a): 2 + 3 + ... + 20 = 209; products a * b
    (2 <= a <= 9, 2 <= b, a * b <= 99): 48 + 32 + 23 + 18 + 15 + 13 + 11 + 10 = 170 ordered, less the 28 pairs of
    distinct one-digit factors counted twice: 142. Level 4's sums and differences with a carry or borrow: 9 * 45 each."""
    assert len({p.key for p in generate_problems(1, 3000, seed=0)}) == 100
    level2 = generate_problems(2, 6000, seed=0)
    assert len({p.key for p in level2}) == 309 and len({p.key for p in level2 if "-" in p.expression}) == 209
    level4 = generate_problems(4, 30000, seed=0)
    assert len({p.key for p in level4 if "*" in p.expression}) == 142
    assert len({p.key for p in level4}) == 142 + 405 + 405


def _keys(problems):
    return {p.key for p in problems}


def test_splits_sizes_disjoint_and_balanced():
    splits = make_splits(levels=(1, 2, 3), train_size=301, eval_size=60, seed=3)
    train, test = splits["train"], splits["test"]
    assert len(train) == 301 and len(test) == 60
    assert not _keys(train) & _keys(test)  # disjoint by arithmetic, hence by question
    assert len({p.question for p in train}) == 301 and len(_keys(test)) == 60
    assert Counter(p.level for p in test) == {1: 20, 2: 20, 3: 20}
    counts = Counter(p.level for p in train)
    assert set(counts) == {1, 2, 3} and max(counts.values()) - min(counts.values()) <= 1
    assert [p.level for p in test[:6]] == [1, 2, 3, 1, 2, 3]  # round-robin
    assert make_splits(levels=(1, 2, 3), train_size=301, eval_size=60, seed=3) == splits
    assert make_splits(levels=(1, 2, 3), train_size=301, eval_size=60, seed=4) != splits


# Every level set the recipes and scripts use, at their sizes (recipes/demo/*.yaml: levels 1-2, 512 train and 16, 32 or
# 64 test; revision_warmup_unary.yaml: levels 3-4 and 64; recipes/reproduce.py: 160 test problems at levels 1-2 or
# 3-4; RESULTS.md's by-level table: levels 1-5 and 160; tests/helpers.py, test_slow.py, soak.py and bench.py: small
# splits of levels 1-2 and 1), with the distinct training expressions each holds (by level).
RECIPE_SPLITS = [
    ((1, 2), 512, 16, {1: 52, 2: 206}),
    ((1, 2), 512, 32, {1: 52, 2: 206}),
    ((1, 2), 512, 64, {1: 52, 2: 206}),
    ((1, 2), 512, 160, {1: 9, 2: 146}),  # 80 of level 1's 100 sums are test problems: 9 left in train
    ((3, 4), 512, 64, {3: 256, 4: 256}),
    ((3, 4), 512, 160, {3: 256, 4: 256}),
    ((1, 2, 3, 4, 5), 512, 160, {1: 51, 2: 103, 3: 102, 4: 102, 5: 102}),
    ((1, 2), 16, 4, None),
    ((1, 2), 64, 1, None),
    ((1,), 8, 8, None),
]


@pytest.mark.parametrize("levels, train_size, eval_size, train_expressions", RECIPE_SPLITS)
def test_recipe_splits_share_no_arithmetic(levels, train_size, eval_size, train_expressions):
    splits = make_splits(levels=levels, train_size=train_size, eval_size=eval_size)
    train, test = splits["train"], splits["test"]
    assert len(train) == train_size and len(test) == eval_size
    assert not _keys(train) & _keys(test)
    assert len(_keys(test)) == eval_size  # one expression per test problem
    assert len({p.question for p in train}) == train_size  # a repeated expression comes with a new wording
    report = split_report(splits)
    assert report["shared_expressions"] == 0 and report["test"]["expressions"] == eval_size
    by_level = {level: counts["expressions"] for level, counts in report["train"]["levels"].items()}
    if train_expressions:
        assert by_level == train_expressions
    assert report["train"]["expressions"] == len(_keys(train))


@pytest.mark.parametrize("levels, small, large", [((1, 2), 16, 64), ((3, 4), 32, 160), ((3, 4), 64, 160)])
def test_splits_of_different_eval_sizes_share_no_arithmetic(levels, small, large):
    """Rows built from one recipe's train split (the Makefile's revision data: ufo.yaml, 32 test problems) are trained
    and evaluated under another's (revision_warmup_unary.yaml, 64; reproduce.py, 160): the reserved test pool keeps the
    train split the same and the smaller test split a per-level prefix of the larger."""
    a, b = make_splits(levels=levels, eval_size=small), make_splits(levels=levels, eval_size=large)
    assert a["train"] == b["train"] and not _keys(a["train"]) & _keys(b["test"])
    assert a["test"] == b["test"][:small]  # round-robin over levels: the first `small` of the larger split


def test_split_report_counts_a_hand_made_split():
    a, b, c = (Problem(q, 8, 1, e) for q, e in (("A?", "3 + 5"), ("B?", "5 + 3"), ("C?", "2 + 6")))
    d = Problem("D?", 1, 2, "4 - 3")
    report = split_report({"train": [a, b, d], "test": [c, Problem("E?", 8, 1, "5 + 3")]})
    assert report["train"] == {
        "problems": 3,
        "questions": 3,
        "expressions": 2,  # 3 + 5 and 5 + 3 are one
        "levels": {1: {"problems": 2, "expressions": 1}, 2: {"problems": 1, "expressions": 1}},
    }
    assert report["test"]["expressions"] == 2 and report["shared_expressions"] == 1  # E is a's arithmetic


def test_small_spaces_warn_and_an_exhausted_level_fails(caplog):
    with caplog.at_level("WARNING", logger="selfcorrect.data.arithmetic"):
        make_splits(levels=(1, 2), train_size=512, eval_size=64)
    # 241, not 52 + 206: level 2's sums are level 1's arithmetic, and 17 of them are in both levels' problems
    assert "the train split's 512 problems hold 241 distinct expressions (by level: 1: 52 of 256, 2: 206 of 256)" in (
        caplog.text
    )
    with pytest.raises(ValueError, match="Level 1 has no expression left outside the other split"):
        make_splits(levels=(1,), train_size=64, eval_size=300)  # the test split takes all 100 sums


def test_splits_defaults():
    splits = make_splits()
    assert len(splits["train"]) == 512 and len(splits["test"]) == 64
    assert {p.level for p in splits["train"]} == {1, 2}


@pytest.mark.parametrize("levels", [(0,), (6,), (1, 9), (), ("1",)])
def test_bad_levels(levels):
    with pytest.raises(ValueError, match="1-5"):
        make_splits(levels=levels)


def test_bad_level_names_the_level():
    with pytest.raises(ValueError, match="level 7.*1-5"):
        generate_problems(7, 3, seed=0)
    with pytest.raises(ValueError, match="1-5"):
        generate_problem(random.Random(0), 0)


@pytest.mark.parametrize("sizes", [dict(train_size=0), dict(eval_size=0), dict(train_size=-5), dict(eval_size=-1)])
def test_bad_sizes(sizes):
    with pytest.raises(ValueError, match="must be positive"):
        make_splits(**sizes)


def test_records_and_descriptions():
    problems = generate_problems(5, 3, seed=0)
    records = to_records(problems)
    assert [set(r) for r in records] == [{"problem", "solution", "level", "expression"}] * 3
    assert all(r["solution"] == str(p.answer) and r["problem"] == p.question for r, p in zip(records, problems))
    descriptions = describe_levels()
    assert tuple(descriptions) == LEVELS and all(isinstance(d, str) and d for d in descriptions.values())
