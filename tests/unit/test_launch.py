"""launch/: the launcher maps names to files and keeps the global batch; every config and script is well formed."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import yaml

from selfcorrect.configs import RecipeError
from selfcorrect.launch_utils import gradient_accumulation_for
from tests.helpers import ROOT


def test_gradient_accumulation_keeps_the_global_batch():
    # 512 completions per step: 8 GPUs x 16 x 4 == 16 GPUs x 16 x 2 == 32 GPUs x 16 x 1
    assert [gradient_accumulation_for(512, 16, n) for n in (8, 16, 32)] == [4, 2, 1]
    with pytest.raises(RecipeError, match="cannot be split over 64 processes"):
        gradient_accumulation_for(512, 16, 64)
    with pytest.raises(RecipeError, match="must be positive"):
        gradient_accumulation_for(512, 0, 8)


def _train_sh(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHON": sys.executable}
    return subprocess.run(
        ["bash", str(ROOT / "launch" / "train.sh"), *args], cwd=ROOT, env=env, capture_output=True, text=True
    )


def test_launcher_maps_names_to_files_and_sets_accumulation():
    result = _train_sh(
        "--recipe", "qwen2.5-math-1.5b/score_stage2", "--accelerate", "zero3", "--num_processes", "16",
        "--global_batch", "512", "--dry_run", "--", "--max_steps", "3",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    command = result.stdout.split()
    assert command[command.index("--config_file") + 1] == str(ROOT / "launch" / "accelerate" / "zero3.yaml")
    assert command[command.index("--config") + 1] == str(ROOT / "recipes" / "qwen2.5-math-1.5b" / "score_stage2.yaml")
    assert command[command.index("--num_processes") + 1] == "16"
    assert command[-4:] == ["--max_steps", "3", "--gradient_accumulation_steps", "2"]  # 512 / (16 per GPU x 16)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--recipe", "no/such"], "no recipe 'no/such'"),
        (["--recipe", "demo/score", "--accelerate", "zero9"], "no accelerate config 'zero9'"),
        (["--recipe", "demo/score", "--num_processes", "3", "--global_batch", "8"], "cannot be split over 3"),
        (["--accelerate", "zero2"], "--recipe is required"),
    ],
)
def test_launcher_rejects_bad_names_and_batches(args, message):
    result = _train_sh(*args, "--dry_run")
    assert result.returncode == 2 and message in result.stderr


@pytest.mark.parametrize("path", sorted((ROOT / "launch").rglob("*.yaml")), ids=lambda p: p.name)
def test_accelerate_configs_are_valid(path):
    config = yaml.safe_load(path.read_text())
    assert config["distributed_type"] in ("NO", "MULTI_GPU", "DEEPSPEED")
    assert config["num_processes"] >= 1
    if config["distributed_type"] == "DEEPSPEED":
        assert config["deepspeed_config"]["zero_stage"] in (2, 3)
    if path.parent.name == "accelerate":  # user configs start with the command that uses them
        assert path.read_text().startswith(f"# accelerate launch --config_file launch/accelerate/{path.name}")


@pytest.mark.parametrize("path", sorted((ROOT / "launch").rglob("*.s*")), ids=lambda p: p.name)
def test_shell_scripts_parse(path):
    assert subprocess.run(["bash", "-n", str(path)], capture_output=True).returncode == 0


def test_launch_precision_must_match_the_recipe():
    from types import SimpleNamespace

    from selfcorrect.launch_utils import check_launch_matches_recipe

    fp32, bf16 = SimpleNamespace(bf16=False, fp16=False), SimpleNamespace(bf16=True, fp16=False)
    check_launch_matches_recipe(bf16, {})  # not under accelerate launch: the recipe decides
    check_launch_matches_recipe(bf16, {"ACCELERATE_MIXED_PRECISION": "bf16"})
    check_launch_matches_recipe(fp32, {"ACCELERATE_MIXED_PRECISION": "no"})
    with pytest.raises(RecipeError, match=r"says `mixed_precision: bf16` but the recipe says `bf16: False`"):
        check_launch_matches_recipe(fp32, {"ACCELERATE_MIXED_PRECISION": "bf16"})
    with pytest.raises(RecipeError, match=r"`mixed_precision: no` but the recipe says `bf16: True`"):
        check_launch_matches_recipe(bf16, {"ACCELERATE_MIXED_PRECISION": "no"})


def test_a_command_that_succeeds_ends_its_process_group_and_one_that_fails_keeps_it(tmp_path):
    # A rank exiting with gloo's process group alive aborted (SIGABRT) in 8 of 30 launches on this machine.
    import torch.distributed as dist

    from selfcorrect.cli import run_reporting_errors

    def init(name: str):  # a fresh store file per group
        dist.init_process_group("gloo", store=dist.FileStore(str(tmp_path / name), 1), rank=0, world_size=1)

    def bad_recipe(argv):
        raise RecipeError("`learning_rate`: expected a number")

    init("failed_run")
    try:
        assert run_reporting_errors(bad_recipe, []) == 2
        assert dist.is_initialized()  # a failed rank may leave others in a collective: no teardown there
    finally:
        dist.destroy_process_group()
    init("clean_run")
    assert run_reporting_errors(lambda argv: None, []) == 0
    assert not dist.is_initialized()
