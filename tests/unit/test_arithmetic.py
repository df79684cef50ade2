"""The bundled arithmetic generator: determinism, correct answers, level ranges and disjoint splits."""

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
    generate_problem,
    generate_problems,
    make_splits,
    to_records,
)

# Inclusive answer bounds per level.
ANSWER_RANGES = {1: (2, 18), 2: (0, 18), 3: (0, 198), 4: (1, 108), 5: (0, 108)}


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
            assert "+" in problem.expression and all(1 <= n <= 9 for n in ops)
        elif problem.level == 2:
            assert all(1 <= n <= 9 for n in ops) and "*" not in problem.expression
        elif problem.level == 3:
            assert all(10 <= n <= 99 for n in ops) and "*" not in problem.expression
        elif problem.level == 4:
            a, op, b = problem.expression.split()
            a, b = int(a), int(b)
            if op == "*":
                assert 2 <= a <= 9 and 2 <= b <= 9
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


def test_splits_sizes_disjoint_and_balanced():
    splits = make_splits(levels=(1, 2, 3), train_size=301, eval_size=60, seed=3)
    train, test = splits["train"], splits["test"]
    assert len(train) == 301 and len(test) == 60
    assert not {p.question for p in train} & {p.question for p in test}
    assert len({p.question for p in train}) == 301 and len({p.question for p in test}) == 60
    assert Counter(p.level for p in test) == {1: 20, 2: 20, 3: 20}
    counts = Counter(p.level for p in train)
    assert set(counts) == {1, 2, 3} and max(counts.values()) - min(counts.values()) <= 1
    assert [p.level for p in test[:6]] == [1, 2, 3, 1, 2, 3]  # round-robin
    assert make_splits(levels=(1, 2, 3), train_size=301, eval_size=60, seed=3) == splits
    assert make_splits(levels=(1, 2, 3), train_size=301, eval_size=60, seed=4) != splits


def test_splits_defaults_and_large_level1():
    splits = make_splits()
    assert len(splits["train"]) == 512 and len(splits["test"]) == 64
    assert {p.level for p in splits["train"]} == {1, 2}
    big = make_splits(levels=(1,), train_size=2000, eval_size=200, seed=0)
    assert not {p.question for p in big["train"]} & {p.question for p in big["test"]}
    assert len({p.question for p in big["train"]}) == 2000


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
