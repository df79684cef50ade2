"""Reward functions on tricky answer formats; thread safety; time bound; registry and error reporting."""

from __future__ import annotations

import threading

import pytest

from selfcorrect import rewards
from selfcorrect.rewards import (
    RewardFunctionError,
    accuracy_reward,
    check_gold_answers,
    extract_boxed,
    format_reward,
    get_reward_funcs,
    verify_answer,
    verify_stats,
)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("so \\boxed{42}.", "42"),
        ("\\boxed{\\frac{1}{2}}", "\\frac{1}{2}"),
        ("first \\boxed{3} then \\boxed{4}", "4"),
        ("\\fbox{7}", "7"),
        ("\\boxed{}", ""),
        ("no box", None),
        ("\\boxed{unbalanced", None),
    ],
)
def test_extract_boxed(text, expected):
    assert extract_boxed(text) == expected


@pytest.mark.parametrize(
    "completion, gold, expected",
    [
        ("The answer is \\boxed{\\frac{1}{2}}", "1/2", 1.0),
        ("\\boxed{0.5}", "1/2", 1.0),
        ("\\boxed{0.50}", "\\frac{1}{2}", 1.0),
        ("\\boxed{\\dfrac{3}{4}}", "0.75", 1.0),
        ("\\boxed{-3}", "-3", 1.0),
        ("\\boxed{3} no wait \\boxed{4}", "4", 1.0),  # the last box counts
        ("\\boxed{4} no wait \\boxed{3}", "4", 0.0),
        ("\\boxed{5}", "4", 0.0),
        ("4", "4", 0.0),  # no boxed answer
        ("\\boxed{}", "4", 0.0),
        ("\\boxed{72}", "$72$", 1.0),
    ],
)
def test_accuracy_reward_formats(completion, gold, expected):
    assert accuracy_reward([completion], solution=[gold]) == [expected]


def test_unparseable_gold_is_none_never_one():
    assert accuracy_reward(["\\boxed{4}", "\\boxed{not a number ???}"], solution=["not a number ???", ""]) == [
        None,
        None,
    ]
    assert check_gold_answers(["1", "abc ???", "\\frac12", "", "$x+1$"]) == [1, 3]


def test_conversational_completions_and_format_reward():
    completions = [[{"role": "assistant", "content": "It is \\boxed{8}"}], [{"role": "assistant", "content": "8"}]]
    assert accuracy_reward(completions, solution=["8", "8"]) == [1.0, 0.0]
    assert format_reward(completions) == [1.0, 0.0]
    assert format_reward(["\\boxed{ }"]) == [0.0]


def test_accuracy_in_a_background_thread_like_trl():
    results = []
    thread = threading.Thread(
        target=lambda: results.append(accuracy_reward(["\\boxed{\\frac{2}{4}}", "\\boxed{3}"], solution=["0.5", "4"]))
    )
    thread.start()
    thread.join(timeout=60)
    assert results == [[1.0, 0.0]]


def test_time_bound_scores_false_and_the_checker_recovers():
    before = verify_stats()["timeouts"]
    assert verify_answer("1/2", "\\frac{2}{4}", timeout_s=1e-4) is False
    assert verify_stats()["timeouts"] == before + 1
    assert verify_answer("1/2", "\\frac{2}{4}") is True  # a fresh worker answers


def test_long_garbage_answer_does_not_hang():
    garbage = "\\boxed{" + "{" * 50 + "x" * 100_000 + "}" * 50 + "}"
    assert accuracy_reward([garbage], solution=["4"]) == [0.0]


def my_reward(completions, **kwargs):
    return [float(len(rewards.completion_text(c))) for c in completions]


def test_registry_and_dotted_paths():
    accuracy, custom, dotted = get_reward_funcs(
        ["accuracy", "tests.test_rewards:my_reward", "tests.helpers.varied_reward"]
    )
    assert accuracy.__name__ == "accuracy" and custom.__name__ == "my_reward" and dotted.__name__ == "varied_reward"
    assert custom(["abc"]) == [3.0]
    with pytest.raises(ValueError, match="unknown reward function 'acc'.*accuracy"):
        get_reward_funcs(["acc"])
    with pytest.raises(ValueError, match="cannot import module 'no_such_module'"):
        get_reward_funcs(["no_such_module:f"])
    with pytest.raises(ValueError, match="has no attribute 'nope'"):
        get_reward_funcs(["tests.helpers:nope"])
    with pytest.raises(ValueError, match="empty"):
        get_reward_funcs([])


def test_failing_reward_names_function_and_sample():
    def picky(completions, solution, **kwargs):
        return [1.0 / (len(c) - 3) for c in completions]  # fails on 3-character completions

    wrapped = rewards.wrap_reward_func(picky, "picky")
    with pytest.raises(RewardFunctionError, match=r"'picky' failed on sample 2 \(completion: 'abc'\)"):
        wrapped(["a", "ab", "abc", "abcd"], solution=["1"] * 4)
    bad_length = rewards.wrap_reward_func(lambda completions, **kw: [1.0], "short")
    with pytest.raises(RewardFunctionError, match="must return a list of 2"):
        bad_length(["a", "b"])
