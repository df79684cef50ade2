"""Weights & Biases (offline): the run is named, tagged and configured from the recipe; the self-correction metrics,
the periodic evaluation and the per-attempt completions table reach it; no credentials means offline, not a crash."""

from __future__ import annotations

import json
import logging

import pandas as pd
import wandb

from selfcorrect import tracking
from selfcorrect.train import main as train_main
from tests.helpers import write_recipe


def test_wandb_offline_run_has_selfcorrect_metrics_and_attempt_columns(tmp_path, tiny_model_dir, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    monkeypatch.setenv("WANDB_SILENT", "true")
    recipe = write_recipe(
        tmp_path,
        tiny_model_dir,
        method="score",
        max_attempt_length=8,
        max_completion_length=96,
        report_to="wandb",
        log_completions=True,
        max_steps=1,
        selfcorrect_eval_steps=1,
        eval_before_training=True,
        eval_after_training=True,
        eval_max_new_tokens=4,
    )
    try:
        trainer = train_main(["--config", str(recipe), "--learning_rate", "0.02"])
        run = wandb.run
        # name and tags from the recipe (method, model folder, dataset); config: recipe fields + YAML + TRL's own
        assert run.name == f"score-{tiny_model_dir.name}-arithmetic"
        assert set(run.tags) == {"score", tiny_model_dir.name, "arithmetic", "selfcorrect"}
        config = dict(run.config)
        assert config["method"] == "score" and config["dataset_name"] == "bundled:arithmetic"
        assert config["model_name_or_path"] == str(tiny_model_dir) and config["selfcorrect_eval_steps"] == 1
        assert config["recipe"]["learning_rate"] == 0.01 and config["learning_rate"] == 0.02  # YAML, then override
        assert "--learning_rate 0.02" in config["command_line"] and config["recipe_file"] == str(recipe)
        assert config["max_attempt_length"] == 8 and config["num_generations"] == 4  # TRL's config (the callback)
    finally:
        wandb.finish()
        wandb.teardown()  # the next run in this process reads WANDB_DIR again
    # the evaluation every step (selfcorrect_eval_steps: 1) is logged with the step and saved with its plot
    logged = trainer.state.log_history[0]
    for key in ("acc_t1", "acc_t2", "delta", "delta_i2c", "delta_c2i", "num_problems"):
        assert f"selfcorrect/eval/{key}" in logged, sorted(logged)
    assert logged["selfcorrect/eval/num_problems"] == 4 and logged["step"] == 1
    assert (tmp_path / "out" / "eval" / "step_1.png").is_file()
    # before / after: one table with a row each, and one plot, next to each evaluation's own files
    table = (tmp_path / "out" / "eval" / "before_after.md").read_text().splitlines()
    rows = [r.split("|")[1].strip() for r in table[2:] if r.startswith("|")]
    assert table[0].startswith("| model | acc@t1 | acc@t2 |") and rows == ["before (n=4)", "after (n=4)"]
    # under it, each statistic's change with its paired interval over the same 4 problems
    assert table[-1].startswith("change, after − before (95 % paired bootstrap over the 4 problems")
    assert "acc@1 " in table[-1] and "succ@2 " in table[-1] and "succ@2 − acc@1 " in table[-1]
    for name in ("before", "after", "before_after"):
        assert (tmp_path / "out" / "eval" / f"{name}.png").is_file()
    runs = list((tmp_path / "wandb").glob("offline-run-*"))
    assert len(runs) == 1
    summary_files = list(runs[0].rglob("wandb-summary.json"))
    if summary_files:  # written when the run finishes
        summary = json.loads(summary_files[0].read_text())
        assert "train/selfcorrect/acc_t1" in summary and "train/selfcorrect/delta_i2c" in summary
    log = b"".join(p.read_bytes() for p in runs[0].rglob("*.wandb"))
    assert b"selfcorrect/acc_t2" in log and b"selfcorrect/attempts_mean" in log
    assert b"train/selfcorrect/eval/delta_i2c" in log and run.name.encode() in log and b"recipe_file" in log
    assert b"selfcorrect/eval/before/acc_t1" in log and b"selfcorrect/eval/after/delta_c2i" in log
    # the completions table, one column per attempt, feedback, reward and advantage: in W&B and as parquet
    tables = list(runs[0].rglob("*.table.json"))
    assert tables
    columns = json.loads(tables[0].read_text())["columns"]
    expected = {"attempt_1", "attempt_2", "feedback_1", "reward_1", "reward_2", "advantage_1", "advantage_2"}
    assert expected <= set(columns), columns
    frame = pd.read_parquet(tmp_path / "out" / "completions" / "completions_00001.parquet")
    assert expected <= set(frame.columns) and len(frame) == 4
    assert all("There might be an error" in text for text in frame["feedback_1"])


def test_online_mode_without_credentials_falls_back_to_offline(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("WANDB_MODE", "online")
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "netrc"))  # no credentials file
    monkeypatch.setenv("HOME", str(tmp_path))
    with caplog.at_level(logging.WARNING):
        assert tracking.ensure_wandb_mode() == "offline"
    assert "not logged in to W&B" in caplog.text and "wandb sync" in caplog.text
    assert tracking.os.environ["WANDB_MODE"] == "offline"

    # credentials but no route to the host: offline too, with the reason
    monkeypatch.setenv("WANDB_MODE", "online")
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    monkeypatch.setattr(tracking, "host_resolves", lambda host, timeout=3.0: False)
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        assert tracking.ensure_wandb_mode() == "offline"
    assert "cannot be reached" in caplog.text
    monkeypatch.setenv("WANDB_MODE", "disabled")
    assert tracking.ensure_wandb_mode() == "disabled"  # an explicit mode is respected


def test_run_name_respects_the_recipe(tmp_path, tiny_model_dir):
    from selfcorrect.configs import parse_recipe

    recipe = write_recipe(tmp_path, tiny_model_dir, method="nsr", dataset_name=str(tmp_path / "gsm8k.jsonl"))
    (tmp_path / "gsm8k.jsonl").write_text('{"problem": "1+1?", "solution": "2"}\n')
    model_args, data_args, script_args, training_args = parse_recipe(["--config", str(recipe)])
    name, tags = tracking.run_name_and_tags(model_args, data_args, script_args, training_args)
    assert name == f"nsr-{tiny_model_dir.name}-gsm8k" and tags == ["nsr", tiny_model_dir.name, "gsm8k", "selfcorrect"]
    _, _, script_args, training_args = parse_recipe(["--config", str(recipe), "--run_name", "my-run"])
    assert tracking.run_name_and_tags(model_args, data_args, script_args, training_args)[0] == "my-run"


def test_selfcorrect_eval_logs_its_table_to_a_wandb_run(tmp_path, tiny_model_dir, monkeypatch):
    from selfcorrect.evaluate import main as eval_main

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    monkeypatch.setenv("WANDB_SILENT", "true")
    recipe = write_recipe(tmp_path, tiny_model_dir, report_to="wandb", eval_max_new_tokens=4)
    wandb.teardown()
    result = eval_main(["--config", str(recipe)])
    assert wandb.run is None  # the eval run is finished
    runs = list((tmp_path / "wandb").glob("offline-run-*"))
    assert len(runs) == 1
    log = b"".join(p.read_bytes() for p in runs[0].rglob("*.wandb"))
    assert f"eval-grpo-{tiny_model_dir.name}-arithmetic".encode() in log
    for key in ("acc_t1", "delta_i2c", "delta_c2i"):
        assert f"selfcorrect/eval/{key}".encode() in log
    assert list(runs[0].rglob("*.png")) and list(runs[0].rglob("*.table.json"))  # the plot and the table
    assert result["metrics"]["num_problems"] == 4
