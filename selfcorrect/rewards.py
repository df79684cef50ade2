"""Reward functions with TRL's signature, a name registry, and a time-bounded math-verify checker.

    reward_funcs: [accuracy, format, my_package.rewards:length_penalty]   # in a recipe

A reward function is `fn(completions, **columns) -> list[float | None]`: `completions` are strings or conversational
lists (`[{"role": "assistant", "content": ...}]`), every dataset column arrives as a keyword (the gold final answer in
`solution`). `None` means "cannot score this sample" and keeps it out of the group baseline.

math-verify bounds its own time with `signal.alarm`, which raises outside the main thread, and TRL runs reward
functions on a background thread. So we call it with its timeouts off, inside one persistent worker process, and wait
for each answer at most `VERIFY_TIMEOUT_S` seconds: a pathological answer costs that much and scores 0, never a hang.
"""

from __future__ import annotations

import atexit
import importlib
import multiprocessing
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

VERIFY_TIMEOUT_S = 5.0
MAX_ANSWER_CHARS = 1000
_STATS = {"calls": 0, "fast_path": 0, "timeouts": 0, "worker_restarts": 0}
_POOL: ProcessPoolExecutor | None = None
_POOL_LOCK = threading.Lock()


class RewardFunctionError(RuntimeError):
    """A reward function raised or returned something that is not one score per sample."""


# --- text helpers ------------------------------------------------------------------------------------------------------


def completion_text(completion: Any) -> str:
    """The text of a completion given as a string or as a list of chat messages (assistant contents joined)."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, list):
        parts = []
        for message in completion:
            if isinstance(message, dict) and message.get("role", "assistant") == "assistant":
                content = message.get("content", "")
                parts.append(
                    content if isinstance(content, str) else " ".join(str(c.get("text", "")) for c in content)
                )
        return "\n".join(parts)
    return str(completion)


def extract_boxed(text: str) -> str | None:
    """Content of the last `\\boxed{...}` (or `\\fbox{...}`), nested braces kept; None if absent or unbalanced."""
    best = None
    for command in ("\\boxed", "\\fbox"):
        start = text.rfind(command + "{")
        if start > (best[0] if best else -1):
            best = (start, len(command) + 1)
    if best is None:
        return None
    position, offset = best
    depth, i = 1, position + offset
    begin = i
    while i < len(text):
        char = text[i]
        if char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
            if depth == 0:
                return text[begin:i]
        i += 1
    return None


# --- math-verify in a worker process -----------------------------------------------------------------------------------


def _quiet_math_verify() -> None:
    import logging

    # math-verify warns on every call made with its signal timeouts off; we bound time ourselves.
    logging.getLogger("math_verify").setLevel(logging.ERROR)


def _parse_gold(solution: str):
    _quiet_math_verify()
    from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse

    text = solution.strip()
    if not text:
        return []
    candidates = [text] if text.startswith("$") or "\\boxed" in text else [f"${text}$", text]
    for candidate in candidates:
        parsed = parse(
            candidate,
            extraction_config=[LatexExtractionConfig(boxed_match_priority=0), ExprExtractionConfig()],
            parsing_timeout=None,
        )
        if parsed and not isinstance(parsed[0], str):  # a lone string means math-verify could not parse it
            return parsed
    return []


def _verify_worker(solution: str, answer: str) -> bool | None:
    """Runs in the worker: None if the gold does not parse, else whether the answer is equivalent."""
    from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse, verify

    gold = _parse_gold(solution)
    if not gold:
        return None
    if not answer.strip():
        return False
    predicted = parse(
        f"${answer}$",
        extraction_config=[LatexExtractionConfig(boxed_match_priority=0), ExprExtractionConfig()],
        parsing_timeout=None,
    )
    if not predicted:
        predicted = parse(answer, extraction_config=[ExprExtractionConfig()], parsing_timeout=None)
    if not predicted:
        return False
    return bool(verify(gold, predicted, timeout_seconds=None))


def _gold_parses_worker(solutions: list[str]) -> list[bool]:
    return [bool(_parse_gold(s)) for s in solutions]


def _pool() -> ProcessPoolExecutor:
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"))
        return _POOL


def _restart_pool() -> None:
    global _POOL
    with _POOL_LOCK:
        if _POOL is not None:
            for process in list(getattr(_POOL, "_processes", {}).values()):
                process.kill()  # the worker may be stuck in a pathological parse
            _POOL.shutdown(wait=False, cancel_futures=True)
            _POOL = None
            _STATS["worker_restarts"] += 1


@atexit.register
def _shutdown_pool() -> None:
    if _POOL is not None:
        for process in list(getattr(_POOL, "_processes", {}).values()):
            process.kill()
        _POOL.shutdown(wait=False, cancel_futures=True)


def verify_stats() -> dict[str, int]:
    """Counters of the checker: calls, fast-path answers, timeouts, worker restarts."""
    return dict(_STATS)


def verify_answer(solution: str, answer: str, timeout_s: float | None = None) -> bool | None:
    """Is `answer` equivalent to the gold `solution`? None when the gold does not parse; False on timeout."""
    _STATS["calls"] += 1
    solution, answer = str(solution).strip(), str(answer).strip()[-MAX_ANSWER_CHARS:]
    if answer and answer == solution and _gold_parses([solution])[0]:
        _STATS["fast_path"] += 1
        return True
    future = _pool().submit(_verify_worker, solution, answer)
    try:
        return future.result(timeout=VERIFY_TIMEOUT_S if timeout_s is None else timeout_s)
    except FutureTimeout:
        _STATS["timeouts"] += 1
        _restart_pool()
        return False


_GOLD_CACHE: dict[str, bool] = {}


def _gold_parses(solutions: Sequence[str]) -> list[bool]:
    missing = [s for s in dict.fromkeys(solutions) if s not in _GOLD_CACHE]
    if missing:
        for solution, ok in zip(missing, _pool().submit(_gold_parses_worker, missing).result()):
            _GOLD_CACHE[solution] = ok
    return [_GOLD_CACHE[s] for s in solutions]


def check_gold_answers(solutions: Sequence[Any]) -> list[int]:
    """Indices of gold answers that math-verify cannot parse (the data loader drops and reports them)."""
    texts = [str(s).strip() for s in solutions]
    return [i for i, ok in enumerate(_gold_parses(texts)) if not ok]


# --- reward functions --------------------------------------------------------------------------------------------------


def accuracy_reward(completions: list, solution: list[str], **kwargs) -> list[float | None]:
    """1.0 if the last `\\boxed{}` answer equals the gold answer (math-verify), 0.0 if wrong or missing, None if the
    gold does not parse."""
    rewards: list[float | None] = []
    for completion, gold in zip(completions, solution, strict=True):
        result = verify_answer(gold, extract_boxed(completion_text(completion)) or "")
        rewards.append(None if result is None else float(result))
    return rewards


def format_reward(completions: list, **kwargs) -> list[float]:
    """1.0 if the completion has a non-empty `\\boxed{}` answer, else 0.0."""
    return [1.0 if (extract_boxed(completion_text(c)) or "").strip() else 0.0 for c in completions]


REWARD_FUNCS: dict[str, Callable[..., list[float | None]]] = {
    "accuracy": accuracy_reward,
    "format": format_reward,
}


def _import_dotted(path: str) -> Any:
    module_name, _, attribute = path.partition(":") if ":" in path else path.rpartition(".")
    if not module_name or not attribute:
        raise ValueError(f"reward function '{path}': a dotted path must look like `package.module:function`.")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(f"reward function '{path}': cannot import module '{module_name}': {exc}") from exc
    try:
        return getattr(module, attribute)
    except AttributeError:
        raise ValueError(f"reward function '{path}': module '{module_name}' has no attribute '{attribute}'.") from None


def get_reward_funcs(names: Sequence[str]) -> list[Callable[..., list[float | None]]]:
    """Resolve registry names and dotted paths (`package.module:func` or `package.module.func`) to wrapped functions."""
    if not names:
        raise ValueError(f"`reward_funcs` is empty; give at least one of {', '.join(REWARD_FUNCS)} or a dotted path.")
    funcs = []
    for name in names:
        if name in REWARD_FUNCS:
            func = REWARD_FUNCS[name]
        elif "." in name or ":" in name:
            func = _import_dotted(name)
        else:
            raise ValueError(
                f"unknown reward function '{name}'. Registered: {', '.join(REWARD_FUNCS)}; or give a dotted path "
                "to your own function, e.g. `my_package.rewards:my_reward`."
            )
        if not callable(func):
            raise ValueError(f"reward function '{name}' is not callable (got {type(func).__name__}).")
        funcs.append(wrap_reward_func(func, name.split(":")[-1].split(".")[-1] if name not in REWARD_FUNCS else name))
    return funcs


def wrap_reward_func(func: Callable, name: str) -> Callable:
    """Make a failing reward function say which function and which sample; check what it returns."""

    def reward(completions, **kwargs):
        try:
            values = func(completions, **kwargs)
        except Exception as exc:
            index = _first_failing_sample(func, completions, kwargs)
            snippet = completion_text(completions[index])[:200] if index is not None else "?"
            where = f"sample {index}" if index is not None else "the batch"
            raise RewardFunctionError(
                f"reward function '{name}' failed on {where} (completion: {snippet!r}): {type(exc).__name__}: {exc}"
            ) from exc
        if not isinstance(values, list | tuple) or len(values) != len(completions):
            raise RewardFunctionError(
                f"reward function '{name}' must return a list of {len(completions)} floats (or None); "
                f"got {type(values).__name__}" + (f" of length {len(values)}" if hasattr(values, "__len__") else "")
            )
        bad = [v for v in values if v is not None and not isinstance(v, int | float)]
        if bad:
            raise RewardFunctionError(f"reward function '{name}' returned non-numeric values, e.g. {bad[0]!r}.")
        return list(values)

    reward.__name__ = name
    reward.__qualname__ = name
    reward.__wrapped__ = func
    return reward


def _first_failing_sample(func: Callable, completions: list, kwargs: dict) -> int | None:
    for i in range(len(completions)):
        sample_kwargs = {
            k: v[i : i + 1] if isinstance(v, list) and len(v) == len(completions) else v for k, v in kwargs.items()
        }
        try:
            func(completions[i : i + 1], **sample_kwargs)
        except Exception:
            return i
    return None
