"""Trainers end to end on a tiny random model: 2 steps through our entry point, every parameter changes."""

from __future__ import annotations

import pytest
import torch

from selfcorrect.train import main as train_main
from tests.helpers import build_trainer, parity_judge, unchanged_parameters, write_recipe

MULTI_ATTEMPT = dict(max_attempt_length=8, max_completion_length=96)


@pytest.mark.parametrize(
    "method, fields",
    [
        ("grpo", {}),
        ("score", dict(score_stage=2, **MULTI_ATTEMPT)),
        ("score", dict(score_stage=1, **MULTI_ATTEMPT)),
    ],
    ids=["grpo", "score-stage2", "score-stage1"],
)
def test_two_steps_change_every_parameter(tmp_path, tiny_model_dir, method, fields):
    recipe = write_recipe(tmp_path, tiny_model_dir, method=method, **fields)
    trainer = train_main(["--config", str(recipe)])
    assert trainer.state.global_step == 2
    losses = [log["loss"] for log in trainer.state.log_history if "loss" in log]
    assert len(losses) == 2 and all(torch.isfinite(torch.tensor(losses)))
    unchanged = unchanged_parameters(tiny_model_dir, tmp_path / "out")
    assert not unchanged, unchanged
    if method != "grpo":
        logged = trainer.state.log_history[0]
        assert "selfcorrect/acc_t1" in logged and "selfcorrect/attempts_mean" in logged


def test_stage1_switches_to_stage2_after_stage1_steps(tmp_path, tiny_model_dir):
    recipe = write_recipe(tmp_path, tiny_model_dir, method="score", score_stage=1, stage1_steps=1, **MULTI_ATTEMPT)
    trainer = train_main(["--config", str(recipe)])
    stages = [log["selfcorrect/score_stage"] for log in trainer.state.log_history if "selfcorrect/score_stage" in log]
    assert stages == [1.0, 2.0]


def test_batch_masks_and_per_token_advantages(tmp_path, tiny_model_dir):
    """Inside a real trainer batch: the loss mask drops exactly the feedback tokens; advantages follow attempts."""
    recipe = write_recipe(
        tmp_path, tiny_model_dir, method="score", score_stage=2, scale_rewards="none", **MULTI_ATTEMPT
    )
    trainer = build_trainer(recipe)
    train_ds, tokenizer = trainer.train_dataset, trainer.processing_class
    rows = [dict(train_ds[i // 4]) for i in range(8)]  # 2 groups of 4, as the RepeatSampler orders them
    trainer.model.train()
    out = trainer._generate_and_score_completions(rows)

    feedback_ids = trainer.chat_turns.feedback_ids(trainer.feedback_provider.template)
    loss_mask = out["completion_mask"] * out["tool_mask"]  # (B, T)
    advantages = out["advantages"]  # (B, T)
    assert advantages.shape == out["completion_ids"].shape
    rewards = torch.tensor([[len(set(t)) / 10.0 for t in row["attempt_texts"]] for row in rows])  # (B, K)
    for b, row in enumerate(rows):
        (s1, e1), (s2, e2) = row["attempt_spans"]
        ids = out["completion_ids"][b]
        # between the attempts: an environment EOS if attempt 1 was cut off, then exactly the feedback turn
        between = ids[e1:s2].tolist()
        expected_between = ([tokenizer.eos_token_id] if row["attempt_truncated"][0] else []) + feedback_ids
        assert between == expected_between
        assert loss_mask[b, e1:s2].sum() == 0
        assert loss_mask[b, s1:e1].all() and loss_mask[b, s2:e2].all()
        assert loss_mask[b, e2:].sum() == 0  # padding
        assert advantages[b, e1:s2].abs().sum() == 0
    # hand computation (scale_rewards none, alpha 10): attempt 1 centred r1, attempt 2 centred shaped r2
    shaped = rewards[:, 1] + 10.0 * (rewards[:, 1] - rewards[:, 0])
    for b, row in enumerate(rows):
        group = slice(b // 4 * 4, b // 4 * 4 + 4)
        (s1, _), (s2, _) = row["attempt_spans"]
        assert advantages[b, s1].item() == pytest.approx((rewards[b, 0] - rewards[group, 0].mean()).item(), abs=1e-5)
        assert advantages[b, s2].item() == pytest.approx((shaped[b] - shaped[group].mean()).item(), abs=1e-5)


def test_subclass_hook_changes_the_feedback(tmp_path, tiny_model_dir):
    """The README's subclass example, verbatim: one overridden method changes what is said between attempts."""
    from selfcorrect.trainers import SCoReTrainer

    class HintTrainer(SCoReTrainer):
        """SCoRe whose turn-2 message quotes the model's own answer back to it."""

        def feedback(self, outcome):  # the user turn after an attempt (None ends the episode)
            return f"You answered {outcome.answer or 'nothing'}. Re-check each step and answer in \\boxed{{}}."

    trainer = build_trainer(write_recipe(tmp_path, tiny_model_dir, method="score", **MULTI_ATTEMPT), HintTrainer)
    trainer.train()
    assert trainer.state.global_step == 2
    rows = [dict(trainer.train_dataset[0]) for _ in range(4)]
    out = trainer._generate_and_score_completions(rows)
    for b, row in enumerate(rows):
        assert row["feedback_texts"] == [
            f"You answered {row['attempt_answers'][0] or 'nothing'}. Re-check each step and answer in \\boxed{{}}."
        ]
        (_, end), (start, _) = row["attempt_spans"]
        masked_text = trainer.processing_class.decode(out["completion_ids"][b, end:start])
        assert row["feedback_texts"][0] in masked_text


def _scripted_ufo(tmp_path, tiny_model_dir, **fields):
    """UFO (3 turns) on the tiny model with the parity judge, biased towards EOS: a random model almost never ends a
    turn, and a truncated attempt is always wrong."""
    from selfcorrect.trainers import UFOTrainer

    class ScriptedUFO(UFOTrainer):
        def judge(self, text, row):
            return parity_judge(text, row)

    recipe = write_recipe(
        tmp_path,
        tiny_model_dir,
        method="ufo",
        max_attempts=3,
        max_attempt_length=8,
        max_completion_length=160,
        reward_funcs=["accuracy"],  # UFO's credit is the verdict: the only reward it accepts
        **fields,
    )
    trainer = build_trainer(recipe, ScriptedUFO)
    trainer.generation_config.sequence_bias = [[[trainer.processing_class.eos_token_id], 9.0]]
    return trainer


def test_ufo_two_steps_with_early_stop(tmp_path, tiny_model_dir):
    """UFO on a random model, with a scripted judge so that some attempts are 'correct' and episodes stop early."""
    trainer = _scripted_ufo(tmp_path, tiny_model_dir)
    trainer.train()
    assert trainer.state.global_step == 2
    logs = [log for log in trainer.state.log_history if "selfcorrect/attempts_mean" in log]
    assert all(1.0 <= log["selfcorrect/attempts_mean"] <= 3.0 for log in logs)
    assert any(log["selfcorrect/acc_t1"] > 0 for log in logs) and any(
        log["selfcorrect/attempts_mean"] < 3 for log in logs
    )
    trainer.save_model(str(tmp_path / "out"))
    unchanged = unchanged_parameters(tiny_model_dir, tmp_path / "out")
    assert not unchanged, unchanged
    # episodes stop at the first 'correct' attempt and get unary feedback only after wrong ones
    rows = [dict(trainer.train_dataset[i // 4]) for i in range(8)]
    trainer._generate_and_score_completions(rows)
    for row in rows:
        # a truncated attempt is wrong whatever the judge says
        verdicts = [parity_judge(t, row) and not cut for t, cut in zip(row["attempt_texts"], row["attempt_truncated"])]
        assert verdicts == row["attempt_correct"]
        assert not any(verdicts[:-1]) and (verdicts[-1] or len(verdicts) == 3)
        assert row["feedback_texts"] == ["Incorrect. Please think again."] * (len(verdicts) - 1)


def test_stage1_batch_credits_last_reward_and_weights_the_kl_per_attempt(tmp_path, tiny_model_dir):
    """Stage I in a real batch: every model token carries the normalized last-attempt reward; the KL weight is beta_2
    on attempt-1 tokens, beta_1 on attempt-2 tokens and 0 on the feedback turn."""
    recipe = write_recipe(
        tmp_path,
        tiny_model_dir,
        method="score",
        score_stage=1,
        scale_rewards="none",
        beta=0.01,
        turn1_beta=0.1,
        **MULTI_ATTEMPT,
    )
    trainer = build_trainer(recipe)
    rows = [dict(trainer.train_dataset[i // 4]) for i in range(8)]
    trainer.model.train()
    out = trainer._generate_and_score_completions(rows)
    last = torch.tensor([len(set(row["attempt_texts"][-1])) / 10.0 for row in rows])  # (B,) the test reward
    for b, row in enumerate(rows):
        group = slice(b // 4 * 4, b // 4 * 4 + 4)
        expected = (last[b] - last[group].mean()).item()
        (s1, e1), (s2, e2) = row["attempt_spans"]
        assert out["advantages"][b, s1:e1].tolist() == pytest.approx([expected] * (e1 - s1), abs=1e-5)
        assert out["advantages"][b, s2:e2].tolist() == pytest.approx([expected] * (e2 - s2), abs=1e-5)
        assert out["kl_weights"][b, s1:e1].tolist() == pytest.approx([0.1] * (e1 - s1))
        assert out["kl_weights"][b, s2:e2].tolist() == pytest.approx([0.01] * (e2 - s2))
        assert out["kl_weights"][b, e1:s2].abs().sum() == 0
    # the loss runs with the weighted KL (TRL's own KL switched off for it) and is finite
    trainer.current_gradient_accumulation_steps = 1
    loss = trainer.compute_loss(trainer.model, out)
    assert torch.isfinite(loss) and trainer.beta == 0.01  # TRL's beta restored after the loss


def test_a_step_keeps_no_state_on_the_trainer(tmp_path, tiny_model_dir, monkeypatch):
    """The step's record (`Step`) lives only while `_generate_and_score_completions` runs, and neither the step nor
    the loss (with per-attempt KL) shadows a method on the instance or leaves TRL's `beta` changed."""
    recipe = write_recipe(
        tmp_path, tiny_model_dir, method="score", score_stage=1, beta=0.01, turn1_beta=0.1, **MULTI_ATTEMPT
    )
    trainer = build_trainer(recipe)
    steps = []
    token_advantages = type(trainer).token_advantages

    def record(self, step, output):  # step 4 receives the filled record
        steps.append(step)
        return token_advantages(self, step, output)

    monkeypatch.setattr(type(trainer), "token_advantages", record)
    rows = [dict(trainer.train_dataset[i // 4]) for i in range(8)]
    trainer.model.train()
    out = trainer._generate_and_score_completions(rows)
    (step,) = steps
    assert step.rows is rows and step.rewards.shape == step.advantages.shape == (8, 2)
    assert step.episodes["attempt_texts"] == [row["attempt_texts"] for row in rows] and step.padding_ids
    assert trainer._step_in_progress is None
    trainer.current_gradient_accumulation_steps = 1
    trainer.compute_loss(trainer.model, out)
    assert trainer._loss_parts is None and trainer.beta == 0.01
    shadowed = [name for name in vars(trainer) if callable(getattr(type(trainer), name, None))]
    assert shadowed == []


def test_ufo_batch_gives_every_turn_the_group_normalized_return(tmp_path, tiny_model_dir):
    from selfcorrect.algos import ufo_returns

    trainer = _scripted_ufo(tmp_path, tiny_model_dir, scale_rewards="none")
    rows = [dict(trainer.train_dataset[i // 4]) for i in range(8)]
    trainer.model.train()
    out = trainer._generate_and_score_completions(rows)
    returns = ufo_returns([r["attempt_correct"] for r in rows], [r["attempt_answers"] for r in rows], max_turns=3)
    for b, row in enumerate(rows):
        group = slice(b // 4 * 4, b // 4 * 4 + 4)
        expected = (returns[b] - returns[group].mean()).item()
        for start, end in row["attempt_spans"]:
            assert out["advantages"][b, start:end].tolist() == pytest.approx([expected] * (end - start), abs=1e-5)
