"""The GPU tier: every trainer 2 steps on a randomly initialised ~0.4B Qwen2 in bf16 with SDPA attention, gradient
checkpointing and LoRA, then ZeRO-2 on one GPU under `accelerate launch`.

    bash launch/gpu_check.sh run                                   # on the GPU machine: this tier, then the bench
    pytest -q tests/gpu -m gpu                                     # needs CUDA: every test skips without it
    SELFCORRECT_GPU_CHECK_CPU=1 pytest -q tests/gpu -m gpu         # the same code paths on CPU, on a tiny Qwen2

The model is the architecture `launch/gpu_check.py prepare` exports (`$SELFCORRECT_GPU_CHECK_MODEL`, default
`.gpu-check/model`: Qwen2.5-0.5B's shape over the embedded tokenizer, no weights), given random weights on the GPU.
`SELFCORRECT_GPU_CHECK_CPU=1` is for checking this file where there is no GPU: a 2-layer, 64-wide Qwen2 of the same
tokenizer, float32 weights, the same recipes (bf16 autocast only if this CPU supports it); the ZeRO-2 test still
needs CUDA. Each trainer test appends its seconds, peak GPU memory and losses to `$SELFCORRECT_GPU_CHECK_METRICS`
(JSON lines) for the results file.

Rewards and judges: a random model writes no right answer, so a verdict-only credit would see no signal and no
parameter would move. The tests use the CPU tier's scripted helpers (distinct-character reward, parity judge, scripted
RISE rating): the trainers' GPU code paths run unchanged, and every step has gradient.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from tests.helpers import (
    ROOT,
    SCRIPTS,
    build_trainer,
    dump_recipe,
    parity_judge,
    scripted_rating,
    write_jsonl,
    write_recipe,
)

ON_CPU = os.environ.get("SELFCORRECT_GPU_CHECK_CPU") == "1"
CUDA = torch.cuda.is_available()
pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not (CUDA or ON_CPU), reason="needs a CUDA device (SELFCORRECT_GPU_CHECK_CPU=1: tiny, on CPU)"),
]
TOKENS = 8 if ON_CPU and not CUDA else 32  # per attempt, critique and verification: the tier fits its ~4 minutes
LORA = dict(
    use_peft=True,
    lora_r=16,
    lora_alpha=32,
    lora_target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
)


def _cpu_bf16() -> bool:
    try:
        return "avx512_bf16" in Path("/proc/cpuinfo").read_text() or "amx_bf16" in Path("/proc/cpuinfo").read_text()
    except OSError:
        return False


BF16 = CUDA or _cpu_bf16()
GPU_TRAINING = dict(
    use_cpu=not CUDA,
    bf16=BF16,
    dtype="bfloat16" if CUDA else "float32",  # weights: bf16 on the GPU (fp32 LoRA adapters), fp32 on the CPU check
    attn_implementation="sdpa",
    gradient_checkpointing=True,
    learning_rate=1e-4,
    per_device_train_batch_size=8,
    num_generations=4,
    max_completion_length=TOKENS,
    arithmetic_train_size=32,
    reward_funcs=["tests.helpers:varied_reward"],
)


def _load_gpu_check():
    import importlib.util

    spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "launch" / "gpu_check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """Random weights of the exported architecture (on the GPU), saved with its tokenizer; CPU check: a tiny Qwen2."""
    from transformers import AutoConfig, AutoModelForCausalLM

    from selfcorrect.models import ARCHITECTURE_FILES, load_tokenizer

    target = tmp_path_factory.mktemp("random-qwen2")
    torch.manual_seed(0)
    if ON_CPU and not CUDA:
        gpu_check = _load_gpu_check()
        tokenizer = load_tokenizer("embedded")
        config = gpu_check.qwen2_config(
            tokenizer, hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128
        )
        AutoModelForCausalLM.from_config(config).save_pretrained(target)
        tokenizer.save_pretrained(target)
        return target
    source = Path(os.environ.get("SELFCORRECT_GPU_CHECK_MODEL", ROOT / ".gpu-check" / "model"))
    if not (source / "config.json").is_file():
        pytest.fail(f"no model config in {source}: run `make gpu-check-prepare` where the check is prepared")
    with torch.device("cuda"):  # initialising ~0.4B parameters on the GPU takes a second, on a CPU far longer
        model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(source), dtype=torch.bfloat16)
    model.save_pretrained(target)
    del model
    torch.cuda.empty_cache()
    for name in ARCHITECTURE_FILES:
        if (source / name).is_file() and not (target / name).is_file():
            shutil.copy2(source / name, target / name)
    return target


@pytest.fixture(autouse=True)
def _release_gpu_memory():
    """Each trainer's model, optimizer and critic go before the next test starts (and its peak is its own)."""
    yield
    import gc

    gc.collect()
    if CUDA:
        torch.cuda.empty_cache()


def _append_metrics(**row) -> None:
    """One row (name, steps, seconds, peak_mib, losses) for the results file, if a metrics file is named."""
    path = os.environ.get("SELFCORRECT_GPU_CHECK_METRICS")
    if path:
        with open(path, "a") as f:
            f.write(json.dumps(row) + "\n")


def _record(name: str, trainer, seconds: float) -> list[float]:
    """The trainer's losses; its time, steps and peak memory go to the metrics file."""
    losses = [log["loss"] for log in trainer.state.log_history if "loss" in log]
    peak = torch.cuda.max_memory_allocated() / 2**20 if CUDA else None
    _append_metrics(name=name, steps=trainer.state.global_step, seconds=seconds, peak_mib=peak, losses=losses)
    return losses


def _trainable(model) -> dict[str, torch.Tensor]:
    return {n: p.detach().float().cpu().clone() for n, p in model.named_parameters() if p.requires_grad}


def _train_and_check(name: str, trainer):
    """Two steps: finite losses, LoRA adapters only are trained and they moved, everything ran on the GPU."""
    if CUDA:
        torch.cuda.reset_peak_memory_stats()
        assert trainer.model.device.type == "cuda"
    assert hasattr(trainer.model, "peft_config"), "the recipe's LoRA was not applied"
    before = _trainable(trainer.model)
    assert before and all("lora_" in n for n in before), sorted(before)[:5]
    start = time.perf_counter()
    trainer.train()
    if CUDA:
        torch.cuda.synchronize()
    losses = _record(name, trainer, time.perf_counter() - start)
    assert trainer.state.global_step == 2
    assert len(losses) == 2 and all(math.isfinite(x) for x in losses), losses
    after = _trainable(trainer.model)
    moved = [n for n in before if not torch.equal(before[n], after[n])]
    assert moved, "no LoRA weight changed in two steps"


def _eos_biased(trainer):
    # a random model almost never ends a turn, and a truncated attempt is always wrong: bias it towards EOS
    trainer.generation_config.sequence_bias = [[[trainer.processing_class.eos_token_id], 9.0]]
    return trainer


def _scripted(cls):
    """`cls` judging attempts by the parity of their distinct characters (some right, some wrong)."""
    return type(f"Scripted{cls.__name__}", (cls,), {"judge": lambda self, text, row: parity_judge(text, row)})


@pytest.mark.parametrize("method", ["grpo", "score", "ufo", "nsr", "critique_grpo", "rise"])
def test_online_trainer_two_steps(tmp_path, model_dir, monkeypatch, method):
    from selfcorrect import verification
    from selfcorrect.trainers import get_method

    fields: dict = dict(GPU_TRAINING, **LORA)
    multi = dict(max_attempt_length=TOKENS, max_completion_length=2 * TOKENS + 128)
    if method == "score":
        fields.update(score_stage=2, **multi)
    elif method == "ufo":
        fields.update(max_attempts=2, reward_funcs=["accuracy"], **multi)  # UFO's credit is the verdict
    elif method == "nsr":
        fields.update(max_attempt_length=TOKENS, reward_funcs=["accuracy"])
    elif method == "critique_grpo":  # a separate local critic model (the same random one): no server
        fields.update(
            max_attempt_length=TOKENS,
            critic="model",
            critic_model=str(model_dir),
            critic_max_tokens=TOKENS,
            critic_retries=0,
            refine_groups="all",
        )
    elif method == "rise":
        monkeypatch.setattr(verification, "parse_rating", scripted_rating)
        fields.update(
            max_attempt_length=TOKENS,
            verification_solutions=4,
            verification_generations=2,
            verification_max_length=TOKENS,
        )
    recipe = write_recipe(tmp_path, model_dir, method=method, **fields)
    cls = get_method(method).trainer
    trainer = build_trainer(recipe, _scripted(cls) if method in ("ufo", "nsr", "critique_grpo") else None)
    if method in ("ufo", "nsr"):
        _eos_biased(trainer)
    _train_and_check(method, trainer)


def test_redi_two_steps(tmp_path, model_dir):
    """REDI, offline: preference pairs of traces, no generation, no reference model."""
    system = [{"role": "system", "content": "Answer in \\boxed{}."}]
    rows = [
        {
            "prompt": [*system, {"role": "user", "content": f"What is {a} + {b}?"}],
            "chosen": [{"role": "assistant", "content": f"{a} + {b} = {a + b}. So \\boxed{{{a + b}}}."}],
            "rejected": [{"role": "assistant", "content": f"I think \\boxed{{{a + b + 1}}}."}],
            "solution": str(a + b),
        }
        for a, b in [(3, 4), (10, 6), (7, 8), (12, 9)]
    ]
    data = write_jsonl(tmp_path / "pairs.jsonl", rows)
    keep = ("use_cpu", "bf16", "dtype", "attn_implementation", "gradient_checkpointing", "learning_rate")
    values = {k: GPU_TRAINING[k] for k in keep} | LORA
    values.update(
        method="redi",
        model_name_or_path=str(model_dir),
        dataset_name=str(data),
        output_dir=str(tmp_path / "out"),
        seed=0,
        max_steps=2,
        lr_scheduler_type="constant",
        per_device_train_batch_size=2,
        max_length=256,
        logging_steps=1,
        save_strategy="no",
        report_to="none",
    )
    trainer = build_trainer(dump_recipe(tmp_path, values))
    _train_and_check("redi", trainer)


def test_zero2_one_gpu_two_steps(tmp_path, model_dir):
    """SCoRe, full fine-tuning, under `accelerate launch` with DeepSpeed ZeRO-2 on one GPU (bf16, SDPA, gradient
    checkpointing), as a user launches it (launch/accelerate/zero2.yaml, --num_processes 1), through the CPU tier's
    launched-training script, which records the ZeRO stage, the steps and the losses the rank saw. The CPU check
    launches launch/cpu/zero2.yaml (gloo, fp32) on one process instead."""
    pytest.importorskip("deepspeed", reason="DeepSpeed did not install (see the check's install log)")
    fields = {k: v for k, v in GPU_TRAINING.items() if k != "use_cpu" or not CUDA}
    fields.update(method="score", score_stage=2, max_attempt_length=TOKENS, max_completion_length=2 * TOKENS + 128)
    if not CUDA:
        fields["bf16"] = False  # launch/cpu/zero2.yaml: mixed_precision 'no'
    recipe = write_recipe(tmp_path, model_dir, **fields)
    config = ROOT / "launch" / ("accelerate" if CUDA else "cpu") / "zero2.yaml"
    command = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--config_file",
        str(config),
        "--num_processes",
        "1",
    ]
    command += [str(SCRIPTS / "train_under_launch.py"), str(recipe), str(tmp_path / "ranks")]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
    start = time.perf_counter()
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    seconds = time.perf_counter() - start
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    rank = json.loads((tmp_path / "ranks" / "rank0.json").read_text())
    assert (rank["world"], rank["zero_stage"], rank["steps"]) == (1, 2, 2)
    assert len(rank["losses"]) == 2 and all(math.isfinite(x) for x in rank["losses"]), rank["losses"]
    assert (tmp_path / "out" / "model.safetensors").is_file()
    _append_metrics(name="score, ZeRO-2 (launched)", steps=2, seconds=seconds, peak_mib=None, losses=rank["losses"])
