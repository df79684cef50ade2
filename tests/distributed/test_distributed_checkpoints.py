"""2-process CPU runs (gloo) through the real entry point: the DDP config file, resume under ZeRO-2/3, LoRA under ZeRO-3."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from selfcorrect.plots import read_jsonl_records
from tests.helpers import SCRIPTS, launch, unchanged_parameters, write_jsonl, write_recipe

SCORE = dict(method="score", score_stage=1, stage1_steps=1, max_attempt_length=8, max_completion_length=96)


def _rank_records(folder: Path) -> list[dict]:
    return [json.loads((folder / f"rank{r}.json").read_text()) for r in range(2)]


@pytest.mark.dist
def test_ddp_config_file_starts_two_ranks(tmp_path, tiny_model_dir):
    recipe = write_recipe(tmp_path, tiny_model_dir, per_device_train_batch_size=2, num_generations=4, **SCORE)
    launch(SCRIPTS / "train_under_launch.py", str(recipe), str(tmp_path / "ranks"), config="ddp.yaml")
    ranks = _rank_records(tmp_path / "ranks")
    assert [r["world"] for r in ranks] == [2, 2] and [r["zero_stage"] for r in ranks] == [None, None]
    assert ranks[0]["losses"] == pytest.approx(ranks[1]["losses"])  # TRL logs the loss averaged over ranks
    assert ranks[0]["stages"] == [1.0, 2.0]


@pytest.mark.dist
@pytest.mark.parametrize("config", ["zero2.yaml", "zero3.yaml"])
def test_resume_under_deepspeed_continues_at_the_next_step(tmp_path, tiny_model_dir, config):
    """2 steps with a checkpoint per step, then the same command with max_steps 3 runs exactly one more step, in the
    SCoRe stage that step 3 belongs to, from the sharded optimizer state of checkpoint-2."""
    recipe = write_recipe(
        tmp_path,
        tiny_model_dir,
        per_device_train_batch_size=2,
        num_generations=4,
        save_strategy="steps",
        save_steps=1,
        **SCORE,
    )
    first = launch("-m", "selfcorrect.train", "--config", str(recipe), config=config)
    checkpoint = tmp_path / "out" / "checkpoint-2"
    assert (checkpoint / "global_step2").is_dir(), first[-3000:]  # DeepSpeed's sharded optimizer and model states
    assert len(list((checkpoint / "global_step2").glob("*optim_states.pt"))) == 2  # one shard per rank
    second = launch("-m", "selfcorrect.train", "--config", str(recipe), "--max_steps", "3", config=config)
    assert "resuming from" in second and "checkpoint-2" in second
    logged = re.findall(r"step \d+/\d+ \|.* \| loss ", second)  # the console's compact line per step
    assert len(logged) == 1, second[-3000:]  # one step ran: 3
    state = json.loads((tmp_path / "out" / "checkpoint-3" / "trainer_state.json").read_text())
    assert state["global_step"] == 3
    assert [log["step"] for log in state["log_history"] if "loss" in log] == [1, 2, 3]
    assert [log["selfcorrect/score_stage"] for log in state["log_history"] if "loss" in log] == [1.0, 2.0, 2.0]


@pytest.mark.dist
def test_lora_under_zero3_trains_the_adapter(tmp_path, tiny_model_dir):
    recipe = write_recipe(
        tmp_path,
        tiny_model_dir,
        per_device_train_batch_size=2,
        num_generations=4,
        use_peft=True,
        lora_r=4,
        lora_alpha=8,
        lora_target_modules=["q_proj", "v_proj"],
        **SCORE,
    )
    launch(SCRIPTS / "train_under_launch.py", str(recipe), str(tmp_path / "ranks"), config="zero3.yaml")
    ranks = _rank_records(tmp_path / "ranks")
    assert [r["world"] for r in ranks] == [2, 2] and [r["zero_stage"] for r in ranks] == [3, 3]
    assert all(r["steps"] == 2 and all(loss == loss for loss in r["losses"]) for r in ranks)
    adapter = load_file(str(tmp_path / "out" / "adapter_model.safetensors"))
    lora_b = [v for k, v in adapter.items() if "lora_B" in k]
    assert lora_b and all(v.numel() and not torch.equal(v, torch.zeros_like(v)) for v in lora_b)  # B starts at 0


@pytest.mark.dist
@pytest.mark.parametrize("config", ["ddp.yaml", "zero2.yaml", "zero3.yaml"])
def test_redi_under_two_ranks(tmp_path, tiny_model_dir, config):
    """REDI (offline pairs, no reference model) through the entry point: 4 pairs, 1 per rank per step, so an epoch is
    2 steps only if both ranks really took a pair each."""
    from tests.trainers.test_redi import PAIRS, _recipe

    pairs = write_jsonl(tmp_path / "pairs.jsonl", PAIRS * 2)
    recipe = _recipe(tmp_path, tiny_model_dir, dataset_name=str(pairs), per_device_train_batch_size=1)
    output = launch("-m", "selfcorrect.train", "--config", str(recipe), config=config)
    logs = read_jsonl_records(tmp_path / "out" / "log_history.jsonl")
    epochs = [log["epoch"] for log in logs if "loss" in log]
    assert epochs[:2] == [0.5, 1.0], output[-3000:]  # world size 2
    unchanged = unchanged_parameters(tiny_model_dir, tmp_path / "out")
    assert not unchanged, unchanged
