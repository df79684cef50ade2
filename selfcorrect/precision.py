"""Mixed precision: the recipe's `precision`, whether this machine can compute in bf16, and autocast for generation.

    precision: auto   # bf16 compute where the machine supports it (CUDA with bf16, a CPU with AVX512-BF16 / AMX), else fp32
    precision: bf16   # bf16 compute; fails at start, naming the field, where the machine cannot
    precision: fp32   # no mixed precision
    precision: null   # (default) TRL's own `bf16` / `fp16` fields decide; TRL's default is `bf16: true`

`precision` is a script field (`ScriptArgs`) rather than a third value of TRL's `bf16`, which `TrlParser` parses as a
bool: `selfcorrect.configs.parse_recipe` resolves it before TRL sees the recipe and writes TRL's `bf16` / `fp16` from it,
so TRL, transformers and accelerate run exactly as if the recipe had said `bf16: true` (or `false`). A recipe that
sets both `precision` and a `bf16` / `fp16` that disagrees with it is refused, naming both fields.

What `bf16: true` means on CPU (accelerate's `mixed_precision: bf16`): `torch.autocast('cpu', torch.bfloat16)` around
every model forward. Weights, gradients and optimizer state stay fp32 (the master copy); matmuls and attention run in
bf16 on bf16 copies of the weights that autocast makes inside each autocast region and frees when the region ends.
The loss is computed from fp32 log-probs (accelerate converts the forward's outputs to fp32; TRL's log-softmax runs
in fp32 under autocast). The model's `dtype` must stay float32 for this: bf16 weights are bf16 master weights.

Generation: accelerate puts each forward call in its own autocast region, so during `generate` every token's forward
casts every weight to bf16 again (the cast cache empties when a region ends): measured on this CPU (SmolLM2-135M, 8 rows
x 64 tokens, 2 threads) that is no faster than fp32 (11.2 s vs 10.9 s). `autocast_generation` opens one region around
the whole `generate` call: each weight is cast once per call, and the same call took 7.8 s (a bf16 copy of the model,
made for the call, 7.7 s; a copy kept between steps would have to follow every optimizer step, and saves only the one
cast). Weights change only between calls, so the region never serves a stale copy.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

PRECISIONS = ("auto", "bf16", "fp32")
# CPU flags with native bf16 arithmetic (oneDNN uses them for bf16 matmuls); without them bf16 is emulated, ~10x slower.
CPU_BF16_FLAGS = ("avx512_bf16", "amx_bf16")  # x86; ARM reports `bf16` among its features


def _cpuinfo() -> tuple[str, set[str]]:
    """(the CPU's model name, its feature flags) from /proc/cpuinfo; ('', set()) where there is none."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "", set()
    name, flags = "", set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip().lower()
        if key in ("model name", "cpu model") and not name:
            name = value.strip()
        elif key in ("flags", "features"):
            flags.update(value.split())
    return name, flags


def cpu_bf16_missing() -> str | None:
    """None when this CPU computes bf16 natively; otherwise what it lacks, in words (for an error message).

    torch's own view first (`torch.cpu.get_capabilities()`, what oneDNN dispatches on), /proc/cpuinfo as a fallback."""
    import torch

    capabilities = getattr(torch.cpu, "get_capabilities", None)
    if capabilities is not None:
        found = capabilities()
        if any(found.get(flag) for flag in CPU_BF16_FLAGS):
            return None
    name, flags = _cpuinfo()
    if any(flag in flags for flag in CPU_BF16_FLAGS) or (
        os.uname().machine in ("aarch64", "arm64") and "bf16" in flags
    ):
        return None
    return f"this CPU ({name or 'model unknown'}) has none of the bf16 instructions ({', '.join(CPU_BF16_FLAGS)})"


def resolve_precision(precision: str | None, bf16: bool, fp16: bool, on_cpu: bool) -> str:
    """'bf16', 'fp16' or 'fp32' for a run on CPU (`on_cpu`) or CUDA, failing where the machine cannot.

    `precision` is the recipe's field (None: TRL's `bf16` / `fp16` decide, as already resolved by TRL's defaults)."""
    if precision is None:
        field, chosen = ("bf16", "bf16") if bf16 else ("fp16", "fp16") if fp16 else (None, "fp32")
    elif precision not in PRECISIONS:
        raise ValueError(f"`precision` must be one of {', '.join(PRECISIONS)} (or null); got {precision!r}.")
    elif precision == "auto":
        return "bf16" if machine_supports_bf16(on_cpu) else "fp32"
    else:
        field, chosen = ("precision", precision) if precision == "bf16" else (None, "fp32")
    if chosen == "bf16" and on_cpu:
        missing = cpu_bf16_missing()
        if missing:
            setting = "`precision: bf16`" if field == "precision" else "`bf16: true` (TRL's default when not set)"
            raise ValueError(
                f"{setting} asks for bf16 compute, but {missing}: bf16 would be emulated, ~10x slower than fp32. "
                "Use `precision: auto` (bf16 where supported, else fp32) or `precision: fp32`."
            )
    return chosen


def machine_supports_bf16(on_cpu: bool) -> bool:
    import torch

    if on_cpu:
        return cpu_bf16_missing() is None
    return torch.cuda.is_available() and torch.cuda.is_bf16_supported()


def autocast_context(precision: str | None, device_type: str = "cpu"):
    """`torch.autocast` in the run's compute dtype ('bf16' / 'fp16'), or a no-op context for 'fp32' / None.

    Used around whole generation calls outside a trainer (evaluation, trace sampling): one region per call, so each
    weight is cast once per call, not once per token."""
    import torch

    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision or "fp32")
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device_type, dtype=dtype)


class AutocastGeneration:
    """Trainer mixin: each call of TRL's `_generate_single_turn` (every sampled token of our trainers: attempts,
    critiques, refinements, verifications) runs in one autocast region of the trainer's mixed precision, instead of
    one region per token's forward (see the module docstring). No-op without mixed precision and under vLLM, which
    generates with its own weights."""

    def _generate_single_turn(self, *args, **kwargs):
        if getattr(self, "use_vllm", False) or not self.accelerator.native_amp:  # native_amp: accelerate's autocast
            return super()._generate_single_turn(*args, **kwargs)
        with self.accelerator.autocast():
            return super()._generate_single_turn(*args, **kwargs)
