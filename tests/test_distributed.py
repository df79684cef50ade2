"""Real 2-process runs on CPU (gloo) under `accelerate launch`: groups that span ranks are scored on gathered rewards."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import write_recipe

ROOT = Path(__file__).parents[1]


def _launch(num_processes: int, script: Path, *args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", str(num_processes)]
    command += ["--multi_gpu"] if num_processes > 1 else []
    command += ["--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", str(script), *args]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "ACCELERATE_USE_CPU": "true"}
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, result.stderr[-4000:]
    return result


@pytest.mark.dist
def test_group_spanning_two_ranks_matches_one_rank(tmp_path, tiny_model_dir):
    script = ROOT / "tests" / "scripts" / "episode_parity.py"
    results = {}
    for world in (1, 2):
        recipe = write_recipe(
            tmp_path / f"w{world}",
            tiny_model_dir,
            method="score",
            score_stage=2,
            reward_funcs=["accuracy"],
            num_generations=8,
            per_device_train_batch_size=8 // world,
            max_attempt_length=16,
            max_completion_length=128,
        )
        _launch(world, script, str(recipe), str(tmp_path / f"out{world}"))
        ranks = [json.loads((tmp_path / f"out{world}" / f"rank{r}.json").read_text()) for r in range(world)]
        assert all(r["world"] == world for r in ranks)  # really ran with that many processes
        results[world] = [row for r in ranks for row in r["advantages"]]
        answers = [row for r in ranks for row in r["answers"]]
    assert len(results[2]) == 8
    assert any(a != 0 for row in results[1] for a in row)  # the batch has signal
    flat = {world: [a for row in rows for a in row] for world, rows in results.items()}
    assert flat[2] == pytest.approx(flat[1], abs=1e-6)
    assert len({a[0] for a in answers}) > 1
