"""Gold answers: kinds, the normalized text match, and adversarial answers that must never score against a gold.

Every verdict goes through `verify_answer`, the check the `accuracy` reward, the multi-attempt judge and the evaluation
share (in its math-verify worker, with the time bound).
"""

from __future__ import annotations

import pytest

from selfcorrect.answers import normalize_text, surface_kind
from selfcorrect.rewards import accuracy_reward, classify_gold_answers, verify_answer


@pytest.mark.parametrize(
    "gold, kind",
    [
        ("42", "number"),
        ("-1/2", "number"),
        ("0.75", "number"),
        ("1,000", "number"),
        ("\\frac{\\sqrt{3}}{2}", "number"),
        ("\\boxed{7}", "number"),
        ("12 feet", "number"),  # a number with a unit is the number
        ("10\\text{ inches}", "number"),
        ("2^floor(5/2)", "number"),  # plain-text function notation read by sympy (math-verify alone reads 2)
        ("(n(n+1)/2)^2", "expression"),
        ("2^{\\lfloor n/2\\rfloor}\\lfloor n/2\\rfloor!", "expression"),
        ("2^floor(n/2)*floor(n/2)!", "expression"),
        ("x=5", "expression"),
        ("[0,1)", "expression"),
        ("\\{1,2,3\\}", "expression"),
        ("2xy", "expression"),
        ("\\theta = \\frac{\\pi}{4}", "expression"),
        ("No", "text"),
        ("Yes", "text"),
        ("True", "text"),
        ("odd", "text"),
        ("A", "text"),  # multiple-choice letters
        ("(C)", "text"),
        ("\\text{(B)}", "text"),
        ("\\text{Monday}", "text"),
        ("xy", "text"),  # math-verify reads x*y: a product of the letters of a word
        ("2 or 3", "text"),
        ("1 or more", "text"),  # words after a number that are no unit
        ("the sum of the first n cubes, or equivalently (n(n+1)/2)^2", "text"),  # words around a formula
        ("??", None),
        ("", None),
    ],
)
def test_gold_kinds(gold, kind):
    assert classify_gold_answers([gold]) == [kind]


def test_text_rules_alone_need_no_math_verify():
    assert surface_kind("No") == ("text", "no")
    assert surface_kind("\\textbf{(D)}") == ("text", "d")
    assert surface_kind("3 apples") == ("number", "3")
    assert surface_kind("x^2 + 1") is None  # math: math-verify decides
    assert surface_kind("  ") == (None, "")


@pytest.mark.parametrize(
    "text, normalized",
    [
        ("Yes.", "yes"),
        ("  The   Sum  ", "the sum"),
        ("\\text{Monday}", "monday"),
        ("$\\text{(C)}$", "c"),
        ("C)", "c"),
        ("[b]", "b"),
        ("\\boxed{\\text{No}}", "no"),
        ('"odd"', "odd"),
    ],
)
def test_normalize_text(text, normalized):
    assert normalize_text(text) == normalized


# Answers a model may write that must score 0 against each gold: bare small integers, variables, the gold's own letters
# (one by one, as a product, reordered), empty and near-empty boxes.
ADVERSARIAL = [
    "0",
    "1",
    "2",
    "3",
    "-1",
    "n",
    "x",
    "o",
    "y",
    "s",
    "e",
    "a",
    "n o",
    "n*o",
    "on",
    "o*n",
    "yes*no",
    "\\infty",
]
ADVERSARIAL_PAIRS = [
    ("No", ADVERSARIAL + ["yes", "\\text{Yes}", "N"]),
    ("Yes", ADVERSARIAL + ["no", "y*e*s", "sey", "e*s*y", "E*s*y"]),
    ("A", [a for a in ADVERSARIAL if a != "a"] + ["B", "(B)", "\\text{(D)}", "ab"]),  # "a" is choice A
    ("odd", ADVERSARIAL + ["even", "d*d*o", "dd*o", "do"]),
    ("the sum of the first n cubes, or equivalently (n(n+1)/2)^2", [*ADVERSARIAL, "(n(n+1)/2)^2", "t*h*e"]),
    ("2^floor(n/2)*floor(n/2)!", [*ADVERSARIAL, "2^n", "2", "\\lfloor n/2\\rfloor!", "2^{\\lfloor n/2\\rfloor}"]),
    ("2^{\\lfloor n/2\\rfloor}\\lfloor n/2\\rfloor!", [*ADVERSARIAL, "2^{n/2}(n/2)!", "f*l*o*o*r"]),
    ("(n(n+1)/2)^2", [*ADVERSARIAL, "n^2", "n^3", "\\frac{n(n+1)}{2}", "n(n+1)"]),
    ("\\frac{n^2(n+1)^2}{4}", [*ADVERSARIAL, "n^4", "\\frac{n^2}{4}"]),
    ("42", [*ADVERSARIAL, "\\text{42 apples and 3 pears}", "4", "24", "the answer", "420"]),
    ("12 feet", [*ADVERSARIAL, "13", "feet", "\\text{twelve}"]),
]


@pytest.mark.parametrize("gold, answers", ADVERSARIAL_PAIRS, ids=[gold[:24] for gold, _ in ADVERSARIAL_PAIRS])
def test_adversarial_answers_never_score(gold, answers):
    false_positives = [a for a in answers if verify_answer(gold, a) is not False]
    assert false_positives == []
    completions = [f"\\boxed{{{a}}}" for a in answers]
    assert accuracy_reward(completions, solution=[gold] * len(answers)) == [0.0] * len(answers)


@pytest.mark.parametrize(
    "gold, answer",
    [
        ("(n(n+1)/2)^2", "\\frac{n^2(n+1)^2}{4}"),  # the closed forms of issue 24 still match
        ("\\frac{n^2(n+1)^2}{4}", "\\left(\\frac{n(n+1)}{2}\\right)^2"),
        ("2^{\\lfloor n/2\\rfloor}\\lfloor n/2\\rfloor!", "2^{\\lfloor n/2 \\rfloor} \\lfloor n/2 \\rfloor!"),
        ("2^floor(n/2)*floor(n/2)!", "2^{\\lfloor n/2\\rfloor}\\lfloor n/2\\rfloor!"),
        ("2^floor(n/2)*floor(n/2)!", "2^{\\lfloor n/2 \\rfloor} \\cdot \\lfloor \\frac{n}{2} \\rfloor!"),
        ("42", "42"),
        ("1/2", "0.5"),
        ("12 feet", "12"),
        ("12 feet", "12 \\text{ feet}"),
        ("x=5", "5"),
        ("[0,1)", "[0, 1)"),
        ("No", "no"),
        ("No", "\\text{No.}"),
        ("Yes", "YES"),
        ("(C)", "C"),
        ("A", "\\textbf{(A)}"),
        ("\\text{Monday}", "Monday"),
    ],
)
def test_right_answers_still_match(gold, answer):
    assert verify_answer(gold, answer) is True
    assert accuracy_reward([f"so \\boxed{{{answer}}}"], solution=[gold]) == [1.0]


def test_text_answer_against_a_math_gold_is_wrong():
    # math-verify alone reads "the answer is 5" and "5 and 7" as math; an answer with words is text, never math
    assert verify_answer("5", "\\text{the answer is } 5") is False
    assert verify_answer("5", "5 \\text{ and } 7") is False
