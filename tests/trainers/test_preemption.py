"""SIGTERM mid-run: the step in flight finishes, a resumable checkpoint is saved, and a rerun resumes from it."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time

from selfcorrect.plots import read_jsonl_records
from selfcorrect.train import main as train_main
from tests.helpers import ROOT, write_recipe


def test_sigterm_saves_a_checkpoint_and_the_rerun_resumes(tmp_path, tiny_model_dir):
    recipe = write_recipe(
        tmp_path,
        tiny_model_dir,
        method="score",
        score_stage=1,
        stage1_steps=2,
        max_attempt_length=8,
        max_completion_length=96,
        max_steps=200,
    )
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen(
        [sys.executable, "-m", "selfcorrect.train", "--config", str(recipe)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline, steps_logged = time.time() + 240, 0
    for line in process.stdout:  # wait until 3 steps are logged (the console's compact line), then preempt
        if re.search(r"step \d+/\d+ \|.* \| loss ", line):
            steps_logged += 1
            if steps_logged == 3:
                process.send_signal(signal.SIGTERM)
                break
        assert time.time() < deadline, "training did not log 3 steps in time"
    output = process.stdout.read()
    assert process.wait(timeout=240) == 0, output[-3000:]
    checkpoints = sorted((tmp_path / "out").glob("checkpoint-*"))
    assert len(checkpoints) == 1, output[-3000:]
    state = json.loads((checkpoints[0] / "trainer_state.json").read_text())
    stopped = state["global_step"]
    assert 3 <= stopped < 200
    assert any(p.name.startswith(("optimizer", "scheduler", "rng_state")) for p in checkpoints[0].iterdir())

    # the same command resumes: only the remaining steps run, and the SCoRe stage (a function of the step) is II
    trainer = train_main(["--config", str(recipe), "--max_steps", str(stopped + 2)])
    assert trainer.state.global_step == stopped + 2
    new_logs = [log for log in trainer.state.log_history if "loss" in log and log["step"] > stopped]
    assert [log["step"] for log in new_logs] == [stopped + 1, stopped + 2]
    assert all(log["selfcorrect/score_stage"] == 2.0 for log in new_logs)
    # log_history.jsonl has every step once: the interrupted run's and the resumed run's
    jsonl = read_jsonl_records(tmp_path / "out" / "log_history.jsonl")
    assert [log["step"] for log in jsonl if "loss" in log] == list(range(1, stopped + 3))
