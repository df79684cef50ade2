"""Metric formulas against hand counts and brute-force enumeration."""

from __future__ import annotations

import itertools
import math
import random
from fractions import Fraction

import numpy as np
import pytest

from selfcorrect.metrics import attempt_accuracy, mean_pass_at_k, pass_at_k, self_correction_metrics


def test_self_correction_metrics_hand_count():
    t1 = [1, 1, 0, 0, 1]
    t2 = [1, 0, 1, 1, 1]
    m = self_correction_metrics(t1, t2)
    assert set(m) == {"acc_t1", "acc_t2", "delta", "delta_i2c", "delta_c2i"}
    assert m["acc_t1"] == pytest.approx(3 / 5) and m["acc_t2"] == pytest.approx(4 / 5)
    assert m["delta_i2c"] == pytest.approx(2 / 5)  # problems 3 and 4
    assert m["delta_c2i"] == pytest.approx(1 / 5)  # problem 2
    assert m["delta"] == pytest.approx(1 / 5)


def test_delta_is_i2c_minus_c2i_on_random_inputs():
    rng = random.Random(0)
    for _ in range(200):
        n = rng.randint(1, 30)
        t1 = [rng.random() < 0.5 for _ in range(n)]
        t2 = [rng.random() < 0.5 for _ in range(n)]
        m = self_correction_metrics(t1, t2)
        assert m["delta"] == pytest.approx(m["delta_i2c"] - m["delta_c2i"], abs=1e-12)
        assert m["delta_i2c"] == pytest.approx(sum(not a and b for a, b in zip(t1, t2)) / n)


def test_arrays_tensors_and_bools_are_accepted():
    m = self_correction_metrics(np.array([True, False, True, True]), np.array([1, 1, 0, 1]))
    assert (m["acc_t1"], m["acc_t2"], m["delta_i2c"], m["delta_c2i"]) == (0.75, 0.75, 0.25, 0.25)
    assert m["delta"] == 0.0
    torch = pytest.importorskip("torch")
    m = self_correction_metrics(torch.tensor([True, False]), torch.tensor([0.0, 0.0]))
    assert m == {"acc_t1": 0.5, "acc_t2": 0.0, "delta": -0.5, "delta_i2c": 0.0, "delta_c2i": 0.5}


def test_self_correction_metrics_errors():
    with pytest.raises(ValueError, match="correct_t1 has 3 problems but correct_t2 has 2"):
        self_correction_metrics([1, 0, 1], [1, 0])
    with pytest.raises(ValueError, match="at least one problem"):
        self_correction_metrics([], [])
    with pytest.raises(ValueError, match=r"correct_t2\[0\] is a sequence"):
        self_correction_metrics([1], [[1, 0]])


def test_attempt_accuracy_three_attempts():
    table = attempt_accuracy([[0, 0, 1, 0], [0, 1, 1, 0], [1, 1, 0, 0]])
    assert table == {
        "acc_t1": 0.25,
        "acc_t2": 0.5,
        "acc_t3": 0.5,
        "delta": 0.25,  # attempt 3 vs attempt 1
        "delta_i2c": 0.5,  # problems 1 and 2
        "delta_c2i": 0.25,  # problem 3
    }


def test_attempt_accuracy_single_attempt_and_errors():
    assert attempt_accuracy([[1, 0, 0, 0]]) == {"acc_t1": 0.25, "delta": 0.0, "delta_i2c": 0.0, "delta_c2i": 0.0}
    with pytest.raises(ValueError, match="at least one attempt"):
        attempt_accuracy([])
    with pytest.raises(ValueError, match="attempt 1 has 2 problems but attempt 2 has 3"):
        attempt_accuracy([[1, 0], [1, 0, 1], [1, 1]])


def _brute_force_pass_at_k(n: int, c: int, k: int) -> Fraction:
    """Fraction of all k-subsets of n samples (the first c correct) that hold at least one correct sample."""
    subsets = list(itertools.combinations(range(n), k))
    return Fraction(sum(any(i < c for i in subset) for subset in subsets), len(subsets))


@pytest.mark.parametrize(
    "n, c, k",
    [(1, 0, 1), (1, 1, 1), (5, 0, 1), (5, 1, 1), (5, 2, 3), (6, 3, 3), (8, 3, 4), (10, 1, 10), (10, 9, 2), (12, 4, 6)],
)
def test_pass_at_k_equals_enumeration(n, c, k):
    exact = _brute_force_pass_at_k(n, c, k)
    assert pass_at_k(n, c, k) == pytest.approx(float(exact), abs=1e-12)
    assert exact == 1 - Fraction(math.comb(n - c, k), math.comb(n, k))


def test_pass_at_k_hand_values_and_edges():
    assert pass_at_k(5, 2, 1) == pytest.approx(2 / 5)  # k=1: the fraction correct
    assert pass_at_k(4, 1, 2) == pytest.approx(1 / 2)  # 3 of the 6 pairs contain the correct sample
    assert pass_at_k(5, 0, 3) == 0.0
    assert pass_at_k(5, 5, 1) == 1.0
    assert pass_at_k(5, 3, 3) == 1.0  # n - c = 2 < k: every 3-subset has a correct sample
    assert pass_at_k(10, 1, 10) == 1.0


def test_pass_at_k_is_stable_for_large_n():
    n, c, k = 2000, 7, 150  # C(2000, 150) overflows a float; the product form does not
    exact = 1 - Fraction(math.comb(n - c, k), math.comb(n, k))
    assert pass_at_k(n, c, k) == pytest.approx(float(exact), rel=1e-12)


def test_pass_at_k_errors_name_the_values():
    with pytest.raises(ValueError, match="k=5, n=4"):
        pass_at_k(4, 1, 5)
    with pytest.raises(ValueError, match="k=0, n=4"):
        pass_at_k(4, 1, 0)
    with pytest.raises(ValueError, match="c=5, n=4"):
        pass_at_k(4, 5, 1)
    with pytest.raises(ValueError, match="c=-1, n=4"):
        pass_at_k(4, -1, 1)


def test_mean_pass_at_k():
    assert mean_pass_at_k([4, 4], [0, 4], k=2) == pytest.approx(0.5)
    assert mean_pass_at_k([5, 5, 4], [1, 2, 1], k=1) == pytest.approx((1 / 5 + 2 / 5 + 1 / 4) / 3)
    with pytest.raises(ValueError, match="2 sample counts but 1 correct counts"):
        mean_pass_at_k([4, 4], [1], k=1)
    with pytest.raises(ValueError, match="at least one problem"):
        mean_pass_at_k([], [], k=1)


def test_revision_outcomes_by_hand():
    from selfcorrect.metrics import revision_outcomes

    # stopped at a right 2nd attempt; right at once; wrong thrice; right only at the 3rd
    correct = [[False, True], [True], [False, False, False], [False, False, True]]
    assert revision_outcomes(correct, 3) == {
        "acc@1": [0, 1, 0, 0],
        "succ@3": [1, 1, 0, 1],
        "succ@3 − acc@1": [1, 0, 0, 1],
    }
    assert revision_outcomes(correct, 2)["succ@2"] == [1, 1, 0, 0]  # the 3rd attempt does not count within 2


def test_paired_change_mean_and_interval():
    from selfcorrect.metrics import paired_change

    assert paired_change([0, 1, 0, 1], [1, 1, 1, 1]) == (0.5, pytest.approx(0.0, abs=0.5), pytest.approx(1.0, abs=0.5))
    mean, low, high = paired_change([0, 0, 1, 1], [1, 0, 1, 1])
    assert mean == 0.25 and 0.0 <= low <= 0.25 <= high <= 1.0
    assert paired_change([0, 0, 1, 1], [1, 0, 1, 1]) == (mean, low, high)  # the same draws every time (seed 0)
    assert paired_change([0, 1, 0], [1, 2, 1]) == (1.0, 1.0, 1.0)  # every problem changed by 1: no spread
    with pytest.raises(ValueError, match="same non-zero number of problems"):
        paired_change([0, 1], [1])


def test_change_lines_name_each_statistic_and_one_attempt_only_acc():
    from selfcorrect.metrics import change_lines

    before = {"samples": [{"correct": [False, False]}, {"correct": [True]}]}
    after = {"samples": [{"correct": [False, True]}, {"correct": [True]}]}
    lines = change_lines(before, after, 2)
    assert [line.split(" [")[0] for line in lines] == ["acc@1 +0.0", "succ@2 +50.0", "succ@2 − acc@1 +50.0"]
    assert change_lines(before, after, 1) == ["acc@1 +0.0 [+0.0, +0.0]"]
