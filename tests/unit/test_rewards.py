"""Rewards: answer extraction, math-verify equivalence on tricky formats, the worker's time bound, registry, errors."""

from __future__ import annotations

import asyncio
import inspect
import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from selfcorrect import rewards
from selfcorrect.rewards import (
    REWARD_FUNCS,
    RewardFunctionError,
    accuracy_reward,
    check_gold_answers,
    completion_text,
    extract_boxed,
    format_reward,
    get_reward_funcs,
    parse_gold,
    verify_answer,
    verify_stats,
    wrap_reward_func,
)
from tests.helpers import ROOT


def _run_python(code: str, tmp_path: Path, timeout: float = 60) -> subprocess.CompletedProcess:
    script = tmp_path / "script.py"
    script.write_text(textwrap.dedent(code))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_WAIT_POLICY": "PASSIVE"}
    return subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=timeout, env=env
    )


# --- text helpers ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, expected",
    [
        ("so the answer is \\boxed{42}.", "42"),
        ("\\boxed{\\frac{1}{2}}", "\\frac{1}{2}"),
        ("first \\boxed{3}, no wait: \\boxed{4}", "4"),  # the last box counts
        ("\\fbox{7}", "7"),
        ("\\boxed{3} then \\fbox{5}", "5"),
        ("\\boxed {9}", "9"),
        ("\\boxed{\\{1, 2\\}}", "\\{1, 2\\}"),  # escaped braces do not nest
        ("\\boxed{\\left\\{ x \\right.}", "\\left\\{ x \\right."),
        ("\\boxed{a_{b_{c}}}", "a_{b_{c}}"),
        ("\\boxed{}", ""),
        ("no box here, just 42", None),
        ("\\boxed{\\frac{1}{2}", None),  # unbalanced (e.g. truncated generation)
        ("\\boxed{4} and then \\boxed{", None),  # the last box is cut off
    ],
)
def test_extract_boxed(text, expected):
    assert extract_boxed(text) == expected


def test_completion_text_of_strings_and_conversations():
    assert completion_text("plain") == "plain"
    conversation = [
        {"role": "assistant", "content": "first try \\boxed{1}"},
        {"role": "user", "content": "\\boxed{99} is a hint from the user"},
        {
            "role": "assistant",
            "content": [{"type": "text", "text": "second "}, {"type": "text", "text": "\\boxed{2}"}],
        },
    ]
    assert completion_text(conversation) == "first try \\boxed{1}\nsecond \\boxed{2}"
    assert extract_boxed(completion_text(conversation)) == "2"


# --- answer checking ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "completion, gold, expected",
    [
        ("The answer is \\boxed{\\frac{1}{2}}.", "1/2", 1.0),
        ("\\boxed{\\frac{1}{2}}", "0.5", 1.0),
        ("\\boxed{0.50}", "1/2", 1.0),
        ("\\boxed{\\dfrac{3}{4}}", "0.75", 1.0),
        ("\\boxed{\\frac{2}{4}}", "\\frac{1}{2}", 1.0),
        ("\\boxed{0.5}", "$\\frac12$", 1.0),
        ("\\boxed{-3}", "-3", 1.0),
        ("\\boxed{3}", "-3", 0.0),
        ("\\boxed{-\\frac{1}{2}}", "-0.5", 1.0),
        ("\\boxed{7}", "\\boxed{7}", 1.0),
        ("\\boxed{2\\sqrt{2}}", "\\sqrt{8}", 1.0),
        ("\\boxed{1,000}", "1000", 1.0),
        ("\\boxed{3} no wait, \\boxed{4}", "4", 1.0),  # the last box counts ...
        ("\\boxed{4} no wait, \\boxed{3}", "4", 0.0),  # ... also when it is the wrong one
        ("\\boxed{5}", "4", 0.0),
        ("the answer is 4", "4", 0.0),  # no boxed answer
        ("\\boxed{}", "4", 0.0),
        ("\\boxed{   }", "4", 0.0),
        ("\\boxed{banana}", "4", 0.0),
    ],
)
def test_accuracy_reward_formats(completion, gold, expected):
    assert accuracy_reward([completion], solution=[gold]) == [expected]


def test_parse_gold_accepts_plain_forms_and_rejects_text():
    for gold, value in [("42", 42), ("-3", -3), ("1/2", 0.5), ("0.5", 0.5), ("\\frac{1}{2}", 0.5), ("\\boxed{7}", 7)]:
        parsed = parse_gold(gold)
        assert parsed is not None and float(parsed[0]) == pytest.approx(value), gold
    assert parse_gold("not a number ???") is None
    assert parse_gold("") is None and parse_gold("   ") is None


def test_unparseable_gold_gives_none_never_one():
    completions = ["\\boxed{???}", "\\boxed{}", "\\boxed{4}"]
    assert accuracy_reward(completions, solution=["???", "", "   "]) == [None, None, None]
    assert verify_answer("?? !!", "?? !!") is None  # equal strings are no shortcut either
    # "abc ???" has a word: a text gold, usable (string match); "" and "%%" are not
    assert check_gold_answers(["1", "abc ???", "\\frac12", "", "$x+1$", "%%", "0.75"]) == [3, 5]


def test_conversational_completions_and_format_reward():
    completions = [
        [{"role": "assistant", "content": "It is \\boxed{8}"}],
        [{"role": "assistant", "content": "It is 8"}],
        [{"role": "assistant", "content": "It is \\boxed{9}"}],
    ]
    assert accuracy_reward(completions, solution=["8", "8", "8"]) == [1.0, 0.0, 0.0]
    assert format_reward(completions) == [1.0, 0.0, 1.0]
    assert format_reward(["\\boxed{ }", "\\boxed{x}", "\\boxed{1"]) == [0.0, 1.0, 0.0]


def test_accuracy_reward_from_a_background_thread_like_trl():
    completions = ["\\boxed{\\frac{2}{4}}", "\\boxed{3}", "\\boxed{0.25}", "nothing"]
    solution = ["0.5", "4", "1/4", "1"]
    in_main = accuracy_reward(completions, solution=solution)
    results, errors = [], []

    def target():
        try:
            results.append(accuracy_reward(completions, solution=solution))
        except Exception as exc:  # e.g. math-verify's "signal only works in main thread"
            errors.append(exc)

    thread = threading.Thread(target=target)
    thread.start()
    thread.join(timeout=60)
    assert errors == []
    assert results == [in_main] == [[1.0, 0.0, 1.0, 0.0]]


def test_fast_path_skips_the_worker_once_the_gold_is_known(monkeypatch):
    assert verify_answer("17/3", "\\frac{17}{3}") is True  # the worker has now seen (and parsed) this gold
    before = verify_stats()

    def no_worker(*args, **kwargs):
        raise AssertionError("the fast path must not call the worker")

    monkeypatch.setattr(rewards, "_run_bounded", no_worker)
    assert verify_answer(" 17/3 ", "17/3") is True
    after = verify_stats()
    assert after["fast_path"] == before["fast_path"] + 1 and after["calls"] == before["calls"] + 1


def test_long_answers_are_cut_to_their_last_1000_characters(monkeypatch):
    seen = []
    monkeypatch.setattr(
        rewards,
        "_run_bounded",
        lambda fn, gold, answer, timeout_s: (seen.append(answer), (True, ["number", False]))[1],
    )
    answer = "a" * 4000 + "b" * 1000
    assert verify_answer("5", answer) is False
    assert seen == ["b" * 1000]


def test_timeout_scores_false_counts_and_the_worker_recovers():
    assert verify_answer("1/2", "0.5") is True  # a warm worker
    before = verify_stats()
    # Equivalent, but sympy needs ~30 ms to simplify it; `unseen` defeats math-verify's parse caches. (A 2 ms answer
    # can beat a 1e-4 s bound: the waiting thread may wake up a few ms late, when it gets the GIL back.)
    unseen = time.time_ns() % 10**6 + 11
    gold, answer = f"\\sqrt{{{unseen}}}", f"\\sqrt{{{unseen}}} + \\sin^2(x) + \\cos^2(x) - 1"
    assert verify_answer(gold, answer, timeout_s=1e-4) is False
    after = verify_stats()
    assert after["timeouts"] == before["timeouts"] + 1
    assert after["worker_restarts"] == before["worker_restarts"] + 1
    assert verify_answer(gold, answer) is True  # a fresh worker answers


def test_timeout_through_accuracy_reward_and_a_pathological_answer(monkeypatch):
    # 9^(9^(9^9)) makes sympy compute forever; the worker is killed after the bound.
    monkeypatch.setattr(rewards.verify_answer, "__defaults__", (0.5,))
    before = verify_stats()["timeouts"]
    start = time.monotonic()
    assert accuracy_reward(["\\boxed{9^{9^{9^{9}}}}"], solution=["4"]) == [0.0]
    assert time.monotonic() - start < 10
    assert verify_stats()["timeouts"] == before + 1
    assert accuracy_reward(["\\boxed{4}"], solution=["2+2"]) == [1.0]


def test_long_garbage_answer_does_not_hang():
    garbage = "\\boxed{" + "{" * 50 + "x" * 100_000 + "}" * 50 + "}"
    assert accuracy_reward([garbage], solution=["4"]) == [0.0]


@pytest.mark.parametrize(
    "completion",
    [
        "\\boxed{" + "\\frac{" * 300 + "1" + "}{2}" * 300 + "}",  # deeply nested LaTeX
        "\\boxed{" + "\\sqrt{" * 500 + "4" + "}" * 500 + "}",
        "\\boxed{" + "".join(chr(c) for c in range(1, 2000)) + "}",  # control characters, binary-like garbage
        "\\boxed{\x00\xff\ufffd\U0001f600}",
        "x" * 100_000,  # no box at all, no end of turn
        "\\boxed{" * 10_000,  # never closed
        "\\boxed{四}",
    ],
    ids=["nested-frac", "nested-sqrt", "control-chars", "binary-unicode", "100k-no-box", "unclosed", "cjk"],
)
def test_pathological_completions_score_zero_quickly(completion):
    start = time.monotonic()
    assert accuracy_reward([completion, "\\boxed{4}"], solution=["4", "4"]) == [0.0, 1.0]
    assert time.monotonic() - start < 30  # the per-sample bound (5 s) plus a worker restart, never a hang


def test_module_import_is_light_and_exit_does_not_hang_on_a_stuck_worker(tmp_path):
    result = _run_python(
        """
        import sys, time
        from selfcorrect import rewards
        assert "torch" not in sys.modules
        print(rewards.verify_answer("1/2", "0.5"), flush=True)
        rewards._WORKER.process.stdin.write('{"op": "verify", "args": ["1", "9^{9^{9^{9}}}"]}\\n')
        rewards._WORKER.process.stdin.flush()  # the worker is now stuck in sympy far past the interpreter's exit
        """,
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True"]


def test_worker_does_not_rerun_an_unguarded_main_script(tmp_path):
    # No `if __name__ == "__main__":` guard: a plain spawn would re-run this script inside the worker.
    result = _run_python(
        """
        from selfcorrect.rewards import accuracy_reward
        print("script body ran", flush=True)
        print(accuracy_reward(["\\\\boxed{0.5}"], solution=["1/2"]), flush=True)
        """,
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["script body ran", "[1.0]"]


# --- registry ----------------------------------------------------------------------------------------------------------


def my_reward(completions, **kwargs):
    return [float(len(completion_text(c))) for c in completions]


NOT_CALLABLE = 3


def test_registry_names_and_dotted_paths():
    assert set(REWARD_FUNCS) == {"accuracy", "format", "outcome"}
    accuracy, colon, dotted = get_reward_funcs(
        ["accuracy", "tests.unit.test_rewards:my_reward", "tests.helpers.varied_reward"]
    )
    assert [f.__name__ for f in (accuracy, colon, dotted)] == ["accuracy", "my_reward", "varied_reward"]
    assert accuracy(["\\boxed{2}", "\\boxed{3}"], solution=["2", "2"]) == [1.0, 0.0]
    assert colon(["abc", [{"role": "assistant", "content": "hello"}]]) == [3.0, 5.0]
    assert dotted(["aab"]) == [0.2]  # two distinct characters / 10


def test_registry_errors():
    with pytest.raises(
        ValueError,
        match=r"unknown reward function 'acc'\. Registered: accuracy, format, outcome; .*package\.module:func",
    ):
        get_reward_funcs(["acc"])
    with pytest.raises(ValueError, match=r"cannot import module 'no_such_module'.*ModuleNotFoundError"):
        get_reward_funcs(["no_such_module:f"])
    with pytest.raises(ValueError, match=r"module 'tests\.helpers' has no attribute 'nope'"):
        get_reward_funcs(["tests.helpers.nope"])
    with pytest.raises(ValueError, match="'tests.unit.test_rewards:NOT_CALLABLE' is not callable"):
        get_reward_funcs(["tests.unit.test_rewards:NOT_CALLABLE"])
    with pytest.raises(ValueError, match="both be logged as 'my_reward'"):
        get_reward_funcs(["tests.unit.test_rewards:my_reward", "tests.unit.test_rewards.my_reward"])
    with pytest.raises(ValueError, match="no reward functions"):
        get_reward_funcs([])


# --- error reporting ---------------------------------------------------------------------------------------------------


def test_wrapped_failure_names_function_and_sample():
    def picky(completions, solution, **kwargs):
        return [1.0 / int(s) for s in solution]  # fails where the gold is "0"

    wrapped = wrap_reward_func(picky, "picky")
    assert wrapped.__name__ == "picky"
    assert wrapped(["a", "b"], solution=["2", "4"], trainer_state=object()) == [0.5, 0.25]
    with pytest.raises(RewardFunctionError) as info:
        wrapped(["a", "bb", "ccc", "dddd"], solution=["1", "2", "0", "0"], trainer_state=None)
    assert str(info.value) == "reward function 'picky' failed on sample 2 (completion: 'ccc'): float division by zero"
    assert isinstance(info.value.__cause__, ZeroDivisionError)


def test_wrapped_batch_only_failure_and_bad_return_values():
    def batch_only(completions, **kwargs):
        if len(completions) > 1:
            raise RuntimeError("batches of one only")
        return [1.0]

    with pytest.raises(RewardFunctionError, match="'batch_only' failed on the batch .*batches of one only"):
        wrap_reward_func(batch_only, "batch_only")(["a", "b"])
    with pytest.raises(RewardFunctionError, match="'short' must return a list of 2 .* a list of length 1"):
        wrap_reward_func(lambda completions, **kw: [1.0], "short")(["a", "b"])
    with pytest.raises(RewardFunctionError, match="'scalar' must return a list of 1 .* a float"):
        wrap_reward_func(lambda completions, **kw: 1.0, "scalar")(["a"])
    with pytest.raises(RewardFunctionError, match=r"'texty' returned '1' \(str\) for sample 1"):
        wrap_reward_func(lambda completions, **kw: [1, "1"], "texty")(["a", "b"])
    assert wrap_reward_func(lambda completions, **kw: (1, None, True), "mixed")(["a", "b", "c"]) == [1.0, None, 1.0]
    with pytest.raises(RewardFunctionError, match=r"'huge' returned -inf for sample 1; rewards must be finite"):
        wrap_reward_func(lambda completions, **kw: [1.0, float("-inf")], "huge")(["a", "b"])


def test_async_reward_functions_stay_async():
    def is_async_callable(func):  # what TRL's GRPOTrainer checks (trl.trainer.utils.is_async_callable)
        return inspect.iscoroutinefunction(func) or inspect.iscoroutinefunction(func.__call__)

    async def judge(completions, solution, **kwargs):
        return [1 / (s != "bad") for s in solution]  # ZeroDivisionError on "bad"

    wrapped = wrap_reward_func(judge, "judge")
    assert is_async_callable(wrapped) and not is_async_callable(wrap_reward_func(my_reward, "my_reward"))
    assert asyncio.run(wrapped(["a"], solution=["ok"])) == [1.0]
    with pytest.raises(RewardFunctionError, match="'judge' failed on sample 1"):
        asyncio.run(wrapped(["a", "b"], solution=["ok", "bad"]))
