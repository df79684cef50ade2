"""Self-correction and sampling metrics, as the papers define them (pure Python; takes lists, arrays or tensors).

- `self_correction_metrics` (SCoRe, Kumar et al. 2024): acc@t1, acc@t2, Δ(t1, t2) = acc@t2 - acc@t1,
  Δ^{i→c} (wrong at t1, right at t2) and Δ^{c→i} (right at t1, wrong at t2), both as fractions of **all** problems,
  so that Δ = Δ^{i→c} - Δ^{c→i}.
- `pass_at_k`: the unbiased estimator 1 - C(n-c, k) / C(n, k) (Chen et al. 2021) in a numerically stable product form.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any


def _as_bools(values: Any, name: str) -> list[bool]:
    """One bool per problem from a list, a numpy array or a torch tensor of bools / 0-1 values."""
    if hasattr(values, "tolist"):  # numpy / torch: plain Python scalars
        values = values.tolist()
    if not isinstance(values, Sequence) or isinstance(values, str):
        raise ValueError(f"{name} must be a sequence of per-problem bools; got {type(values).__name__}.")
    flags = []
    for i, value in enumerate(values):
        if isinstance(value, Sequence):
            raise ValueError(f"{name}[{i}] is a sequence ({value!r}); expected one bool per problem.")
        flags.append(bool(value))
    return flags


def _accuracy(flags: list[bool]) -> float:
    return sum(flags) / len(flags)


def self_correction_metrics(correct_t1: Sequence[Any], correct_t2: Sequence[Any]) -> dict[str, float]:
    """Per-problem correctness at attempts 1 and 2 -> acc_t1, acc_t2, delta, delta_i2c, delta_c2i."""
    t1, t2 = _as_bools(correct_t1, "correct_t1"), _as_bools(correct_t2, "correct_t2")
    if len(t1) != len(t2):
        raise ValueError(f"correct_t1 has {len(t1)} problems but correct_t2 has {len(t2)}.")
    if not t1:
        raise ValueError("self-correction metrics need at least one problem; both inputs are empty.")
    n = len(t1)
    acc_t1, acc_t2 = _accuracy(t1), _accuracy(t2)
    return {
        "acc_t1": acc_t1,
        "acc_t2": acc_t2,
        "delta": acc_t2 - acc_t1,
        "delta_i2c": sum(not a and b for a, b in zip(t1, t2)) / n,
        "delta_c2i": sum(a and not b for a, b in zip(t1, t2)) / n,
    }


def carry_forward(correct: Sequence[Sequence[Any]], num_attempts: int) -> list[list[bool]]:
    """Per episode, correctness at each of `num_attempts` attempts; an attempt never made (the episode stopped, e.g. at
    its first correct answer) keeps the last attempt's outcome, so acc@tk becomes success within k attempts."""
    return [[bool(c[min(k, len(c) - 1)]) for k in range(num_attempts)] for c in correct]


def attempt_accuracy(correct_by_attempt: Sequence[Sequence[Any]]) -> dict[str, float]:
    """K attempts -> acc_t1..acc_tK, plus delta, delta_i2c and delta_c2i between the first and the last attempt."""
    attempts = [_as_bools(flags, f"attempt {k + 1}") for k, flags in enumerate(correct_by_attempt)]
    if not attempts:
        raise ValueError("attempt_accuracy needs at least one attempt.")
    for k, flags in enumerate(attempts[1:], start=2):
        if len(flags) != len(attempts[0]):
            raise ValueError(f"attempt 1 has {len(attempts[0])} problems but attempt {k} has {len(flags)}.")
    first_last = self_correction_metrics(attempts[0], attempts[-1])
    table = {f"acc_t{k}": _accuracy(flags) for k, flags in enumerate(attempts, start=1)}
    table.update({key: first_last[key] for key in ("delta", "delta_i2c", "delta_c2i")})
    return table


def pass_at_k(n: int, c: int, k: int) -> float:
    """Probability that at least one of k samples, drawn without replacement from n of which c are correct, is."""
    if k < 1 or k > n:
        raise ValueError(f"pass@k needs 1 <= k <= n; got k={k}, n={n}.")
    if c < 0 or c > n:
        raise ValueError(f"pass@k needs 0 <= c <= n; got c={c}, n={n}.")
    if n - c < k:  # every k-subset holds a correct sample
        return 1.0
    # C(n-c, k) / C(n, k) = prod_{i=n-c+1}^{n} (1 - k/i): no huge binomials.
    all_wrong = 1.0
    for i in range(n - c + 1, n + 1):
        all_wrong *= 1.0 - k / i
    return 1.0 - all_wrong


def mean_pass_at_k(num_samples: Sequence[int], num_correct: Sequence[int], k: int) -> float:
    """pass@k averaged over problems (problem i: num_samples[i] samples, num_correct[i] of them correct)."""
    if len(num_samples) != len(num_correct):
        raise ValueError(f"{len(num_samples)} sample counts but {len(num_correct)} correct counts.")
    if not num_samples:
        raise ValueError("mean_pass_at_k needs at least one problem.")
    return sum(pass_at_k(n, c, k) for n, c in zip(num_samples, num_correct)) / len(num_samples)


def paired_change(
    before: Sequence[float], after: Sequence[float], resamples: int = 2000, seed: int = 0
) -> tuple[float, float, float]:
    """(mean change, low, high): the mean over problems of `after[i] - before[i]` (the same problems evaluated twice,
    e.g. before and after training) and its 95 % percentile interval from resampling the problems with replacement
    (paired: one draw serves both). It covers the noise of which problems were drawn, not the training's seed.

    >>> paired_change([0, 0, 1, 1], [1, 0, 1, 1])[0]
    0.25
    """
    if len(before) != len(after) or not before:
        raise ValueError(
            f"paired_change needs the same non-zero number of problems; got {len(before)} and {len(after)}."
        )
    differences = [a - b for b, a in zip(before, after)]
    n, rng = len(differences), random.Random(seed)
    draws = sorted(sum(differences[rng.randrange(n)] for _ in range(n)) / n for _ in range(resamples))
    return sum(differences) / n, draws[int(0.025 * resamples)], draws[int(0.975 * resamples) - 1]


def revision_outcomes(correct: Sequence[Sequence[Any]], num_attempts: int) -> dict[str, list[int]]:
    """Per problem, 1/0: right at the first attempt (`acc@1`), right at any of the first `num_attempts` (`succ@K`, as
    the evaluation's `succ_tK`) and their difference (`succ@K − acc@1`: wrong first, fixed by a later attempt)."""
    first = [int(bool(c[0])) for c in correct]
    within = [int(any(bool(x) for x in c[:num_attempts])) for c in correct]
    gain = [w - f for f, w in zip(first, within)]
    return {"acc@1": first, f"succ@{num_attempts}": within, f"succ@{num_attempts} − acc@1": gain}


def change_lines(before: dict[str, Any], after: dict[str, Any], num_attempts: int) -> list[str]:
    """The change from `before` to `after` (two evaluations' results on the same problems) of acc@1, succ@K and
    succ@K − acc@1, in points, each with its 95 % paired bootstrap interval over the problems (`paired_change`)."""
    outcomes = [revision_outcomes([s["correct"] for s in r["samples"]], num_attempts) for r in (before, after)]
    names = list(outcomes[0]) if num_attempts > 1 else ["acc@1"]  # one attempt: only acc@1 applies
    lines = []
    for name in names:
        mean, low, high = (100 * v for v in paired_change(outcomes[0][name], outcomes[1][name]))
        lines.append(f"{name} {mean:+.1f} [{low:+.1f}, {high:+.1f}]")
    return lines
