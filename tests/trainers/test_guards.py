"""Hardening: non-finite steps are skipped then stop the run, so do unscored batches, checkpoints resume exactly."""

from __future__ import annotations

import json
import shutil
from types import SimpleNamespace

import pytest
import torch
from safetensors.torch import load_file

from selfcorrect.callbacks import format_log_line
from selfcorrect.guards import (
    NonFiniteGradientGuard,
    NonFiniteTrainingError,
    UnscoredBatches,
    ZeroSignalWarning,
    check_rewards_scored,
    last_complete_checkpoint,
    zero_signal_reason,
)
from selfcorrect.rewards import RewardFunctionError
from selfcorrect.train import main as train_main
from tests.helpers import build_trainer, write_recipe

SCORE = dict(method="score", score_stage=2, max_attempt_length=8, max_completion_length=96)


def never_scores(completions, **kwargs):
    return [None] * len(completions)


def test_check_rewards_scored_names_the_functions():
    nan = float("nan")
    check_rewards_scored(torch.tensor([[nan, 1.0], [nan, nan]]), ["a", "b"])  # one score is enough
    with pytest.raises(RewardFunctionError, match=r"every reward function \(a, b\) returned None for all 2 samples"):
        check_rewards_scored(torch.tensor([[nan, nan], [nan, nan]]), ["a", "b"])


def test_unscored_batches_counts_in_a_row_and_resets():
    nan = float("nan")
    unscored, scored = torch.full((2, 1), nan), torch.tensor([[nan], [1.0]])
    policy = UnscoredBatches(limit=2)
    assert policy.check(unscored, ["f"]) and not policy.check(scored, ["f"])  # a scored batch resets the count
    assert policy.check(unscored, ["f"]) and policy.in_a_row == 1
    with pytest.raises(RewardFunctionError, match=r"\(f\) returned None for all 2 samples of 2 batches in a row"):
        policy.check(unscored, ["f"])
    assert policy.total == 3


@pytest.mark.parametrize("fields", [dict(method="grpo"), SCORE], ids=["grpo", "score"])
def test_an_unscored_batch_warns_and_trains_nothing_as_in_trl(tmp_path, tiny_model_dir, fields, caplog):
    """TRL's GRPOTrainer warns and trains on zero rewards (advantage 0); ours does the same, then stops the run after
    `max_unscored_batches` such batches in a row (before 2026-11-30: an error at the first one)."""
    recipe = write_recipe(tmp_path, tiny_model_dir, reward_funcs=["tests.trainers.test_guards:never_scores"], **fields)
    trainer = build_trainer(recipe)
    rows = [dict(trainer.train_dataset[i // 4]) for i in range(8)]
    trainer.model.train()
    with caplog.at_level("WARNING"):
        out = trainer._generate_and_score_completions(rows)
    assert out["advantages"].abs().sum() == 0  # no policy gradient
    assert "All reward functions returned None" in caplog.text  # TRL's own warning, as TRL users expect
    assert "never_scores" in caplog.text and "contributes no policy gradient" in caplog.text
    trainer._generate_and_score_completions(rows)
    with pytest.raises(RewardFunctionError, match="never_scores.*3 batches in a row"):
        trainer._generate_and_score_completions(rows)


def test_unscored_batches_stop_a_run_at_the_limit(tmp_path, tiny_model_dir):
    recipe = write_recipe(
        tmp_path,
        tiny_model_dir,
        reward_funcs=["tests.trainers.test_guards:never_scores"],
        max_unscored_batches=2,
        **SCORE,
    )
    with pytest.raises(RewardFunctionError, match="never_scores.*2 batches in a row"):
        train_main(["--config", str(recipe)])


def test_guard_skips_the_optimizer_step_and_stops_after_the_limit():
    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.1)
    guard = NonFiniteGradientGuard(max_consecutive=2)
    state = SimpleNamespace(global_step=0)

    def step(loss_scale: float):
        optimizer.zero_grad()
        (model(torch.ones(1, 3)).sum() * loss_scale).backward()
        guard.on_pre_optimizer_step(None, state, None, model=model)
        optimizer.step()
        state.global_step += 1

    step(1.0)  # a finite step updates the weights and Adam's moments
    weights = [p.detach().clone() for p in model.parameters()]
    moments = [optimizer.state[p]["exp_avg"].clone() for p in model.parameters()]
    step(float("nan"))  # skipped: weights and moments untouched (Adam's momentum would otherwise still move them)
    assert all(torch.equal(w, p) for w, p in zip(weights, model.parameters()))
    assert all(torch.equal(m, optimizer.state[p]["exp_avg"]) for m, p in zip(moments, model.parameters()))
    assert guard.skipped_steps == [2] and guard.consecutive == 1
    step(1.0)  # a good step resets the count
    assert guard.consecutive == 0
    step(float("inf"))
    with pytest.raises(NonFiniteTrainingError, match=r"2 optimizer steps in a row \(steps \[4, 5\]\)"):
        step(float("nan"))
    logs = {"loss": 1.0}
    guard.on_log(None, state, None, logs=logs)
    assert logs["selfcorrect/skipped_steps"] == 3.0


def test_nan_loss_in_a_real_trainer_skips_every_step_then_stops_with_the_weights_intact(tmp_path, tiny_model_dir):
    from selfcorrect.trainers import GRPOTrainer

    class NaNLoss(GRPOTrainer):
        def compute_loss(self, model, inputs, *args, **kwargs):
            return super().compute_loss(model, inputs, *args, **kwargs) * float("nan")

    recipe = write_recipe(tmp_path, tiny_model_dir, method="grpo", max_steps=5, save_strategy="steps", save_steps=1)
    trainer = build_trainer(recipe, NaNLoss)
    guard = NonFiniteGradientGuard(max_consecutive=2, accelerator=trainer.accelerator)
    trainer.add_callback(guard)
    with pytest.raises(NonFiniteTrainingError, match=r"2 optimizer steps in a row \(steps \[1, 2\]\)"):
        trainer.train()
    saved = load_file(str(tmp_path / "out" / "checkpoint-1" / "model.safetensors"))
    initial = load_file(str(tiny_model_dir / "model.safetensors"))
    assert all(torch.equal(saved[name], initial[name]) for name in initial)  # the NaN step never touched a weight


def test_last_complete_checkpoint_skips_partial_ones(tmp_path):
    assert last_complete_checkpoint(tmp_path / "missing") is None
    for step, state in [(1, '{"global_step": 1}'), (2, None), (10, '{"global_st')]:
        folder = tmp_path / f"checkpoint-{step}"
        folder.mkdir()
        if state is not None:
            (folder / "trainer_state.json").write_text(state)
    (tmp_path / "checkpoint-x").mkdir()
    assert last_complete_checkpoint(tmp_path) == str(tmp_path / "checkpoint-1")


def _losses(trainer, after: int = 0) -> list[float]:
    return [log["loss"] for log in trainer.state.log_history if "loss" in log and log["step"] > after]


def test_resume_reproduces_the_uninterrupted_run_even_after_a_crash_mid_save(tmp_path, tiny_model_dir):
    """4 steps straight vs 2 steps + (step 3's checkpoint half written when the run died) + resume: the resumed run
    starts from checkpoint-2 and its steps 3-4 have the same losses and end with the same weights."""
    fields = dict(max_steps=4, save_strategy="steps", save_steps=1, **SCORE)
    straight = train_main(["--config", str(write_recipe(tmp_path / "a", tiny_model_dir, **fields))])

    recipe = write_recipe(tmp_path / "b", tiny_model_dir, **fields)
    train_main(["--config", str(recipe), "--max_steps", "3"])
    partial = tmp_path / "b" / "out" / "checkpoint-3"
    (partial / "trainer_state.json").unlink()  # written last: its absence is a save that did not finish
    shutil.rmtree(partial / "model.safetensors", ignore_errors=True)
    resumed = train_main(["--config", str(recipe)])
    resumed_steps = [log["step"] for log in resumed.state.log_history if "loss" in log]
    assert resumed_steps == [1, 2, 3, 4]  # history of checkpoint-2, then steps 3 and 4 again
    assert _losses(resumed, after=2) == pytest.approx(_losses(straight, after=2), rel=1e-5)
    final = json.loads((tmp_path / "b" / "out" / "checkpoint-4" / "trainer_state.json").read_text())
    assert final["global_step"] == 4
    a = load_file(str(tmp_path / "a" / "out" / "model.safetensors"))
    b = load_file(str(tmp_path / "b" / "out" / "model.safetensors"))
    assert all(torch.allclose(a[name], b[name], atol=1e-6) for name in a)


# --- steps whose groups all had zero advantage ------------------------------------------------------------------------

# A real TRL GRPO log (SmolLM2, 8-token cap): every completion cut off, every group's rewards equal.
TRL_CAPPED_LOG = {
    "loss": 0.0,
    "completions/clipped_ratio": 1.0,
    "rewards/accuracy/mean": 0.0,
    "rewards/format/mean": 0.0,
    "reward": 0.0,
    "reward_std": 0.0,
    "frac_reward_zero_std": 1.0,
}


@pytest.mark.parametrize(
    "logs, reason",
    [
        (TRL_CAPPED_LOG, "all truncated"),
        ({**TRL_CAPPED_LOG, "completions/clipped_ratio": 0.75}, "all wrong, 75 % truncated"),
        ({**TRL_CAPPED_LOG, "completions/clipped_ratio": 0.0, "rewards/accuracy/mean": 1.0}, "all right"),
        (
            {**TRL_CAPPED_LOG, "completions/clipped_ratio": 0.0, "rewards/accuracy/mean": 0.5},
            "every group's rewards equal",
        ),
        ({**TRL_CAPPED_LOG, "frac_reward_zero_std": 0.5}, None),  # one group in two had signal
        ({**TRL_CAPPED_LOG, "reward": float("nan")}, "unscored"),
        ({"loss": 0.1}, None),  # nothing said about the groups
        # the multi-attempt trainers' own keys win over TRL's
        (
            {
                "frac_reward_zero_std": 0.0,
                "selfcorrect/zero_advantage_frac": 1.0,
                "selfcorrect/acc_t1": 0.0,
                "selfcorrect/acc_t2": 0.0,
                "selfcorrect/truncated_attempts": 0.4,
            },
            "all wrong, 40 % truncated",
        ),
        ({"selfcorrect/zero_advantage_frac": 0.9, "frac_reward_zero_std": 1.0}, None),
    ],
)
def test_zero_signal_reason_from_logged_metrics(logs, reason):
    assert zero_signal_reason(logs) == reason


def test_step_line_says_when_a_step_trained_nothing_and_why():
    line = format_log_line(TRL_CAPPED_LOG, 3, 8, 12.0)
    assert line == "step 3/8 | reward 0.00 | loss 0 | no signal: all truncated | 12.0 s/step"
    assert "no signal" not in format_log_line({**TRL_CAPPED_LOG, "frac_reward_zero_std": 0.5}, 3, 8)


def _log_steps(callback, logs_per_step, args):
    for step, logs in enumerate(logs_per_step, start=1):
        callback.on_log(args, SimpleNamespace(is_world_process_zero=True, global_step=step), None, logs=dict(logs))


def test_zero_signal_warning_after_the_limit_names_the_cause_and_the_field(caplog):
    single = SimpleNamespace(max_completion_length=64, num_generations=4, temperature=0.7)
    with caplog.at_level("WARNING", logger="selfcorrect.guards"):
        _log_steps(ZeroSignalWarning(3), [TRL_CAPPED_LOG] * 2, single)
    assert not caplog.records  # two in a row: below the limit
    with caplog.at_level("WARNING", logger="selfcorrect.guards"):
        _log_steps(ZeroSignalWarning(3), [TRL_CAPPED_LOG] * 6, single)
    assert len(caplog.records) == 1  # once per run of such steps
    message = caplog.records[0].getMessage()
    assert "3 logged steps in a row (up to step 3) had zero advantage in every group (all truncated)" in message
    assert "`max_completion_length` (now 64)" in message and "`zero_signal_warn_steps` = 3" in message

    caplog.clear()  # multi-attempt: the per-attempt cap is the field to change
    multi = SimpleNamespace(max_attempt_length=8, max_completion_length=96, num_generations=4, temperature=1.0)
    with caplog.at_level("WARNING", logger="selfcorrect.guards"):
        _log_steps(ZeroSignalWarning(2), [{**TRL_CAPPED_LOG, "completions/clipped_ratio": 0.6}] * 2, multi)
    assert "`max_attempt_length` (now 8)" in caplog.text

    caplog.clear()  # all wrong without truncation: difficulty, not the cap
    wrong = {**TRL_CAPPED_LOG, "completions/clipped_ratio": 0.0}
    signal = {**TRL_CAPPED_LOG, "frac_reward_zero_std": 0.5}
    with caplog.at_level("WARNING", logger="selfcorrect.guards"):
        _log_steps(ZeroSignalWarning(2), [wrong, signal, wrong, {"train_runtime": 1.0}, wrong], single)
    assert "(all wrong)" in caplog.text and "too hard" in caplog.text and "`num_generations` (now 4)" in caplog.text
    assert "max_completion_length" not in caplog.text
    assert "up to step 5" in caplog.text  # a step with signal resets the count; a log without the metrics does not

    caplog.clear()
    with caplog.at_level("WARNING", logger="selfcorrect.guards"):
        _log_steps(ZeroSignalWarning(0), [TRL_CAPPED_LOG] * 5, single)  # 0: never warn
        _log_steps(ZeroSignalWarning(2), [{**TRL_CAPPED_LOG, "reward": float("nan")}] * 3, single)  # unscored
    assert not caplog.records


@pytest.mark.parametrize("fields", [dict(method="grpo"), SCORE], ids=["grpo", "score"])
def test_training_announces_steps_without_signal(tmp_path, tiny_model_dir, fields, capsys, caplog):
    """A random tiny model cut at a few tokens never answers: TRL's GRPO and a multi-attempt trainer both say so on
    the step line and warn, naming their token cap."""
    caps = dict(max_completion_length=4) if fields["method"] == "grpo" else {}
    recipe = write_recipe(
        tmp_path, tiny_model_dir, reward_funcs=["accuracy"], zero_signal_warn_steps=2, **fields, **caps
    )
    with caplog.at_level("WARNING", logger="selfcorrect.guards"):
        train_main(["--config", str(recipe), "--disable_tqdm", "true"])
    assert "no signal: all truncated" in capsys.readouterr().out
    cap = "`max_completion_length` (now 4)" if fields["method"] == "grpo" else "`max_attempt_length` (now 8)"
    assert "2 logged steps in a row" in caplog.text and cap in caplog.text
