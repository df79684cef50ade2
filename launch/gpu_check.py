"""The GPU check's two halves: what travels (prepared here) and the one results file (written on the GPU machine).

    python launch/gpu_check.py prepare [--dir .gpu-check]    # here, with PyPI: wheels + model config, size check
    python launch/gpu_check.py wheels | report --junit J --bench B --out R   # there: what to install, the results
    make gpu-check-prepare; bash launch/gpu_check.sh run            # the usual way in

`prepare` fills one gitignored folder (`.gpu-check/`, named in the device tool's `carry`):
- `wheels/`: the packages the GPU machine lacks (TRL, math-verify and their small dependencies, DeepSpeed's source
  and its small dependencies), pinned to the versions tested together on the CPU. The machine already has torch,
  transformers, accelerate, peft, pyarrow, pandas, sympy, xxhash, ninja (see the device tool's KINDS.md), so those
  stay here. pyarrow cannot travel: its CPython 3.12 wheel is 52.5 MiB, over the limit with the rest (measured
  2026-12-04), so datasets runs on the machine's own pyarrow (its version goes into the results file).
- `model/`: a ~0.4B Qwen2-style config (Qwen2.5-0.5B's shape: 896 wide, 24 layers, 14 heads, 2 KV heads, MLP 4864)
  over the embedded SmolLM2 tokenizer (its vocabulary of 49152 replaces Qwen's 151936), with that tokenizer and its
  chat template. No weights: the check initialises them randomly on the GPU (throughput does not depend on them).
Then it adds up everything the device tool sends (tracked and untracked-not-ignored files, `shared/`, the carried
folder) against its 64 MiB limit and fails if it is over.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DIR = ".gpu-check"  # gitignored; pass it in `carry`
TRAVEL_LIMIT = 64 * 2**20  # the device tool's limit on what travels per call
GPU_PYTHON = "3.12"  # the GPU machine's python3 (KINDS.md)
# Versions tested together on the CPU (the project venv); --no-deps installs exactly these.
WHEELS = {
    "trl": "1.16.0",
    "datasets": "5.2.0",  # TRL imports it; its own needs (pyarrow, pandas, xxhash, fsspec) are on the machine
    "dill": "0.4.1",
    "multiprocess": "0.70.19",
    "math-verify": "0.9.0",
    "latex2sympy2_extended": "1.11.0",
    "antlr4-python3-runtime": "4.13.2",
    # DeepSpeed's own needs beyond the machine's einops, msgpack, ninja, psutil, py-cpuinfo
    "hjson": "3.1.0",
    "pydantic": "2.14.4",
    "pydantic-core": "2.50.5",
    "annotated-types": "0.8.0",
    "typing-inspection": "0.4.5",
    "typing-extensions": "4.16.0",  # pydantic 2.14 needs >= 4.16
}
# DeepSpeed ships as source only (no wheel on PyPI): it is built on the GPU machine without its CUDA ops
# (DS_BUILD_OPS=0, a few seconds); ZeRO-2 with the trainer's own torch AdamW needs none of them compiled.
SOURCES = {"deepspeed": "0.19.8"}
# The model: Qwen2.5-0.5B's shape over the embedded tokenizer.
QWEN2_SHAPE = dict(
    hidden_size=896,
    num_hidden_layers=24,
    num_attention_heads=14,
    num_key_value_heads=2,
    intermediate_size=4864,
    max_position_embeddings=4096,
    rope_theta=1_000_000.0,
    rms_norm_eps=1e-6,
    tie_word_embeddings=True,
)


def pip_download_commands(dest: Path, python: str = sys.executable) -> list[list[str]]:
    """The `pip download` commands that fetch every pinned package for the GPU machine (CPython 3.12, manylinux
    x86-64), without dependencies: binaries for the wheels, the source archive for DeepSpeed."""
    platforms = ["manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64"]
    binary = [python, "-m", "pip", "download", "-q", "--disable-pip-version-check", "--no-deps"]
    binary += ["--only-binary=:all:", "--python-version", GPU_PYTHON, "--implementation", "cp"]
    binary += [arg for p in platforms for arg in ("--platform", p)] + ["-d", str(dest)]
    source = [python, "-m", "pip", "download", "-q", "--disable-pip-version-check", "--no-deps", "--no-binary=:all:"]
    return [
        binary + [f"{name}=={version}" for name, version in WHEELS.items()],
        source + ["-d", str(dest)] + [f"{name}=={version}" for name, version in SOURCES.items()],
    ]


def normalized(name: str) -> str:
    return name.lower().replace("-", "_").replace(".", "_")


def missing_packages(folder: Path) -> list[str]:
    """Pinned packages with no archive of that version in `folder` (wheel or source: `name-version-...`)."""
    files = [normalized(p.name) for p in folder.iterdir()] if folder.is_dir() else []
    pins = {**WHEELS, **SOURCES}
    return [
        f"{name}=={version}"
        for name, version in pins.items()
        if not any(f.startswith(f"{normalized(name)}_{normalized(version)}") for f in files)
    ]


def wheels_to_install(folder: Path, installed: dict[str, str] | None = None) -> list[Path]:
    """The carried wheels that the machine needs: all but those of a package it already has at the same or a newer
    version (e.g. typing-extensions: installing ours over a newer one would downgrade what torch uses)."""
    from importlib.metadata import distributions

    from packaging.version import InvalidVersion, Version

    if installed is None:
        installed = {normalized(d.metadata["Name"] or ""): d.version for d in distributions()}
    chosen = []
    for wheel in sorted(folder.glob("*.whl")):
        name, version = wheel.name.split("-")[:2]
        have = installed.get(normalized(name))
        try:
            if have is not None and Version(have) >= Version(version):
                continue
        except InvalidVersion:
            pass
        chosen.append(wheel)
    return chosen


def qwen2_config(tokenizer, **overrides):
    """A Qwen2 config of Qwen2.5-0.5B's shape (or `overrides`), over `tokenizer`'s vocabulary and special ids."""
    from transformers import Qwen2Config

    shape = {**QWEN2_SHAPE, **overrides}
    rope_theta = shape.pop("rope_theta")
    return Qwen2Config(
        vocab_size=len(tokenizer),
        rope_parameters={"rope_type": "default", "rope_theta": rope_theta},
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        **shape,
    )


def export_model(target: Path, source: str = "embedded", **overrides) -> Path:
    """`target` = the Qwen2 config (+ its generation config) with `source`'s tokenizer and chat template, no weights."""
    from transformers import GenerationConfig

    from selfcorrect.models import load_tokenizer

    tokenizer = load_tokenizer(source)
    target.mkdir(parents=True, exist_ok=True)
    for stale in target.glob("*.safetensors"):  # never leave weights in what travels
        stale.unlink()
    config = qwen2_config(tokenizer, **overrides)
    config.save_pretrained(target)
    GenerationConfig.from_model_config(config).save_pretrained(target)
    tokenizer.save_pretrained(target)
    return target


def parameter_count(config) -> int:
    """Parameters of a Qwen2 model of `config` (tied embeddings counted once), without building it."""
    h, layers, inter, vocab = config.hidden_size, config.num_hidden_layers, config.intermediate_size, config.vocab_size
    head_dim = h // config.num_attention_heads
    kv = config.num_key_value_heads * head_dim
    attention = h * h + h + 2 * (h * kv + kv) + h * h  # q (bias), k and v (bias), o
    per_layer = attention + 3 * h * inter + 2 * h  # MLP, two RMSNorms
    lm_head = 0 if config.tie_word_embeddings else vocab * h
    return vocab * h + layers * per_layer + h + lm_head


def _files_under(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    return [p for p in path.rglob("*") if p.is_file() and not p.is_symlink()] if path.is_dir() else []


def travel_size(repo: Path, carry: list[str]) -> dict[str, int]:
    """Bytes the device tool sends, per part: the repository (tracked and untracked-not-ignored files, and `shared/`
    if the checkout has one) and each carried path (relative to the repository, as `carry` names it)."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=repo,
        capture_output=True,
        check=True,
    ).stdout.decode()
    seen: set[Path] = set()
    sizes: dict[str, int] = {}
    parts = [("repository", [repo / n for n in listed.split("\0") if n] + _files_under(repo / "shared"))]
    parts += [(c, _files_under(repo / c)) for c in carry]
    for name, files in parts:
        sizes[name] = 0
        for path in files:
            if path.is_file() and path.resolve() not in seen:
                seen.add(path.resolve())
                sizes[name] += path.stat().st_size
    sizes["total"] = sum(sizes.values())
    return sizes


def check_travel(sizes: dict[str, int], limit: int = TRAVEL_LIMIT) -> str:
    """One line per part, in MiB; raises SystemExit if the total is over the limit."""
    lines = [f"{name:<12} {size / 2**20:7.2f} MiB" for name, size in sizes.items()]
    report = "\n".join(lines) + f"\nlimit        {limit / 2**20:7.2f} MiB"
    if sizes["total"] > limit:
        raise SystemExit(f"{report}\nwhat travels is over the device tool's limit: carry less")
    return report


def prepare(folder: Path, download: bool = True) -> dict[str, int]:
    """Fill `folder` (wheels/ and model/), then check what travels. `download=False` skips pip (tests)."""
    wheels = folder / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    if download:
        for command in pip_download_commands(wheels):
            subprocess.run(command, check=True)
    missing = missing_packages(wheels)
    if download and missing:
        raise SystemExit(f"prepare: not downloaded: {', '.join(missing)}")
    model = export_model(folder / "model")
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(model)
    print(f"model: {model} ({config.model_type}, {parameter_count(config) / 1e6:.0f}M parameters, no weights)")
    carry = folder.resolve().relative_to(ROOT).as_posix() if folder.resolve().is_relative_to(ROOT) else str(folder)
    sizes = travel_size(ROOT, [carry])
    print(check_travel(sizes))
    return sizes


# ---------------------------------------------------------------------------------------------------------------------
# On the GPU machine: the results file.


def junit_outcomes(path: Path) -> list[tuple[str, str, float, str]]:
    """(test, outcome, seconds, message) for each test case of a pytest --junitxml file."""
    if not path.is_file():
        return []
    rows = []
    for case in ET.parse(path).getroot().iter("testcase"):
        outcome, message = "passed", ""
        for tag in ("failure", "error", "skipped"):
            child = case.find(tag)
            if child is not None:
                outcome = {"failure": "failed", "error": "error", "skipped": "skipped"}[tag]
                message = (child.get("message") or "").splitlines()[0][:160] if child.get("message") else ""
                break
        rows.append((case.get("name", "?"), outcome, float(case.get("time", 0) or 0), message))
    return rows


def package_versions(names=("torch", "transformers", "accelerate", "peft", "trl", "datasets", "pyarrow", "deepspeed")):
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for name in names:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "not installed"
    return found


def gpu_description() -> str:
    try:
        import torch

        if torch.cuda.is_available():
            props = torch.cuda.get_device_properties(0)
            return f"{props.name} ({props.total_memory / 2**30:.0f} GiB), CUDA {torch.version.cuda}"
    except Exception as exc:  # noqa: BLE001 - the report is written whatever broke
        return f"no GPU ({exc})"
    return "no GPU visible to torch"


def report(junit: Path, bench: Path, metrics: Path | None, phases: dict[str, str]) -> str:
    """The results file: machine, versions, each phase's exit status, the gpu tier's outcomes (and the per-trainer
    seconds and peak memory its tests logged), the bench table."""
    lines = ["# GPU check (launch/gpu_check.sh)", "", f"GPU: {gpu_description()}", ""]
    lines += ["| package | version |", "|---|---|"]
    lines += [f"| {name} | {v} |" for name, v in package_versions().items()]
    lines += ["", "| phase | exit status / seconds |", "|---|---|"] + [f"| {k} | {v} |" for k, v in phases.items()]
    outcomes = junit_outcomes(junit)
    lines += ["", f"## gpu tier: {len(outcomes)} tests", "", "| test | outcome | s | message |", "|---|---|---|---|"]
    lines += [f"| {name} | {outcome} | {secs:.1f} | {msg} |" for name, outcome, secs, msg in outcomes]
    if metrics is not None and metrics.is_file():
        lines += ["", "| trainer | steps | s | peak GPU MiB | losses |", "|---|---|---|---|---|"]
        for line in metrics.read_text().splitlines():
            m = json.loads(line)
            losses = ", ".join(f"{x:.4g}" for x in m.get("losses", []))
            peak = "—" if m.get("peak_mib") is None else f"{m['peak_mib']:.0f}"
            lines.append(f"| {m['name']} | {m['steps']} | {m['seconds']:.1f} | {peak} | {losses} |")
    lines += ["", "## bench", "", *bench_section(bench)]
    return "\n".join(lines) + "\n"


def bench_section(bench: Path) -> list[str]:
    """The bench's table (`bench/bench.md`); if the bench was stopped before writing it, the arms that finished
    (`bench/runs/<arm>-r<k>/result.json`: median seconds per step, generated tokens per step, peak GPU memory)."""
    table = bench / "bench.md" if bench.is_dir() else bench
    if table.is_file():
        return [table.read_text()]
    runs = sorted((bench / "runs").glob("*/result.json")) if bench.is_dir() else []
    if not runs:
        return [f"(no bench table: {table} is missing and no arm finished; see gpu-check.log)"]
    lines = [
        f"(no bench table: the bench stopped before the end; the {len(runs)} arm(s) that finished)",
        "",
        "| arm | trainer | s / step | gen tokens / step | peak GPU MiB |",
        "|---|---|---|---|---|",
    ]
    for path in runs:
        r = json.loads(path.read_text())
        seconds, tokens = sorted(r["step_seconds"]), r["generated_tokens"]
        peak = "—" if r.get("peak_gpu_mib") is None else f"{r['peak_gpu_mib']:.0f}"
        lines.append(
            f"| {path.parent.name} | {r['trainer'].rsplit('.', 1)[-1]} | {seconds[len(seconds) // 2]:.2f} "
            f"| {sum(tokens) / len(tokens):.0f} | {peak} |"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python launch/gpu_check.py")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("prepare", help="Download the wheels, export the model config, check the travel size.")
    p.add_argument("--dir", default=str(ROOT / DEFAULT_DIR))
    w = sub.add_parser("wheels", help="Print the carried wheels this machine needs, one a line.")
    w.add_argument("--dir", default=str(ROOT / DEFAULT_DIR))
    r = sub.add_parser("report", help="Write the results file (on the GPU machine).")
    r.add_argument("--junit", required=True)
    r.add_argument("--bench", required=True, help="The bench's output folder (or its bench.md).")
    r.add_argument("--metrics", default=None, help="The gpu tier's per-trainer JSON lines.")
    r.add_argument("--phase", action="append", default=[], help="name=status, repeated.")
    r.add_argument("--out", required=True)
    opts = parser.parse_args(argv)
    if opts.command == "prepare":
        prepare(Path(opts.dir))
        return 0
    if opts.command == "wheels":
        print("\n".join(str(w) for w in wheels_to_install(Path(opts.dir) / "wheels")))
        return 0
    phases = dict(item.split("=", 1) for item in opts.phase)
    text = report(Path(opts.junit), Path(opts.bench), Path(opts.metrics) if opts.metrics else None, phases)
    Path(opts.out).parent.mkdir(parents=True, exist_ok=True)
    Path(opts.out).write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    sys.path.insert(0, str(ROOT))  # `selfcorrect` from this checkout when run as a script
    sys.exit(main())
