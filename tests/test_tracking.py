"""Weights & Biases (offline): the self-correction metrics and the per-attempt completions table reach the run."""

from __future__ import annotations

import json

import pandas as pd

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
    )
    train_main(["--config", str(recipe)])
    runs = list((tmp_path / "wandb").glob("offline-run-*"))
    assert len(runs) == 1
    summary_files = list(runs[0].rglob("wandb-summary.json"))
    if summary_files:  # written when the run finishes
        summary = json.loads(summary_files[0].read_text())
        assert "train/selfcorrect/acc_t1" in summary and "train/selfcorrect/delta_i2c" in summary
    log = b"".join(p.read_bytes() for p in runs[0].rglob("*.wandb"))
    assert b"selfcorrect/acc_t2" in log and b"selfcorrect/attempts_mean" in log
    # the completions table, one column per attempt, feedback, reward and advantage: in W&B and as parquet
    tables = list(runs[0].rglob("*.table.json"))
    assert tables
    columns = json.loads(tables[0].read_text())["columns"]
    expected = {"attempt_1", "attempt_2", "feedback_1", "reward_1", "reward_2", "advantage_1", "advantage_2"}
    assert expected <= set(columns), columns
    frame = pd.read_parquet(tmp_path / "out" / "completions" / "completions_00001.parquet")
    assert expected <= set(frame.columns) and len(frame) == 4
    assert all("There might be an error" in text for text in frame["feedback_1"])
