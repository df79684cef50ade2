"""Negative-sample reinforcement in trainers: every mode trains; advantages come from correctness, per attempt."""

from __future__ import annotations

import pytest

from selfcorrect.configs import parse_recipe
from selfcorrect.trainers import NegativeSampleTrainer, SCoReTrainer
from tests.helpers import build_trainer, parity_judge, unchanged_parameters, write_recipe


class ScriptedNSR(NegativeSampleTrainer):
    def judge(self, text, row):
        return parity_judge(text, row)


class ScriptedSCoRe(SCoReTrainer):
    def judge(self, text, row):
        return parity_judge(text, row)


def _eos_biased(trainer):
    # a random model almost never ends a turn, and a truncated attempt is always wrong: bias it towards EOS
    trainer.generation_config.sequence_bias = [[[trainer.processing_class.eos_token_id], 9.0]]
    return trainer


@pytest.mark.parametrize("mode", ["psr", "nsr", "w_reinforce", "oreal"])
def test_each_mode_trains_every_parameter(tmp_path, tiny_model_dir, mode):
    recipe = write_recipe(
        tmp_path,
        tiny_model_dir,
        method="nsr",
        advantage_mode=mode,
        reward_funcs=["accuracy"],  # the verdict: the only reward a verdict-only credit accepts
        max_attempt_length=8,
        num_generations=8,
        per_device_train_batch_size=8,
        max_steps=3,
    )
    trainer = _eos_biased(build_trainer(recipe, ScriptedNSR))
    trainer.train()
    trainer.save_model(str(tmp_path / "out"))
    unchanged = unchanged_parameters(tiny_model_dir, tmp_path / "out")
    assert not unchanged, unchanged


def test_w_reinforce_advantages_per_token(tmp_path, tiny_model_dir):
    recipe = write_recipe(
        tmp_path,
        tiny_model_dir,
        method="nsr",
        advantage_mode="w_reinforce",
        positive_weight=0.25,
        reward_funcs=["accuracy"],
        max_attempt_length=8,
    )
    trainer = _eos_biased(build_trainer(recipe, ScriptedNSR))
    rows = [dict(trainer.train_dataset[i // 4]) for i in range(8)]
    trainer.model.train()
    out = trainer._generate_and_score_completions(rows)
    assert out["completion_ids"].shape[0] == 8 and "tool_mask" in out
    for b, row in enumerate(rows):
        ((start, end),) = row["attempt_spans"]
        expected = 0.25 if row["attempt_correct"][0] else -1.0
        assert out["advantages"][b, start:end].tolist() == [expected] * (end - start)


class RecordingSCoRe(ScriptedSCoRe):
    def attempt_advantages(self, rewards, episodes):
        self.method_credit = super().attempt_advantages(rewards, episodes)  # (N, K)
        return self.method_credit


def test_score_with_nsr_keeps_scores_negative_credit(tmp_path, tiny_model_dir):
    """SCoRe + NSR: SCoRe's own (shaped) credit with its positive part dropped, on every attempt's tokens. Before
    2026-11-30 the mode silently replaced SCoRe's credit with -1 on every wrong attempt."""
    recipe = write_recipe(
        tmp_path, tiny_model_dir, method="score", advantage_mode="nsr", max_attempt_length=8, max_completion_length=96
    )
    trainer = _eos_biased(build_trainer(recipe, RecordingSCoRe))
    rows = [dict(trainer.train_dataset[i // 4]) for i in range(8)]
    trainer.model.train()
    out = trainer._generate_and_score_completions(rows)
    assert (trainer.method_credit > 0).any()  # varied rewards: SCoRe gives some attempts positive credit
    expected = trainer.method_credit.clamp(max=0.0)  # (8, 2)
    for b, row in enumerate(rows):
        for k, (start, end) in enumerate(row["attempt_spans"]):
            assert out["advantages"][b, start:end].tolist() == pytest.approx([expected[b, k].item()] * (end - start))


@pytest.mark.parametrize(
    "fields, message",
    [
        (dict(method="nsr", positive_weight=1.5), "positive_weight"),
        (dict(method="nsr", positive_weight=-0.1), "positive_weight"),
        (dict(method="nsr", advantage_mode="nrs"), "advantage_mode"),
        (dict(method="score", negative_weight=0.0), "negative_weight"),
    ],
)
def test_invalid_settings(tmp_path, tiny_model_dir, fields, message):
    with pytest.raises(ValueError, match=message):
        parse_recipe(["--config", str(write_recipe(tmp_path, tiny_model_dir, **fields))])


def test_nsr_defaults_follow_the_paper(tmp_path, tiny_model_dir):
    _, _, _, args = parse_recipe(["--config", str(write_recipe(tmp_path, tiny_model_dir, method="nsr"))])
    assert (args.advantage_mode, args.positive_weight, args.beta, args.max_attempts) == ("w_reinforce", 0.1, 0.0, 1)
