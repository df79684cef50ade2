"""Metric formulas against hand counts and brute-force enumeration."""

import itertools
import math

import pytest
import torch

from selfcorrect.metrics import attempt_accuracy, mean_pass_at_k, pass_at_k, self_correction_metrics


def test_self_correction_metrics_hand_count():
    t1 = [1, 1, 0, 0, 1]
    t2 = [1, 0, 1, 1, 1]
    m = self_correction_metrics(t1, t2)
    assert m["acc_t1"] == pytest.approx(0.6) and m["acc_t2"] == pytest.approx(0.8)
    assert m["delta_i2c"] == pytest.approx(0.4)  # problems 3 and 4
    assert m["delta_c2i"] == pytest.approx(0.2)  # problem 2
    assert m["delta"] == pytest.approx(m["delta_i2c"] - m["delta_c2i"]) == pytest.approx(0.2)


def test_self_correction_metrics_accepts_tensors_and_checks_lengths():
    m = self_correction_metrics(torch.tensor([True, False]), torch.tensor([False, False]))
    assert m["delta"] == pytest.approx(-0.5) and m["delta_c2i"] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="3 problems but correct_t2 has 2"):
        self_correction_metrics([1, 0, 1], [1, 0])
    with pytest.raises(ValueError, match="at least one"):
        self_correction_metrics([], [])


def test_attempt_accuracy_three_attempts():
    table = attempt_accuracy([[0, 0, 1, 0], [0, 1, 1, 0], [1, 1, 0, 0]])
    assert [table["acc_t1"], table["acc_t2"], table["acc_t3"]] == [0.25, 0.5, 0.5]
    assert table["delta_i2c"] == 0.5 and table["delta_c2i"] == 0.25  # between attempt 1 and attempt 3


def _brute_force_pass_at_k(n, c, k):
    samples = [1] * c + [0] * (n - c)
    subsets = list(itertools.combinations(range(n), k))
    return sum(any(samples[i] for i in s) for s in subsets) / len(subsets)


@pytest.mark.parametrize("n, c, k", [(5, 0, 1), (5, 1, 1), (5, 2, 3), (8, 3, 4), (10, 1, 10), (10, 9, 2), (6, 6, 1)])
def test_pass_at_k_equals_enumeration(n, c, k):
    assert pass_at_k(n, c, k) == pytest.approx(_brute_force_pass_at_k(n, c, k))
    assert pass_at_k(n, c, k) == pytest.approx(1 - math.comb(n - c, k) / math.comb(n, k))


def test_pass_at_k_errors_and_mean():
    with pytest.raises(ValueError, match="k=5, n=4"):
        pass_at_k(4, 1, 5)
    with pytest.raises(ValueError, match="c=5"):
        pass_at_k(4, 5, 1)
    assert mean_pass_at_k([4, 4], [0, 4], k=2) == pytest.approx(0.5)
