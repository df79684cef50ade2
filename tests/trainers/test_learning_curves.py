"""What a user sees of a run: log_history.jsonl as it trains, the learning-curve plot, `selfcorrect plot`, and one
compact console line per logged step instead of TRL's raw metric dict."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
from transformers.trainer_callback import PrinterCallback, ProgressCallback

from selfcorrect.callbacks import CompactProgressCallback, LogHistoryCallback, format_log_line, use_compact_console
from selfcorrect.cli import main as cli_main
from selfcorrect.plots import read_jsonl_records, save_learning_curves
from selfcorrect.train import main as train_main
from tests.helpers import write_recipe

PNG = b"\x89PNG\r\n\x1a\n"


def _steps(path):
    return [r["step"] for r in read_jsonl_records(path) if "loss" in r]


def test_two_step_run_logs_plots_and_prints_one_line_per_step(tmp_path, tiny_model_dir, capsys):
    recipe = write_recipe(
        tmp_path,
        tiny_model_dir,
        method="score",
        score_stage=2,
        max_attempt_length=8,
        max_completion_length=96,
        selfcorrect_eval_steps=2,
    )
    trainer = train_main(["--config", str(recipe)])
    out = tmp_path / "out"
    records = read_jsonl_records(out / "log_history.jsonl")
    step_lines = [r for r in records if "loss" in r]
    assert [r["step"] for r in step_lines] == [1, 2]
    assert all("selfcorrect/acc_t2" in r and "selfcorrect/delta_i2c" in r for r in step_lines)
    assert "selfcorrect/eval/acc_t1" in step_lines[1]  # the periodic eval, logged with step 2
    history = trainer.state.log_history  # the same logs (plus what callbacks add to them, e.g. skipped steps)
    assert len(records) == len(history)
    assert json.dumps([{k: r[k] for k in h} for r, h in zip(records, history)]) == json.dumps(history)  # NaN too
    plot = out / "eval" / "learning_curves.png"
    assert plot.read_bytes().startswith(PNG)

    printed = capsys.readouterr().out
    lines = [line for line in printed.splitlines() if line.startswith("step ")]
    assert [line.split(" | ")[0] for line in lines] == ["step 1/2", "step 2/2"], printed
    assert all("acc@t1 " in line and "acc@t2 " in line and " Δ " in line and "s/step" in line for line in lines)
    assert "| eval acc@t1 " in lines[1]
    assert "'loss'" not in printed and "{'" not in printed  # no raw metric dict on the console
    assert "done | step 2/2 in " in printed

    # `selfcorrect plot` redraws it
    plot.write_bytes(b"")
    assert cli_main(["plot", str(out)]) == 0
    assert plot.read_bytes().startswith(PNG)
    assert f"saved {plot}" in capsys.readouterr().out


def test_plot_falls_back_to_the_newest_checkpoint_and_fails_clearly_without_logs(tmp_path, capsys):
    run = tmp_path / "run"
    for step in (2, 10):
        (run / f"checkpoint-{step}").mkdir(parents=True)
        history = [{"step": s, "loss": 0.1 * s, "reward": 0.2} for s in range(1, step + 1)]
        (run / f"checkpoint-{step}" / "trainer_state.json").write_text(json.dumps({"log_history": history}))
    assert cli_main(["plot", str(run), "--output", str(tmp_path / "curves.png")]) == 0
    assert (tmp_path / "curves.png").read_bytes().startswith(PNG)
    out = capsys.readouterr().out
    assert "10 logged steps from" in out and "checkpoint-10" in out

    empty = tmp_path / "empty"
    empty.mkdir()
    assert cli_main(["plot", str(empty)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("selfcorrect: error:") and str(empty) in err and "log_history.jsonl" in err
    assert "Traceback" not in err
    assert cli_main(["plot", str(tmp_path / "missing")]) == 2
    assert "missing is not a folder" in capsys.readouterr().err


def test_single_attempt_and_empty_histories_still_plot(tmp_path):
    grpo = [{"step": 1, "loss": 0.01, "reward": 0.4, "epoch": 0.5}, {"step": 2, "loss": 0.02, "reward": 0.5}]
    assert save_learning_curves(grpo, tmp_path / "grpo.png").read_bytes().startswith(PNG)
    sft = [{"step": 1, "loss": 1.5}, {"step": 1, "train_runtime": 3.0, "train_loss": 1.5}]
    assert save_learning_curves(sft, tmp_path / "sft.png").read_bytes().startswith(PNG)
    assert save_learning_curves([], tmp_path / "none.png").read_bytes().startswith(PNG)


def test_compact_line_formats_a_log_exactly():
    logs = {
        "loss": 0.0123,
        "grad_norm": 1.7,
        "reward": 0.4125,
        "selfcorrect/acc_t1": 0.25,
        "selfcorrect/acc_t2": 0.3125,
        "selfcorrect/delta": 0.0625,
        "selfcorrect/delta_i2c": 0.0625,
        "selfcorrect/delta_c2i": 0.0,
        "selfcorrect/reward_t1": 0.3,
        "step_time": 9.9,
        "epoch": 0.5,
    }
    assert (
        format_log_line(logs, 3, 8, 12.34)
        == "step 3/8 | acc@t1 25.0 acc@t2 31.2 Δ +6.2 (i→c 6.2, c→i 0.0) | reward 0.41 | loss 0.0123 | 12.3 s/step"
    )
    negative = {**logs, "selfcorrect/delta": -0.125, "selfcorrect/delta_i2c": 0.0, "selfcorrect/delta_c2i": 0.125}
    assert "Δ -12.5 (i→c 0.0, c→i 12.5)" in format_log_line(negative, 3, 8)
    assert format_log_line(negative, 3, 8).endswith("| 9.9 s/step")  # TRL's step_time without a wall time
    # single attempt: what it has
    assert (
        format_log_line({"loss": 0.5, "reward": 1.0, "epoch": 1.0}, 2, 2, 1.0)
        == "step 2/2 | reward 1.00 | loss 0.5 | 1.0 s/step"
    )
    assert format_log_line({"loss": 2.0}, 1) == "step 1 | loss 2"
    assert format_log_line({"loss": 2.0, "redi/margin": 0.25}, 1, 2) == "step 1/2 | margin +0.25 | loss 2"
    evals = {"selfcorrect/eval/acc_t1": 0.5, "selfcorrect/eval/acc_t2": 0.75, "selfcorrect/eval/delta": 0.25}
    assert format_log_line(evals, 4, 8) == "step 4/8 | eval acc@t1 50.0 acc@t2 75.0 Δ +25.0"
    summary = {"train_runtime": 98.44, "train_loss": 0.012, "total_flos": 0.0, "epoch": 1.0}
    assert format_log_line(summary, 8, 8) == "done | step 8/8 in 98.4 s | train loss 0.012"
    assert format_log_line({"epoch": 1.0, "learning_rate": 1e-6}, 1, 2) is None


def _state(step, max_steps=8, main=True):
    return SimpleNamespace(global_step=step, max_steps=max_steps, is_world_process_zero=main, log_history=[])


def test_console_callback_prints_the_line_not_the_dict(capsys):
    callback = CompactProgressCallback(bar=False)  # disable_tqdm: lines only
    callback.on_train_begin(None, _state(0), None)
    callback.on_step_end(None, _state(1), None)
    callback.on_log(None, _state(1), None, logs={"loss": 0.5, "reward": 0.25, "epoch": 0.1})
    callback.on_log(None, _state(1, main=False), None, logs={"loss": 9.0})  # other ranks print nothing
    out = capsys.readouterr().out
    assert out.startswith("step 1/8 | reward 0.25 | loss 0.5 | ") and out.endswith(" s/step\n")
    assert out.count("\n") == 1 and "{" not in out
    callback.on_log(None, _state(2), None, logs={"loss": "oops"})  # not a number: no crash, the bare step
    assert capsys.readouterr().out == "step 2/8\n"

    # the default callbacks transformers installs: PrinterCallback with disable_tqdm, else ProgressCallback
    trainer = SimpleNamespace(callback_handler=SimpleNamespace(callbacks=[PrinterCallback(), ProgressCallback()]))
    use_compact_console(trainer)
    assert [(type(c), c.bar) for c in trainer.callback_handler.callbacks] == [
        (CompactProgressCallback, False),
        (CompactProgressCallback, True),
    ]


def test_log_history_survives_and_resume_does_not_duplicate_steps(tmp_path):
    path = tmp_path / "log_history.jsonl"
    first = LogHistoryCallback(tmp_path)
    first.on_train_begin(None, _state(0), None)
    for step in range(1, 5):
        first.on_log(None, _state(step), None, logs={"loss": float(step), "epoch": step / 4})
        assert _steps(path) == list(range(1, step + 1))  # on disk at once, not at the end
    first.on_log(None, _state(4, main=False), None, logs={"loss": 9.0})  # other ranks write nothing
    with path.open("a") as f:
        f.write('{"loss": 5.0, "st')  # a line cut off by the interruption
    # the run died after step 4; its last checkpoint is step 2: steps 3 and 4 will run again
    resumed = LogHistoryCallback(tmp_path)
    resumed.on_train_begin(None, _state(2), None)
    assert _steps(path) == [1, 2]
    for step in (3, 4, 5):
        resumed.on_log(None, _state(step), None, logs={"loss": 10.0 + step})
    assert _steps(path) == [1, 2, 3, 4, 5]
    assert [r["loss"] for r in read_jsonl_records(path)] == [1.0, 2.0, 13.0, 14.0, 15.0]
    # a fresh run (step 0) in the same folder starts a new file
    LogHistoryCallback(tmp_path).on_train_begin(None, _state(0), None)
    assert path.read_text() == ""


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_non_finite_values_are_written_and_skipped_by_the_plot(tmp_path, value):
    callback = LogHistoryCallback(tmp_path)
    callback.on_train_begin(None, _state(0), None)
    callback.on_log(None, _state(1), None, logs={"loss": value, "reward": 0.5})
    records = read_jsonl_records(tmp_path / "log_history.jsonl")
    assert len(records) == 1 and records[0]["reward"] == 0.5
    assert save_learning_curves(records, tmp_path / "p.png") is not None
