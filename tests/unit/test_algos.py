"""The methods' math on hand-worked tensors."""

import math

import pytest
import torch

from selfcorrect.algos import (
    aggregate_token_loss,
    group_normalize,
    per_attempt_advantages,
    score_advantages,
    score_kl_coefficients,
    score_shaped_rewards,
    spread_over_attempts,
    ufo_returns,
)

NAN = float("nan")


def test_group_normalize_matches_hand_computation():
    rewards = torch.tensor([1.0, 0.0, 0.0, 1.0, 2.0, 2.0, 2.0, 2.0])
    adv = group_normalize(rewards, group_size=4, scale="group", eps=0.0 + 1e-4)
    # group 1: mean 0.5, sample std sqrt(1/3) = 0.57735
    expected = 0.5 / (math.sqrt(1 / 3) + 1e-4)
    assert torch.allclose(adv[:4], torch.tensor([expected, -expected, -expected, expected]), atol=1e-6)
    assert torch.equal(adv[4:], torch.zeros(4))  # zero-variance group: no signal


def test_group_normalize_ignores_nan_and_gives_it_zero():
    rewards = torch.tensor([1.0, NAN, 0.0, 0.0])
    adv = group_normalize(rewards, group_size=4, scale="none")
    mean = 1 / 3
    assert torch.allclose(adv, torch.tensor([1 - mean, 0.0, -mean, -mean]))


def test_group_normalize_batch_scale_and_errors():
    rewards = torch.tensor([1.0, 0.0, 3.0, 1.0])
    adv = group_normalize(rewards, group_size=2, scale="batch")
    std = rewards.std()
    assert torch.allclose(adv, torch.tensor([0.5, -0.5, 1.0, -1.0]) / (std + 1e-4))
    with pytest.raises(ValueError, match="groups of 3"):
        group_normalize(rewards, group_size=3)
    with pytest.raises(ValueError, match="scale_rewards"):
        group_normalize(rewards, group_size=2, scale="bogus")


def test_score_shaping_bonus():
    r = torch.tensor([[0.0, 1.0], [1.0, 0.0], [1.0, 1.0], [0.0, 0.0]])
    shaped = score_shaped_rewards(r, alpha=10.0)
    assert shaped.tolist() == [[0.0, 11.0], [1.0, -10.0], [1.0, 1.0], [0.0, 0.0]]
    # three attempts: each later attempt is shaped against the one before it
    r3 = torch.tensor([[0.0, 1.0, 0.0]])
    assert score_shaped_rewards(r3, alpha=2.0).tolist() == [[0.0, 3.0, -2.0]]


def test_score_stage2_advantages_per_attempt_hand_worked():
    # one group of 4 episodes, rewards (r1, r2)
    r = torch.tensor([[0.0, 1.0], [1.0, 1.0], [0.0, 0.0], [1.0, 0.0]])
    adv = score_advantages(r, group_size=4, stage=2, alpha=10.0, scaling="mean")
    # attempt 1: r1 = [0,1,0,1], mean 0.5
    assert adv[:, 0].tolist() == [-0.5, 0.5, -0.5, 0.5]
    # attempt 2 shaped: [11, 1, 0, -10], mean 0.5
    assert adv[:, 1].tolist() == [10.5, 0.5, -0.5, -10.5]


def test_score_stage1_only_last_reward_drives():
    r = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [0.0, 1.0]])
    adv = score_advantages(r, group_size=4, stage=1, scaling="mean")
    # last attempt rewards [0,1,1,1], mean 0.75; the first attempt's own rewards play no part
    assert adv[:, 1].tolist() == [-0.75, 0.25, 0.25, 0.25]
    assert adv[:, 0].tolist() == adv[:, 1].tolist()
    adv_no_credit = score_advantages(r, group_size=4, stage=1, scaling="mean", stage1_credit_earlier_attempts=False)
    assert adv_no_credit[:, 0].tolist() == [0.0] * 4
    with pytest.raises(ValueError, match="stage"):
        score_advantages(r, group_size=4, stage=3)


def test_score_kl_coefficients():
    assert score_kl_coefficients(2, stage=1, beta_weak=0.01, beta_turn1=0.1) == [0.1, 0.01]
    assert score_kl_coefficients(3, stage=1, beta_weak=0.01, beta_turn1=0.1) == [0.1, 0.1, 0.01]
    assert score_kl_coefficients(2, stage=2, beta_weak=0.01, beta_turn1=0.1) == [0.01, 0.01]


def test_per_attempt_advantages_skips_missing_attempts():
    r = torch.tensor([[1.0, NAN], [0.0, 1.0], [0.0, 0.0], [1.0, NAN]])
    adv = per_attempt_advantages(r, group_size=4, scale="none")
    assert adv[:, 0].tolist() == [0.5, -0.5, -0.5, 0.5]
    assert adv[:, 1].tolist() == [0.0, 0.5, -0.5, 0.0]  # mean over the two attempts made


def test_ufo_returns_hand_worked():
    correct = [[True], [False, True], [False, False, False], [False, False]]
    answers = [["4"], ["3", "4"], ["3", "3", None], ["5", "5"]]
    returns = ufo_returns(correct, answers, max_turns=3, gamma=0.5, repetition_penalty=0.5, format_penalty=0.1)
    expected = [
        1.0,  # correct at turn 0
        0.5,  # correct at turn 1, answers distinct
        0.0 - 0.5 * (1 - 1 / 2) - 0.1,  # never correct; "3" twice of 2 answers; one turn without an answer
        0.0 - 0.5 * (1 - 1 / 2),  # never correct; the same answer twice
    ]
    assert torch.allclose(returns, torch.tensor(expected))
    with pytest.raises(ValueError, match="max_turns"):
        ufo_returns([[False, False, False]], [["1", "2", "3"]], max_turns=2)


def test_spread_over_attempts_leaves_feedback_and_padding_zero():
    values = torch.tensor([[1.0, -2.0], [3.0, 0.0]])
    spans = [[(0, 2), (5, 7)], [(0, 3)]]
    out = spread_over_attempts(values, spans, num_tokens=8)
    assert out.tolist() == [
        [1.0, 1.0, 0.0, 0.0, 0.0, -2.0, -2.0, 0.0],
        [3.0, 3.0, 3.0, 0.0, 0.0, 0.0, 0.0, 0.0],
    ]


@pytest.mark.parametrize(
    "loss_type, expected",
    [
        ("grpo", ((1 + 2) / 2 + 4 / 1) / 2 / 2),  # per-sequence mean, batch mean, / grad accumulation 2
        ("bnpo", (1 + 2 + 4) / 3 / 2),
        ("dr_grpo", (1 + 2 + 4) / (2 * 4) / 2),
        ("dapo", (1 + 2 + 4) / (6 / 1 * 2 / 2)),  # num_items 6 over 1 process, accumulation 2 / steps_per_gen 2
    ],
)
def test_aggregate_token_loss_matches_trl_normalizers(loss_type, expected):
    per_token = torch.tensor([[1.0, 2.0, 9.0, 9.0], [4.0, 9.0, 9.0, 9.0]])
    mask = torch.tensor([[1.0, 1.0, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0]])
    value = aggregate_token_loss(
        per_token,
        mask,
        loss_type,
        max_completion_length=4,
        num_items_in_batch=torch.tensor(6.0),
        gradient_accumulation_steps=2,
        steps_per_generation=2,
    )
    assert value.item() == pytest.approx(expected)


def test_negative_sample_modes_hand_worked():
    from selfcorrect.algos import negative_sample_advantages

    correct = torch.tensor([1.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0])  # groups: 1/4, 4/4, 0/4
    psr = negative_sample_advantages(correct, 4, "psr")
    nsr = negative_sample_advantages(correct, 4, "nsr")
    w = negative_sample_advantages(correct, 4, "w_reinforce", positive_weight=0.1)
    assert psr.tolist() == [1, 0, 0, 0, 1, 1, 1, 1, 0, 0, 0, 0]  # all-correct groups still reinforced, no baseline
    assert nsr.tolist() == [0, -1, -1, -1, 0, 0, 0, 0, -1, -1, -1, -1]  # all-wrong groups still pushed down
    assert w.tolist() == pytest.approx([0.1, -1, -1, -1, 0.1, 0.1, 0.1, 0.1, -1, -1, -1, -1])
    # lambda = 1 is plain REINFORCE with +-1, lambda = 0 is NSR
    assert negative_sample_advantages(correct, 4, "w_reinforce", positive_weight=0.0).tolist() == nsr.tolist()


def test_oreal_reshaped_negatives_and_dropped_groups():
    from selfcorrect.algos import negative_sample_advantages

    correct = torch.tensor([1.0, 0.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0])  # p = 1/4, 2/4, 4/4
    adv = negative_sample_advantages(correct, 4, "oreal", negative_weight=0.5)
    # group 1: wrong sample's RLOO = 0 - 1/3; times eta (0.5) and (1 - p) = 3/4
    w1 = 0.5 * 0.75 * (-1 / 3)
    # group 2: RLOO = 0 - 2/3; (1 - p) = 1/2
    w2 = 0.5 * 0.5 * (-2 / 3)
    assert adv.tolist() == pytest.approx([1, w1, w1, w1, 1, 1, w2, w2, 0, 0, 0, 0])


def test_negative_sample_modes_per_attempt_and_missing_attempts():
    from selfcorrect.algos import negative_sample_advantages

    correct = torch.tensor([[0.0, 1.0], [1.0, NAN], [0.0, 0.0], [0.0, 1.0]])  # (N, K), one episode stopped early
    adv = negative_sample_advantages(correct, 4, "w_reinforce", positive_weight=0.5)
    assert adv.tolist() == [[-1.0, 0.5], [0.5, 0.0], [-1.0, -1.0], [-1.0, 0.5]]
    with pytest.raises(ValueError, match="makes no credit from verdicts"):
        negative_sample_advantages(correct, 4, "grpo")


def test_score_stage2_default_keeps_alpha_issue_hand_example():
    # Regression (issue 12, defect 2): G = 4, alpha = 10, (r1, r2) = (0,1), (0,0), (1,1), (1,0).
    r = torch.tensor([[0.0, 1.0], [0.0, 0.0], [1.0, 1.0], [1.0, 0.0]])
    adv = score_advantages(r, group_size=4, stage=2, alpha=10.0)  # the default scaling: group mean, no std
    assert adv[:, 1].tolist() == [10.5, -0.5, 0.5, -10.5]  # shaped r2 = [11, 0, 1, -10], mean 0.5
    assert adv[:, 0].tolist() == [-0.5, -0.5, 0.5, 0.5]
    # the old behaviour (each attempt divided by its own std) stays available and gives the issue's numbers
    old = score_advantages(r, group_size=4, stage=2, alpha=10.0, scaling="per_attempt", scale_rewards="group")
    # sample std of the shaped turn-2 advantages is sqrt(221 / 3) = 8.583: the flip is worth 1.22, like turn 1's 0.87
    assert torch.allclose(old[:, 1], torch.tensor([1.2233, -0.0583, 0.0583, -1.2233]), atol=1e-3)
    assert torch.allclose(old[:, 0].abs(), torch.full((4,), 0.8660), atol=1e-3)
    # joint: one std over all 8 centered values of the group (sum of squares 4 * 0.25 + 2 * 110.25 + 2 * 0.25 = 222)
    joint = score_advantages(r, group_size=4, stage=2, alpha=10.0, scaling="joint")
    std = (222.0 / 7) ** 0.5
    assert torch.allclose(joint, adv / (std + 1e-4))
    assert joint[0, 1] / joint[0, 0] == pytest.approx(-21.0)  # the turn-2 flip still outweighs turn 1 21 to 1


def test_joint_attempt_advantages_ignore_attempts_never_made():
    from selfcorrect.algos import joint_attempt_advantages

    r = torch.tensor([[1.0, NAN], [0.0, 1.0]])  # episode 0 stopped after a correct first attempt
    adv = joint_attempt_advantages(r, group_size=2)
    # centered: attempt 1 [0.5, -0.5], attempt 2 [0 (not made), 0 (alone in its column)]; std over 3 values
    std = (0.5 / 2) ** 0.5
    assert torch.allclose(adv, torch.tensor([[0.5, 0.0], [-0.5, 0.0]]) / (std + 1e-4))
