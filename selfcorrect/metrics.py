"""Self-correction and sampling metrics, as the papers define them.

- `self_correction_metrics`: SCoRe's table (Kumar et al. 2024): acc@t1, acc@t2, Δ(t1, t2) = acc@t2 - acc@t1,
  Δ^{i→c} (wrong at t1, right at t2) and Δ^{c→i} (right at t1, wrong at t2), both as fractions of **all** problems, so
  that Δ = Δ^{i→c} - Δ^{c→i}.
- `pass_at_k`: the unbiased estimator 1 - C(n-c, k) / C(n, k) (Chen et al. 2021), in a numerically stable product form.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def _as_bools(values: Any, name: str) -> list[bool]:
    if hasattr(values, "tolist"):
        values = values.tolist()
    return [bool(v) for v in values]


def self_correction_metrics(correct_t1: Sequence[Any], correct_t2: Sequence[Any]) -> dict[str, float]:
    """Per-problem correctness at attempts 1 and 2 -> acc_t1, acc_t2, delta, delta_i2c, delta_c2i."""
    t1, t2 = _as_bools(correct_t1, "correct_t1"), _as_bools(correct_t2, "correct_t2")
    if len(t1) != len(t2):
        raise ValueError(f"correct_t1 has {len(t1)} problems but correct_t2 has {len(t2)}.")
    if not t1:
        raise ValueError("self-correction metrics need at least one problem.")
    n = len(t1)
    acc_t1, acc_t2 = sum(t1) / n, sum(t2) / n
    return {
        "acc_t1": acc_t1,
        "acc_t2": acc_t2,
        "delta": acc_t2 - acc_t1,
        "delta_i2c": sum(1 for a, b in zip(t1, t2) if not a and b) / n,
        "delta_c2i": sum(1 for a, b in zip(t1, t2) if a and not b) / n,
    }


def attempt_accuracy(correct_by_attempt: Sequence[Sequence[Any]]) -> dict[str, float]:
    """K attempts: acc_t1..acc_tK, plus the self-correction metrics between the first and the last attempt."""
    if not correct_by_attempt:
        raise ValueError("attempt_accuracy needs at least one attempt.")
    attempts = [_as_bools(c, f"attempt {k + 1}") for k, c in enumerate(correct_by_attempt)]
    table = self_correction_metrics(attempts[0], attempts[-1])
    for k, correct in enumerate(attempts):
        if len(correct) != len(attempts[0]):
            raise ValueError(f"attempt {k + 1} has {len(correct)} problems, attempt 1 has {len(attempts[0])}.")
        table[f"acc_t{k + 1}"] = sum(correct) / len(correct)
    return table


def pass_at_k(n: int, c: int, k: int) -> float:
    """Probability that at least one of k samples (drawn without replacement from n, c correct) is correct."""
    if k < 1 or k > n:
        raise ValueError(f"pass@k needs 1 <= k <= n; got k={k}, n={n}.")
    if c < 0 or c > n:
        raise ValueError(f"pass@k needs 0 <= c <= n; got c={c}, n={n}.")
    if n - c < k:
        return 1.0
    fail = 1.0
    for i in range(n - c + 1, n + 1):
        fail *= 1.0 - k / i
    return 1.0 - fail


def mean_pass_at_k(num_samples: Sequence[int], num_correct: Sequence[int], k: int) -> float:
    """pass@k averaged over problems."""
    if len(num_samples) != len(num_correct) or not num_samples:
        raise ValueError("mean_pass_at_k needs equal, non-empty lists of sample and correct counts.")
    return sum(pass_at_k(n, c, k) for n, c in zip(num_samples, num_correct)) / len(num_samples)
