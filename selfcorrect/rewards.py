"""Reward functions with TRL's signature, a name registry, and a time-bounded math-verify answer checker.

    reward_funcs: [accuracy, format, my_package.rewards:length_penalty]   # in a recipe

A reward function is `fn(completions, **columns) -> list[float | None]`: `completions` are strings or conversational
lists (`[{"role": "assistant", "content": ...}]`) and every dataset column arrives as a keyword (the gold final answer
in `solution`). `None` means "cannot score this sample" (TRL turns it into NaN and leaves it out of the baseline).

math-verify bounds its own time with `signal.alarm`, which raises outside the main thread, and reward functions may run
on a background thread. So we call it with its timeouts off, in one persistent worker process, and wait at most
`timeout_s` for each answer: a pathological answer costs that much and scores 0; the stuck worker is killed and
replaced. The worker is a plain subprocess (`python -m selfcorrect._verify_worker`), never a re-import of the launching
script.
"""

from __future__ import annotations

import atexit
import functools
import importlib
import inspect
import json
import math
import numbers
import os
import re
import select
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .answers import answers_match, classify, extract_boxed, normalize_text, parse_gold, surface_kind
from .errors import RewardFunctionError
from .registry import Registry

__all__ = [
    "REWARD_FUNCS",
    "RewardFunctionError",
    "accuracy_reward",
    "check_gold_answers",
    "classify_gold_answers",
    "completion_text",
    "extract_boxed",
    "format_reward",
    "get_reward_funcs",
    "outcome_reward",
    "parse_gold",
    "verify_answer",
    "verify_stats",
    "wrap_reward_func",
]

MAX_ANSWER_CHARS = 1000  # longer answers keep only their last 1000 characters
GOLD_TIMEOUT_S = 10.0  # per gold answer in `check_gold_answers`
WORKER_START_TIMEOUT_S = 120.0  # a fresh worker imports sympy and math-verify (seconds on a busy machine)

# Counters (read them with `verify_stats()`).
VERIFY_CALLS = 0
VERIFY_FAST_PATH = 0
VERIFY_TIMEOUTS = 0
VERIFY_WORKER_RESTARTS = 0

_STATS_LOCK = threading.Lock()
_WORKER_LOCK = threading.Lock()  # one request at a time: the time bound then measures our own request only
_GOLD_KIND: dict[str, tuple[str | None, str]] = {}  # gold string -> (kind, normalized text of a text gold)


# --- text helpers ------------------------------------------------------------------------------------------------------


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # multimodal parts: [{"type": "text", "text": ...}, ...]
        return "".join(part.get("text", "") if isinstance(part, dict) else str(part) for part in content)
    return "" if content is None else str(content)


def completion_text(completion: Any) -> str:
    """The text of a completion: a string as is; for chat messages, the assistant contents joined by newlines."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, dict):
        completion = [completion]
    if isinstance(completion, list | tuple):
        return "\n".join(
            _content_text(m.get("content"))
            for m in completion
            if isinstance(m, dict) and m.get("role", "assistant") == "assistant"
        )
    return "" if completion is None else str(completion)


def question_text(prompt: Any) -> str:
    """The question of a dataset prompt: the last user message of a conversation (the last message when none is from
    the user), or the prompt string itself. Used by critique, refinement and verification prompts alike."""
    if isinstance(prompt, list | tuple):
        messages = [m for m in prompt if isinstance(m, dict)]
        users = [m for m in messages if m.get("role") == "user"]
        return _content_text((users or messages)[-1].get("content")) if messages else ""
    return "" if prompt is None else str(prompt)


# --- math-verify (these run in the worker process: see selfcorrect/_verify_worker.py) -----------------------------------


def _verify_worker(solution: str, answer: str) -> list:
    """In the worker: [the gold's kind, verdict]; the verdict is None if the gold is unusable (`answers_match`)."""
    return [classify(solution).kind, answers_match(solution, answer)]


def _classify_worker(solution: str) -> str | None:
    return classify(solution).kind


def _warmup_worker() -> bool:
    """Import math-verify and run it once, so a request's time bound does not pay for the imports."""
    import logging

    # math-verify warns that its timeouts are off; we bound the time ourselves.
    logging.getLogger("math_verify").setLevel(logging.ERROR)
    return _verify_worker("1/2", "\\frac{2}{4}") == ["number", True]


# --- the worker process ------------------------------------------------------------------------------------------------


class _VerifyWorker:
    """One `python -m selfcorrect._verify_worker` subprocess (JSON lines over pipes), shared by all threads.

    A subprocess rather than a multiprocessing pool: `spawn` would re-import the launching script in the worker (fatal
    for a script without an `if __name__ == "__main__":` guard), and `fork` would copy a process holding torch's
    threads. On a timeout the worker is killed (it may be stuck in sympy) and the next request starts a new one.
    """

    def __init__(self):
        self.process: subprocess.Popen | None = None
        self.pid: int | None = None  # the process that owns the worker (a forked child must start its own)

    def _ensure_started(self) -> subprocess.Popen:
        if self.process is not None and self.pid == os.getpid() and self.process.poll() is None:
            return self.process
        self.process = subprocess.Popen(
            [sys.executable, "-m", "selfcorrect._verify_worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
            env={**os.environ, "OMP_NUM_THREADS": "1"},
        )
        self.pid = os.getpid()
        ok = self._exchange({"op": "warmup", "args": []}, WORKER_START_TIMEOUT_S)  # imports sympy and math-verify
        if ok is not True:
            self.stop()
            raise RuntimeError("the math-verify worker process started but says 1/2 != 2/4; is math-verify broken?")
        return self.process

    def _exchange(self, payload: dict, timeout_s: float) -> Any:
        process = self.process
        process.stdin.write(json.dumps(payload) + "\n")
        process.stdin.flush()
        ready, _, _ = select.select([process.stdout], [], [], timeout_s)
        if not ready:
            raise TimeoutError
        line = process.stdout.readline()
        if not line:
            raise BrokenPipeError("the math-verify worker exited")
        reply = json.loads(line)
        if not reply["ok"]:
            raise RuntimeError(f"math-verify failed in the worker: {reply['error']}")
        return reply["result"]

    def run(self, op: str, *args: Any, timeout_s: float) -> tuple[bool, Any]:
        """(True, result) within `timeout_s`; (False, None) on timeout (the worker is replaced). Hold _WORKER_LOCK."""
        for attempt in range(2):
            self._ensure_started()
            try:
                return True, self._exchange({"op": op, "args": list(args)}, timeout_s)
            except TimeoutError:
                _bump("VERIFY_TIMEOUTS")
                self.stop()
                _bump("VERIFY_WORKER_RESTARTS")
                return False, None
            except (BrokenPipeError, OSError):  # the worker died (OOM killer, ...): retry once on a fresh one
                self.stop()
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def stop(self) -> None:
        if self.process is not None and self.pid == os.getpid():
            self.process.kill()
            self.process.wait()
        self.process = None


_WORKER = _VerifyWorker()
atexit.register(_WORKER.stop)


def _bump(counter: str) -> None:
    with _STATS_LOCK:
        globals()[counter] += 1


def _run_bounded(op: str, *args: Any, timeout_s: float) -> tuple[bool, Any]:
    with _WORKER_LOCK:
        return _WORKER.run(op, *args, timeout_s=timeout_s)


def verify_stats() -> dict[str, int]:
    """Checker counters: calls (to verify_answer), fast_path, timeouts, worker_restarts."""
    with _STATS_LOCK:
        return {
            "calls": VERIFY_CALLS,
            "fast_path": VERIFY_FAST_PATH,
            "timeouts": VERIFY_TIMEOUTS,
            "worker_restarts": VERIFY_WORKER_RESTARTS,
        }


def _known_kind(gold: str) -> tuple[str | None, str] | None:
    """(kind, normalized text) of a gold already classified, or decided by the text rules alone; None if unknown."""
    known = _GOLD_KIND.get(gold)
    if known is None:
        surface = surface_kind(gold)
        if surface is not None and surface[0] != "number":  # text or empty: no math-verify needed, ever
            known = _GOLD_KIND[gold] = surface
    return known


def verify_answer(solution: str, boxed_answer: str, timeout_s: float = 5.0) -> bool | None:
    """Is `boxed_answer` right for the gold `solution`? The one check of every reward and judge.

    Text golds (`selfcorrect.answers`: prose, yes/no, choice letters) are compared by normalized string match, never
    as math; number and expression golds by math-verify equivalence. None if the gold is unusable (empty or not
    parseable); False if the answer is empty, is text against a math gold, does not parse, or takes longer than
    `timeout_s` to check. Safe to call from any thread.
    """
    _bump("VERIFY_CALLS")
    gold = "" if solution is None else str(solution).strip()
    answer = ("" if boxed_answer is None else str(boxed_answer).strip())[-MAX_ANSWER_CHARS:]
    known = _known_kind(gold) if gold else (None, "")
    if known is not None:
        kind, text = known
        if kind is None:
            return None
        if not answer:
            return False
        if kind == "text":
            _bump("VERIFY_FAST_PATH")
            return normalize_text(answer) == text
        if answer == gold:
            _bump("VERIFY_FAST_PATH")
            return True
    done, result = _run_bounded("verify", gold, answer, timeout_s=timeout_s)
    if not done:
        return False
    kind, verdict = result
    _GOLD_KIND[gold] = (kind, normalize_text(gold) if kind == "text" else "")
    return None if verdict is None else bool(verdict)


def classify_gold_answers(solutions: Sequence[Any]) -> list[str | None]:
    """The kind of each gold answer: "number", "expression", "text" (see `selfcorrect.answers`) or None (unusable:
    empty, not parseable, or not classified within GOLD_TIMEOUT_S)."""
    kinds = []
    for solution in solutions:
        gold = "" if solution is None else str(solution).strip()
        known = _known_kind(gold) if gold else (None, "")
        if known is None:
            done, kind = _run_bounded("classify", gold, timeout_s=GOLD_TIMEOUT_S)
            kind = kind if done else None
            known = _GOLD_KIND[gold] = (kind, normalize_text(gold) if kind == "text" else "")
        kinds.append(known[0])
    return kinds


def check_gold_answers(solutions: Sequence[Any]) -> list[int]:
    """Indices of unusable gold answers: empty, not parseable by math-verify and not text (or not within
    GOLD_TIMEOUT_S)."""
    return [i for i, kind in enumerate(classify_gold_answers(solutions)) if kind is None]


# --- reward functions --------------------------------------------------------------------------------------------------


def accuracy_reward(
    completions: list, solution: list[str], judged_correct: list[bool | None] | None = None, **kwargs: Any
) -> list[float | None]:
    """1.0 if the last `\\boxed{}` answer is right for the gold `solution`, 0.0 if it is wrong, missing or empty,
    None if the gold is unusable. Right: math-verify equivalence for number and expression golds, normalized string
    match for text golds (`selfcorrect.answers`; see `verify_answer`).

    `judged_correct`: a multi-attempt trainer passes its judge's verdict on each attempt (math-verify already ran in
    the rollout, for early stop and feedback), and the reward is that verdict: math-verify runs once per attempt."""
    if len(completions) != len(solution):
        raise ValueError(f"{len(completions)} completions but {len(solution)} solutions.")
    verdicts = judged_correct or [verify_completion(c, gold) for c, gold in zip(completions, solution)]
    return [None if verdict is None else float(verdict) for verdict in verdicts]


def verify_completion(completion: Any, gold: str) -> bool | None:
    """Is the completion's last `\\boxed{}` answer equivalent to `gold`? (None: the gold does not parse.) The default
    judge of multi-attempt episodes and the accuracy / outcome rewards both ask this."""
    return verify_answer(gold, extract_boxed(completion_text(completion)) or "")


def format_reward(completions: list, **kwargs: Any) -> list[float]:
    """1.0 if the completion has a non-empty `\\boxed{}` answer, else 0.0."""
    return [1.0 if (extract_boxed(completion_text(c)) or "").strip() else 0.0 for c in completions]


def outcome_reward(
    completions: list, solution: list[str], judged_correct: list[bool | None] | None = None, **kwargs: Any
) -> list[float | None]:
    """RISE's outcome verifier (Liu et al. 2025): 1.0 boxed and correct, -0.5 boxed but wrong, -1.0 no (or an empty)
    `\\boxed{}` answer; None if the gold does not parse. `judged_correct`: as in `accuracy_reward`."""
    from .algos import outcome_score

    if len(completions) != len(solution):
        raise ValueError(f"{len(completions)} completions but {len(solution)} solutions.")
    verdicts = judged_correct or [verify_completion(c, gold) for c, gold in zip(completions, solution)]
    rewards: list[float | None] = []
    for completion, verdict in zip(completions, verdicts):
        answer = (extract_boxed(completion_text(completion)) or "").strip()
        rewards.append(None if verdict is None else outcome_score(bool(answer), verdict))
    return rewards


# `reward_funcs: [name, ...]` -> the function; a name not registered may be a dotted path (`package.module:func`, or
# TRL's `package.module.func`) to any function, registered or not.
REWARD_FUNCS: Registry[Callable[..., list[float | None]]] = Registry("reward function", "reward_funcs")
REWARD_FUNCS.register("accuracy", accuracy_reward)
REWARD_FUNCS.register("format", format_reward)
REWARD_FUNCS.register("outcome", outcome_reward)


# --- registry ----------------------------------------------------------------------------------------------------------


def _import_dotted(path: str) -> Any:
    """`package.module:attr` (attr may be dotted) or `package.module.attr` -> the object."""
    if ":" in path:
        module_name, _, attribute = path.partition(":")
    else:
        module_name, _, attribute = path.rpartition(".")
    if not module_name or not attribute:
        raise ValueError(f"reward function '{path}': a dotted path looks like `package.module:function`.")
    try:
        obj = importlib.import_module(module_name)
    except Exception as exc:  # ImportError, or the module itself failing on import
        raise ValueError(
            f"reward function '{path}': cannot import module '{module_name}': {type(exc).__name__}: {exc}"
        ) from exc
    for part in attribute.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise ValueError(
                f"reward function '{path}': module '{module_name}' has no attribute '{attribute}'."
            ) from None
    return obj


def _names_reward_model(name: str) -> bool:
    """A local folder, or a hub id (`org/name`), rather than a registered name or a dotted path to a function."""
    return Path(name).is_dir() or ("/" in name and ":" not in name)


def get_reward_funcs(names: Sequence[str]) -> list[Callable[..., list[float | None]] | str]:
    """Resolve registry names and dotted paths (`package.module:func` or `package.module.func`) to wrapped functions,
    and reward models (a local folder or a hub id, e.g. `reward_funcs: [accuracy, models/my-rm]`) to their path, which
    TRL's `GRPOTrainer` loads as a one-label `AutoModelForSequenceClassification`, as it does for a string it is given.

    A registry function keeps its key as name; a dotted path gets its last component (TRL logs `rewards/<name>/...`);
    a reward model is named by TRL (the last part of its path).
    """
    if isinstance(names, str):
        names = [names]
    if not names:
        raise ValueError(f"no reward functions given; use names from {sorted(REWARD_FUNCS)} or dotted paths.")
    funcs, seen = [], {}
    for name in names:
        if name not in REWARD_FUNCS and _names_reward_model(name):
            from .models import resolve_model_path  # a clear error offline, not transformers' retry loop

            funcs.append(resolve_model_path(name, field="reward_funcs"))  # TRL loads it (sequence classification)
            continue
        if name in REWARD_FUNCS:
            func, short = REWARD_FUNCS[name], name
        elif "." in name or ":" in name:
            func, short = _import_dotted(name), re.split(r"[.:]", name)[-1]
        else:
            raise ValueError(
                f"unknown reward function '{name}'. Registered: {', '.join(sorted(REWARD_FUNCS))}; or give a dotted "
                "path to your own function, `package.module:func` or `package.module.func`."
            )
        if not callable(func):
            raise ValueError(f"reward function '{name}' is not callable (it is a {type(func).__name__}).")
        if short in seen:
            raise ValueError(f"reward functions '{seen[short]}' and '{name}' would both be logged as '{short}'.")
        seen[short] = name
        funcs.append(wrap_reward_func(func, short))
    return funcs


# --- error reporting ---------------------------------------------------------------------------------------------------


def _sample_kwargs(kwargs: dict[str, Any], i: int, n: int) -> dict[str, Any]:
    return {k: v[i : i + 1] if isinstance(v, list | tuple) and len(v) == n else v for k, v in kwargs.items()}


def _snippet(completion: Any, limit: int = 200) -> str:
    text = completion_text(completion)
    return text if len(text) <= limit else text[: limit - 3] + "..."


class _RewardWrapper:
    """Calls a reward function; names the function and the first failing sample when it raises; checks its output."""

    def __init__(self, func: Callable, name: str) -> None:
        self.func, self.__name__, self.__qualname__ = func, name, name
        self.__wrapped__ = func
        self.__doc__ = getattr(func, "__doc__", None)

    def __repr__(self) -> str:
        return f"<reward function {self.__name__!r}: {self.func!r}>"

    def __call__(self, completions: list, **kwargs: Any) -> list[float | None]:
        try:
            values = self.func(completions, **kwargs)
        except Exception as exc:
            index = None
            for i in range(len(completions)):
                try:
                    self.func(completions[i : i + 1], **_sample_kwargs(kwargs, i, len(completions)))
                except Exception:
                    index = i
                    break
            raise self._failure(completions, index, exc) from exc
        return self._check(values, len(completions))

    def _failure(self, completions: list, index: int | None, exc: Exception) -> RewardFunctionError:
        if index is None:
            where = "the batch (no single sample fails on its own)"
        else:
            where = f"sample {index} (completion: {_snippet(completions[index])!r})"
        return RewardFunctionError(f"reward function '{self.__name__}' failed on {where}: {exc}")

    def _check(self, values: Any, n: int) -> list[float | None]:
        if not isinstance(values, list | tuple) or len(values) != n:
            what = type(values).__name__ + (f" of length {len(values)}" if hasattr(values, "__len__") else "")
            raise RewardFunctionError(
                f"reward function '{self.__name__}' must return a list of {n} floats (or None), one per "
                f"completion; it returned a {what}."
            )
        for i, v in enumerate(values):
            if v is not None and not isinstance(v, numbers.Real):
                raise RewardFunctionError(
                    f"reward function '{self.__name__}' returned {v!r} ({type(v).__name__}) for sample {i}; "
                    "expected a float, an int or None."
                )
            if v is not None and math.isinf(v):  # TRL would turn the whole group's advantages into 0 or NaN
                raise RewardFunctionError(
                    f"reward function '{self.__name__}' returned {v} for sample {i}; rewards must be finite "
                    "(return None for a sample the function cannot score)."
                )
        return [None if v is None else float(v) for v in values]


class _AsyncRewardWrapper(_RewardWrapper):
    """The same for `async def` reward functions (TRL awaits them on its event loop)."""

    async def __call__(self, completions: list, **kwargs: Any) -> list[float | None]:
        try:
            values = await self.func(completions, **kwargs)
        except Exception as exc:
            index = None
            for i in range(len(completions)):
                try:
                    await self.func(completions[i : i + 1], **_sample_kwargs(kwargs, i, len(completions)))
                except Exception:
                    index = i
                    break
            raise self._failure(completions, index, exc) from exc
        return self._check(values, len(completions))


def wrap_reward_func(func: Callable, name: str) -> Callable[..., Any]:
    """Wrap `func` so that TRL logs it as `name` and its failures name the function and the first failing sample."""
    target = func.func if isinstance(func, functools.partial) else func
    is_async = inspect.iscoroutinefunction(target) or inspect.iscoroutinefunction(type(target).__call__)
    return (_AsyncRewardWrapper if is_async else _RewardWrapper)(func, name)
