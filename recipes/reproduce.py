"""The self-correction evidence on the embedded model: every arm, several seeds, both evaluation modes, one table.

    python recipes/reproduce.py run   [--arms base,warmup,warmup+score] [--seeds 0,1,2] [--levels 3,4]
    python recipes/reproduce.py run --levels 3,4 --results protocol-2026-12 --arms warmup_fb,warmup_fb+ufo \
        --seeds 0,1,2,3,4 --steps 60 --prompts 4,warmup_fb+grpo=8 --train_args="--precision bf16"   # recipes/PROTOCOL.md
    python recipes/reproduce.py table [--out outputs/reproduce] [--write recipes/RESULTS_selfcorrection.md]
    python recipes/reproduce.py compare --compare fb:warmup_fb,grpo   # difference of the revision gain, primary interval
    python recipes/reproduce.py compare --compare fb:warmup_fb,grpo --over problems   # secondary: over problems
    python recipes/reproduce.py compare --compare fb:warmup_fb,grpo --over seeds      # secondary: over seeds
    python recipes/reproduce.py pairs                                 # every comparison RESULTS.md reads, all intervals
    python recipes/reproduce.py pairs --pairs protocol    # PROTOCOL.md's comparisons, each once all its seeds are in
    make reproduce                    # run every arm and seed, then the table

Each run (arm, seed) trains from the embedded SmolLM2-135M-Instruct (or from the same seed's warm-up model) with the
arm's demo recipe and the overrides below, then is evaluated greedily on the same held-out bundled problems in two
modes, each the way it was trained:
- `nofb`: two attempts, SCoRe's instruction between them (no correctness signal): acc@t1, acc@t2, Δ, Δ i→c, Δ c→i;
- `fb`: up to three attempts, UFO's "Incorrect. Please think again." after a wrong answer, stop at the first right
  one: acc@1, succ@3 and succ@3 − acc@1.
A finished run writes `recipes/results/<results>-l<levels>/<arm>/seed<k>/result_<mode>.json` (tracked in git;
`--results` defaults to `reproduce-v2`, the expression-disjoint splits; `reproduce` holds the runs on the earlier
splits; models and logs stay under `outputs/<results>-l<levels>/`) at once (per-problem outcomes, metrics, wall time,
the training and evaluation commands, the commit, the machine and the test split's sha256), so a run killed later
loses nothing, and `run` skips what is already there: the matrix can be filled over several sessions. Training saves
a checkpoint every `--checkpoint_steps` (10) steps and a rerun resumes from it. `--steps` and `--prompts` set the RL
arms' budget (optimizer steps; prompts a step, the batch being prompts x the group size), `--train_args` adds training
flags, `--pass_k N` adds a pass@k evaluation mode (`passk`, N samples a problem). `table` assembles whatever exists: per arm the mean over seeds and a 95 % percentile-bootstrap
interval over problems (the same resampled problems for every seed of an arm; 2000 resamples), plus the number of
seeds; missing runs are listed, never filled in. `compare` gives one difference between two arms. Its **primary**
interval holds both sources of noise: a hierarchical bootstrap (`hierarchical_bootstrap`: resample the seeds, then the
problems, the problem draw shared by the seeds and both arms), paired by seed where the two arms share a start (one
starts from the other's model of the same seed, or both from the same warm-up). Two secondary intervals stay, labelled
as such: over problems with the seeds fixed (paired bootstrap, `--over problems`) and over seeds (Welch's t on each
seed's value, `--over seeds`).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import platform
import random
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from selfcorrect.metrics import carry_forward, self_correction_metrics

ROOT = Path(__file__).resolve().parent.parent
EVAL_PROBLEMS = 160
# Shared by every run: the same bundled problems (arithmetic_seed fixed), greedy evaluation, 64-token attempts.
LEVELS = ["1", "2"]  # `--levels 3,4` for harder problems (levels 1-2 saturate after the warm-up: see RESULTS.md)
COMMON = [
    "--arithmetic_eval_size", str(EVAL_PROBLEMS),
    "--eval_before_training", "false",
    "--eval_after_training", "false",
    "--eval_temperature", "0.0",
    "--eval_max_new_tokens", "64",
    "--eval_batch_size", "160",  # one batch: 1.6x faster than 32 a batch on this CPU (fp32; bf16 is 4x slower)
    "--save_strategy", "no",
    "--report_to", "none",
]  # fmt: skip
# The run's options beyond the arm's defaults, set by `main` (`--steps`, `--prompts`, `--checkpoint_steps`,
# `--train_args`, `--results`, `--pass_k`, `--num_threads`).
RUN: dict = {
    "steps": None,
    "prompts": {},
    "checkpoint_steps": 10,
    "train_args": [],
    "results": "reproduce-v2",
    "num_threads": None,
}
MODES = {
    "nofb": ["--eval_attempts", "2", "--eval_feedback", "score_instruction", "--eval_stop_on_correct", "false"],
    "fb": ["--eval_attempts", "3", "--eval_feedback", "unary", "--eval_stop_on_correct", "true"],
}
# Revision warm-up data (gold-derived mistakes), one file per feedback the rows are written with.
WARMUP_DATA = {
    "nofb": ["--source", "gold", "--feedback", "score_instruction", "--keep_right_fraction", "1.0"],
    "fb": ["--source", "gold", "--feedback", "unary"],
}
WARMUP_TRAIN = ["--max_steps", "24", "--per_device_train_batch_size", "8", "--learning_rate", "2e-5"]
SCORE_TRAIN = ["--max_steps", "16", "--score_stage", "1", "--stage1_steps", "6", "--per_device_train_batch_size", "8",
               "--num_generations", "8", "--learning_rate", "1e-5", "--max_attempt_length", "64",
               "--max_completion_length", "224"]  # fmt: skip
# SCoRe's ablation (Kumar et al. 2024, "naive multi-turn RL"): stage II only, no shaping bonus (alpha = 0). Stage I of
# 0 steps: score.yaml's `stage1_steps` goes with `score_stage: 1` (a recipe asking for stage 2 with it is refused).
NAIVE_TRAIN = ["--max_steps", "16", "--score_stage", "1", "--stage1_steps", "0", "--alpha", "0.0",
               "--per_device_train_batch_size", "8", "--num_generations", "8", "--learning_rate", "1e-5", "--max_attempt_length", "64",
               "--max_completion_length", "224"]  # fmt: skip
GRPO_TRAIN = ["--max_steps", "32", "--per_device_train_batch_size", "8", "--num_generations", "8",
              "--learning_rate", "1e-5", "--max_completion_length", "64"]  # fmt: skip
UFO_TRAIN = ["--max_steps", "12", "--learning_rate", "1e-5", "--max_attempt_length", "64",
             "--max_completion_length", "288"]  # fmt: skip
CRITIQUE_TRAIN = ["--max_steps", "16", "--per_device_train_batch_size", "8", "--num_generations", "8",
                  "--learning_rate", "1e-5", "--max_attempt_length", "64", "--max_completion_length", "64"]  # fmt: skip
# Zhu et al. 2025 in miniature: GRPO's budget, single turn, the advantage mode of each arm (no KL, as theirs).
NSR_TRAIN = ["--max_steps", "32", "--per_device_train_batch_size", "8", "--num_generations", "8",
             "--learning_rate", "1e-5", "--max_attempt_length", "64", "--max_completion_length", "64"]  # fmt: skip
# arm: (recipe, start from ("embedded" or another arm), warm-up data key, training overrides)
ARMS: dict[str, tuple[str | None, str, str | None, list[str]]] = {
    "base": (None, "embedded", None, []),
    "warmup_fb": ("recipes/demo/revision_sft.yaml", "embedded", "fb", WARMUP_TRAIN),
    "grpo": ("recipes/demo/grpo.yaml", "embedded", None, GRPO_TRAIN),
    "ufo": ("recipes/demo/ufo.yaml", "embedded", None, UFO_TRAIN),
    "warmup_fb+ufo": ("recipes/demo/ufo.yaml", "warmup_fb", None, UFO_TRAIN),
    "warmup": ("recipes/demo/revision_sft.yaml", "embedded", "nofb", WARMUP_TRAIN),
    "score": ("recipes/demo/score.yaml", "embedded", None, SCORE_TRAIN),
    "warmup+score": ("recipes/demo/score.yaml", "warmup", None, SCORE_TRAIN),
    "critique_grpo": ("recipes/demo/critique_grpo.yaml", "embedded", None, CRITIQUE_TRAIN),
    # recipes/PROTOCOL.md's arms: RL after the same seed's warm-up, SCoRe's naive ablation, NSR in miniature
    "warmup_fb+grpo": ("recipes/demo/grpo.yaml", "warmup_fb", None, GRPO_TRAIN),
    "warmup_fb+critique_grpo": ("recipes/demo/critique_grpo.yaml", "warmup_fb", None, CRITIQUE_TRAIN),
    "warmup+naive": ("recipes/demo/score.yaml", "warmup", None, NAIVE_TRAIN),
    "psr": ("recipes/demo/nsr.yaml", "embedded", None, NSR_TRAIN + ["--advantage_mode", "psr"]),
    "nsr": ("recipes/demo/nsr.yaml", "embedded", None, NSR_TRAIN + ["--advantage_mode", "nsr"]),
    "w_reinforce": ("recipes/demo/nsr.yaml", "embedded", None,
                    NSR_TRAIN + ["--advantage_mode", "w_reinforce", "--positive_weight", "0.1"]),
}  # fmt: skip


def _python() -> str:
    venv = ROOT / ".venv" / "bin" / "python"
    return str(venv) if venv.exists() else sys.executable


def _run(command: list[str], log: Path) -> float:
    """Run one step of the pipeline, its output appended to `log`; returns the wall time; raises on failure."""
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE", "TOKENIZERS_PARALLELISM": "false", "WANDB_MODE": "offline"}
    env.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    start = time.time()
    with log.open("a") as handle:
        handle.write(f"\n$ {' '.join(command)}\n")
        handle.flush()
        code = subprocess.call(command, cwd=ROOT, stdout=handle, stderr=subprocess.STDOUT, env=env)
    if code:
        raise RuntimeError(f"exit {code}: {' '.join(command)} (log: {log})")
    return time.time() - start


def _threads() -> list[str]:
    """`--num_threads N` for every command when `--num_threads` pins it (the same count for every run of a protocol:
    the reductions inside a matmul depend on it, so a model retrained with another count is not bit-identical)."""
    return ["--num_threads", str(RUN["num_threads"])] if RUN["num_threads"] else []


def model_digest(model: Path) -> str | None:
    """sha256 over a saved model's weight files (name and bytes, in name order); None when it has none."""
    files = sorted(model.glob("*.safetensors")) or sorted(model.glob("*.bin"))
    if not files:
        return None
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.name.encode())
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def warmup_data(out: Path, key: str, log: Path) -> Path:
    path = out / f"revision-data-{key}"
    if not (path / "sft.jsonl").is_file():
        _run(
            [_python(), "-m", "selfcorrect.cli", "revision-data", "--config", "recipes/demo/score.yaml",
             *WARMUP_DATA[key], "--arithmetic_levels", *LEVELS, "--arithmetic_eval_size", str(EVAL_PROBLEMS),
             *_threads(), "--output_dir", str(path)],
            log,
        )  # fmt: skip
    return path / "sft.jsonl"


def model_dir(out: Path, arm: str, seed: int) -> Path:
    return out / arm / f"seed{seed}" / "model"


def results_dir() -> Path:
    """Where finished runs' result files live (in the repository, so later sessions keep them): `--results` (default
    `reproduce-v2`, the expression-disjoint splits; `reproduce` holds the runs on the earlier, leaky splits) and the
    levels."""
    return ROOT / "recipes" / "results" / f"{RUN['results']}-l{''.join(LEVELS)}"


def _set_flag(flags: list[str], name: str, value: str) -> None:
    """Set `name`'s value in a flat flag list, appending the flag when it is not there."""
    if name in flags:
        flags[flags.index(name) + 1] = value
    else:
        flags += [name, value]


def budget_overrides(arm: str, steps: int | None = None, prompts: int | None = None) -> list[str]:
    """The arm's training overrides with an RL budget: `steps` optimizer steps (SCoRe's stage I the first third) and
    `prompts` prompts a step (the batch: prompts x the arm's group size). Warm-ups (SFT) keep their own budget."""
    recipe, _, data_key, overrides = ARMS[arm]
    flags = list(overrides)
    if recipe is None or data_key is not None:
        return flags
    if steps:
        _set_flag(flags, "--max_steps", str(steps))
        if "--stage1_steps" in flags and int(flags[flags.index("--stage1_steps") + 1]) > 0:  # naive: stays 0
            _set_flag(flags, "--stage1_steps", str(steps // 3))
    if prompts:
        if "--num_generations" in flags:
            generations = int(flags[flags.index("--num_generations") + 1])
        else:
            import yaml

            generations = int(yaml.safe_load((ROOT / recipe).read_text())["num_generations"])
        _set_flag(flags, "--per_device_train_batch_size", str(prompts * generations))
    return flags


def _train_common() -> list[str]:
    """COMMON for a training command: checkpoints every `--checkpoint_steps` (the last one kept), so that a run killed
    half-way resumes from it (`selfcorrect train` resumes from the output folder's last complete checkpoint)."""
    if not RUN["checkpoint_steps"]:
        return list(COMMON)
    flags = list(COMMON)
    _set_flag(flags, "--save_strategy", "steps")
    return flags + ["--save_steps", str(RUN["checkpoint_steps"]), "--save_total_limit", "1"]


def _machine() -> dict[str, object]:
    """What ran it: host, CPU model and count, Python and the main libraries' versions."""
    from importlib.metadata import PackageNotFoundError, version

    cpu = platform.processor()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        cpu = next(
            (x.split(":", 1)[1].strip() for x in cpuinfo.read_text().splitlines() if x.startswith("model name")), cpu
        )
    versions = {}
    for package in ("torch", "transformers", "trl"):
        try:
            versions[package] = version(package)
        except PackageNotFoundError:
            versions[package] = None
    return {
        "host": platform.node(),
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        **versions,
    }


def _test_split_digest() -> str:
    """sha256 of the evaluated test split (questions and expressions), so a result file says which problems it saw."""
    from selfcorrect.data.arithmetic import make_splits

    test = make_splits(levels=tuple(int(x) for x in LEVELS), eval_size=EVAL_PROBLEMS)["test"]
    return hashlib.sha256(json.dumps([[p.question, p.expression] for p in test]).encode()).hexdigest()


def run_arm(out: Path, arm: str, seed: int, need_model: bool = False) -> None:
    recipe, start, data_key, overrides = ARMS[arm]
    run_dir = out / arm / f"seed{seed}"
    run_dir.mkdir(parents=True, exist_ok=True)
    result_dir = results_dir() / arm / f"seed{seed}"
    result_dir.mkdir(parents=True, exist_ok=True)
    log = run_dir / "log.txt"
    results_exist = all((result_dir / f"result_{mode}.json").is_file() for mode in MODES)
    model_missing = recipe is not None and not (model_dir(out, arm, seed) / "config.json").is_file()
    if results_exist and not (need_model and model_missing):
        print(f"[skip] {arm} seed {seed}: results exist", flush=True)
        return
    (run_dir / "FAILED").unlink(missing_ok=True)
    base_model = "embedded"
    start_digest = None
    if start != "embedded":
        # The same seed's starting model: skipped when there; retrained by the same command when its results exist
        # but its weights do not (a later working period on a fresh machine), its digest checked against the first.
        run_arm(out, start, seed, need_model=True)
        base_model = str(model_dir(out, start, seed))
        start_digest = model_digest(Path(base_model))
    train_seconds = 0.0
    trained = base_model
    train_command = None
    if recipe is not None:
        trained = str(model_dir(out, arm, seed))
        overrides = budget_overrides(arm, RUN["steps"], RUN["prompts"].get(arm, RUN["prompts"].get("*")))
        extra = ["--dataset_name", str(warmup_data(out, data_key, log))] if data_key else []
        train_command = [_python(), "-m", "selfcorrect.cli", "train", "--config", recipe, *_train_common(), *overrides,
                         *extra, *RUN["train_args"], *_threads(), "--arithmetic_levels", *LEVELS,
                         "--model_name_or_path", base_model, "--seed", str(seed), "--output_dir", trained]  # fmt: skip
        if not (Path(trained) / "config.json").is_file():
            print(f"[train] {arm} seed {seed}", flush=True)
            train_seconds = _run(train_command, log)
        if results_exist:  # retrained only as another arm's start: the curve and results stay the first run's
            _check_retrained(result_dir, Path(trained), arm, seed)
            return
        if (Path(trained) / "log_history.jsonl").is_file():  # the learning curve, kept with the results
            shutil.copyfile(Path(trained) / "log_history.jsonl", result_dir / TRAIN_LOG)
    eval_recipe = recipe or "recipes/demo/grpo.yaml"
    trained_digest = model_digest(Path(trained)) if recipe is not None else None  # once, not once per mode
    for mode, flags in MODES.items():
        result_path = result_dir / f"result_{mode}.json"
        if result_path.is_file():
            continue
        print(f"[eval] {arm} seed {seed} {mode}", flush=True)
        eval_dir = run_dir / f"eval_{mode}"
        command = [_python(), "-m", "selfcorrect.cli", "eval", "--config", eval_recipe, *COMMON, *flags,
                   *_threads(), "--arithmetic_levels", *LEVELS,
                   "--model_name_or_path", trained, "--seed", str(seed), "--output_dir", str(eval_dir)]  # fmt: skip
        if recipe is not None and "revision_sft" in recipe:
            command += ["--dataset_name", "bundled:arithmetic"]  # evaluate on problems, not on the warm-up rows
        eval_seconds = _run(command, log)
        evaluated = json.loads((eval_dir / "eval" / "eval.json").read_text())
        result = {
            "arm": arm,
            "seed": seed,
            "mode": mode,
            "metrics": evaluated["metrics"],
            "correct": [sample["correct"] for sample in evaluated["samples"]],
            "answers": [sample["answers"] for sample in evaluated["samples"]],
            "train_seconds": round(train_seconds, 1),
            "eval_seconds": round(eval_seconds, 1),
            "train_log": _train_summary(Path(trained)) if recipe is not None else None,
            "model_sha256": trained_digest,
            "start_model_sha256": start_digest,
            "command": " ".join(command),
            "train_command": shlex.join(train_command) if train_command else None,
            "reproduce_command": shlex.join([Path(sys.argv[0]).name, *sys.argv[1:]]),
            "commit": _commit(),
            "machine": _machine(),
            "test_split_sha256": _test_split_digest(),
            "date": time.strftime("%Y-%m-%d %H:%M"),
        }
        result_path.write_text(json.dumps(result, indent=1) + "\n")  # at once: a later crash loses nothing


def _check_retrained(result_dir: Path, model: Path, arm: str, seed: int) -> None:
    """A start model retrained after its results were written: is it the model those results evaluated? The answer
    (digests and whether they match) is written beside the results, never hidden; a mismatch is a deviation to list."""
    recorded = json.loads(next(iter(sorted(result_dir.glob("result_*.json")))).read_text()).get("model_sha256")
    digest = model_digest(model)
    same = recorded is not None and digest == recorded
    note = {"date": time.strftime("%Y-%m-%d %H:%M"), "recorded": recorded, "retrained": digest, "identical": same}
    with (result_dir / "retrained.jsonl").open("a") as handle:
        handle.write(json.dumps(note) + "\n")
    print(
        f"[retrained] {arm} seed {seed}: {'identical to' if same else 'DIFFERS from'} the evaluated model", flush=True
    )


def _commit() -> str | None:
    """The code a run used (HEAD, `+dirty` with uncommitted changes), so a result file says what produced it."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True)
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "selfcorrect"], cwd=ROOT, capture_output=True, text=True
        )
    except (OSError, subprocess.CalledProcessError):
        return None
    return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def _train_summary(path: Path) -> dict | None:
    """Steps, generated tokens and the last logged self-correction metrics of a training run, from its own log."""
    lines = path / "log_history.jsonl"
    if not lines.is_file():
        return None
    logs = [json.loads(line) for line in lines.read_text().splitlines() if line.strip()]
    steps = [log for log in logs if "step" in log or "loss" in log]
    keys = ("selfcorrect/acc_t1", "selfcorrect/acc_t2", "selfcorrect/delta", "selfcorrect/zero_advantage_frac")
    return {
        "steps": len(steps),
        "num_tokens": max((log.get("num_tokens", 0) for log in logs), default=0),
        "last": {k: steps[-1].get(k) for k in keys if steps and k in steps[-1]},
    }


# --- the table -----------------------------------------------------------------------------------------------------


def _outcomes(correct: list[list[bool | None]], attempts: int) -> list[tuple[bool, ...]]:
    """Per problem: correctness at each attempt, an attempt never made keeping the last outcome (stop on correct)."""
    return [tuple(row) for row in carry_forward(correct, attempts)]


def _stats(rows: list[tuple[bool, ...]], mode: str) -> dict[str, float]:
    n = len(rows)
    t1 = sum(r[0] for r in rows) / n
    last = sum(r[-1] for r in rows) / n
    if mode == "nofb":
        m = self_correction_metrics([r[0] for r in rows], [r[-1] for r in rows])
        names = {"acc_t1": "acc@t1", "acc_t2": "acc@t2", "delta": "Δ", "delta_i2c": "Δ i→c", "delta_c2i": "Δ c→i"}
        return {names[key]: value for key, value in m.items()}
    wrong_first = [r for r in rows if not r[0]]
    fixed = sum(r[-1] for r in wrong_first) / len(wrong_first) if wrong_first else 0.0
    return {"acc@1": t1, "succ@3": last, "succ@3 − acc@1": last - t1, "fixed / wrong@1": fixed}


def _bootstrap(per_seed: list[list[tuple[bool, ...]]], mode: str, resamples: int = 2000) -> dict[str, tuple]:
    """Mean over seeds of each statistic, and a 95 % percentile interval from resampling problems (shared by seeds)."""
    n = len(per_seed[0])
    point = _mean_stats([_stats(rows, mode) for rows in per_seed])
    rng = random.Random(0)
    draws: dict[str, list[float]] = {key: [] for key in point}
    for _ in range(resamples):
        index = [rng.randrange(n) for _ in range(n)]
        stats = _mean_stats([_stats([rows[i] for i in index], mode) for rows in per_seed])
        for key, value in stats.items():
            draws[key].append(value)
    out = {}
    for key, value in point.items():
        ordered = sorted(draws[key])
        out[key] = (value, ordered[int(0.025 * resamples)], ordered[int(0.975 * resamples) - 1])
    return out


def _mean_stats(stats: list[dict[str, float]]) -> dict[str, float]:
    return {key: sum(s[key] for s in stats) / len(stats) for key in stats[0]}


def _shown(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


GAIN = {"nofb": "Δ", "fb": "succ@3 − acc@1"}  # what revision adds, per mode


def compare_arms(
    results_root: Path, mode: str, arm: str, other: str, resamples: int = 2000, statistic: str | None = None
) -> tuple[float, ...]:
    """Paired difference of what revision adds (`GAIN[mode]`, or another column of the mode's table: `statistic`, e.g.
    "acc@1"), mean over each arm's seeds, between two arms, with a 95 % percentile-bootstrap interval over problems
    (the same resampled problems for both arms and every seed)."""
    statistic = _statistic(mode, statistic)
    per_arm = [_arm_outcomes(results_root, name, mode) for name in (arm, other)]

    def gain(index: list[int]) -> float:
        means = [
            sum(_stats([rows[i] for i in index], mode)[statistic] for rows in seeds) / len(seeds) for seeds in per_arm
        ]
        return means[0] - means[1]

    n = len(per_arm[0][0])
    rng = random.Random(0)
    draws = sorted(gain([rng.randrange(n) for _ in range(n)]) for _ in range(resamples))
    return gain(list(range(n))), draws[int(0.025 * resamples)], draws[int(0.975 * resamples) - 1]


CHANGED = "changed@t2"  # no feedback: the second answer differs from the first (SCoRe's collapse measure, inverted)


def _statistic(mode: str, statistic: str | None, hierarchical: bool = False) -> str:
    """The column a comparison reads: `statistic`, checked against the mode's table, or the mode's revision gain;
    `hierarchical` also allows `CHANGED` without feedback (read from the answers, not the outcomes)."""
    statistic = statistic or GAIN[mode]
    if hierarchical and mode == "nofb" and statistic == CHANGED:
        return statistic
    known = _stats([(True,)], mode)
    if statistic not in known:
        raise ValueError(f"`--statistic` {statistic!r} is not a column of the {mode} table; choose from {list(known)}")
    return statistic


ATTEMPTS = {"nofb": 2, "fb": 3}  # attempts each evaluation mode makes


def _arm_results(results_root: Path, arm: str, mode: str) -> list[dict]:
    """Every seed's result file of `arm` in `mode`, in seed order (seed10 after seed9); empty when the arm has not been
    run."""
    files = sorted(
        (results_root / arm).glob(f"seed*/result_{mode}.json"), key=lambda f: int(f.parent.name.removeprefix("seed"))
    )
    return [json.loads(f.read_text()) for f in files]


def _arm_outcomes(results_root: Path, arm: str, mode: str) -> list[list[tuple[bool, ...]]]:
    """Per seed of `arm`, each problem's outcomes in `mode`."""
    results = _arm_results(results_root, arm, mode)
    if not results:
        raise FileNotFoundError(f"no {mode} results for arm '{arm}' under {results_root}")
    return [_outcomes(r["correct"], ATTEMPTS[mode]) for r in results]


def _t_quantile(p: float, df: float) -> float:
    """Quantile of Student's t with `df` (> 0, may be fractional) degrees of freedom, for p in (0.5, 1): bisection on
    the CDF, integrated from the density by Simpson's rule (to ~1e-6: no scipy in the environment)."""
    log_norm = math.lgamma((df + 1) / 2) - math.lgamma(df / 2) - 0.5 * math.log(df * math.pi)

    def cdf(x: float, steps: int = 4000) -> float:
        h = x / steps
        f = [math.exp(log_norm - (df + 1) / 2 * math.log1p((i * h) ** 2 / df)) for i in range(steps + 1)]
        return 0.5 + h / 3 * (f[0] + f[-1] + 4 * sum(f[1:-1:2]) + 2 * sum(f[2:-1:2]))

    low, high = 0.0, 1.0
    while cdf(high) < p:
        high *= 2
    for _ in range(50):
        mid = (low + high) / 2
        low, high = (mid, high) if cdf(mid) < p else (low, mid)
    return (low + high) / 2


# --- the primary interval: seeds, then problems ----------------------------------------------------------------------

# Per problem, the value whose mean over problems is the statistic (a problem's outcomes `r`: one bool per attempt, the
# last carried forward). "fixed / wrong@1" is a ratio of two means, not a mean, and has no entry.
PER_PROBLEM = {
    "acc@1": lambda r: r[0],
    "succ@3": lambda r: r[-1],
    "succ@3 − acc@1": lambda r: r[-1] - r[0],
    "acc@t1": lambda r: r[0],
    "acc@t2": lambda r: r[-1],
    "Δ": lambda r: r[-1] - r[0],
    "Δ i→c": lambda r: (not r[0]) and r[-1],
    "Δ c→i": lambda r: r[0] and not r[-1],
}


def hierarchical_bootstrap(
    arm: np.ndarray,
    other: np.ndarray | None = None,
    paired: bool = False,
    resamples: int = 2000,
    seed: int = 0,
    resample_seeds: bool = True,
) -> tuple[float, float, float]:
    """The mean of `arm` (minus that of `other`) with a 95 % percentile interval that holds both sources of noise: which
    seeds were run and which problems were drawn.

    `arm` and `other` are (seeds, problems) arrays of per-problem values (`PER_PROBLEM`), the same problems in the same
    columns. The point is the mean over seeds of each seed's mean over problems. Each resample draws the problems with
    replacement once, then each arm's seeds with replacement, and takes the mean over the drawn seeds of each drawn
    seed's mean over the drawn problems. The problem draw is shared by every seed and both arms: problems are crossed
    with seeds (every seed is evaluated on the same problems), so a fresh problem draw per seed would average the
    problems' difficulty out over the seeds and understate it. `paired` (two arms whose same seed index shares a start,
    e.g. an arm and the warm-up it starts from) draws the same seed indices for both arms, so what a seed's start adds
    cancels in the difference; it needs equal seed counts. With `resample_seeds=False` only problems are resampled (the
    paired bootstrap over problems, seeds fixed); with all seeds equal the two give the same interval.

    Pure: numpy only, its own generator (`seed`); the same arguments give the same interval.
    """
    arrays = [np.asarray(arm, dtype=float)] + ([] if other is None else [np.asarray(other, dtype=float)])
    if any(a.ndim != 2 or a.shape[0] < 1 or a.shape[1] < 1 for a in arrays):
        raise ValueError("hierarchical_bootstrap needs (seeds, problems) arrays with at least one of each")
    if len({a.shape[1] for a in arrays}) != 1:
        raise ValueError(f"the arms have different problem counts: {[a.shape[1] for a in arrays]}")
    if paired and (other is None or arrays[0].shape[0] != arrays[1].shape[0]):
        raise ValueError(
            "paired by seed needs two arms with the same number of seeds; got " + str([a.shape[0] for a in arrays])
        )
    n = arrays[0].shape[1]
    rng = np.random.default_rng(seed)
    problems = rng.integers(0, n, size=(resamples, n))
    draws = []
    seed_draw = None
    for values in arrays:
        per_seed = values[:, problems].mean(axis=2)  # (seeds, resamples): each seed on the drawn problems
        count = values.shape[0]
        if resample_seeds:
            if seed_draw is None or not paired:
                seed_draw = rng.integers(0, count, size=(resamples, count))
            per_seed = per_seed[seed_draw, np.arange(resamples)[:, None]].T  # (drawn seeds, resamples)
        draws.append(per_seed.mean(axis=0))
    point = float(arrays[0].mean() - (arrays[1].mean() if other is not None else 0.0))
    ordered = np.sort(draws[0] - (draws[1] if other is not None else 0.0))
    return point, float(ordered[int(0.025 * resamples)]), float(ordered[int(0.975 * resamples) - 1])


def paired_by_seed(arm: str, other: str) -> bool:
    """Whether two arms' same seed shares a start: one starts from the other, or both from the same trained arm."""
    start, other_start = ARMS[arm][1], ARMS[other][1]
    return start == other or other_start == arm or (start == other_start and start != "embedded")


def _per_problem_values(results_root: Path, arm: str, mode: str, statistic: str) -> tuple[list[int], np.ndarray]:
    """`arm`'s seeds and its (seeds, problems) array of `PER_PROBLEM[statistic]` in `mode`."""
    results = _arm_results(results_root, arm, mode)
    if not results:
        raise FileNotFoundError(f"no {mode} results for arm '{arm}' under {results_root}")
    if statistic == CHANGED:  # each problem's answers, one per attempt ("" without a boxed answer)
        values = np.array([[float(len(a) > 1 and a[1] != a[0]) for a in r["answers"]] for r in results])
        return [r.get("seed") for r in results], values
    rows = [_outcomes(r["correct"], ATTEMPTS[mode]) for r in results]
    values = np.array([[float(PER_PROBLEM[statistic](r)) for r in seed_rows] for seed_rows in rows])
    return [r.get("seed") for r in results], values


def compare_hierarchical(
    results_root: Path, mode: str, arm: str, other: str, statistic: str | None = None, resamples: int = 2000
) -> dict[str, object]:
    """The primary interval of a comparison: `arm` − `other` on `statistic` (default the mode's revision gain) with
    `hierarchical_bootstrap`, paired by seed when the arms share a start (`paired_by_seed`, on the same seeds)."""
    statistic = _statistic(mode, statistic, hierarchical=True)
    if statistic not in PER_PROBLEM and statistic != CHANGED:
        raise ValueError(f"{statistic!r} is not a mean over problems; the hierarchical interval needs one")
    (seeds, values), (other_seeds, other_values) = (
        _per_problem_values(results_root, name, mode, statistic) for name in (arm, other)
    )
    paired = arm in ARMS and other in ARMS and paired_by_seed(arm, other)
    if paired and seeds != other_seeds:
        raise ValueError(f"'{arm}' and '{other}' share their starts but not their seeds ({seeds} vs {other_seeds})")
    point, low, high = hierarchical_bootstrap(values, other_values, paired=paired, resamples=resamples)
    return {"difference": point, "low": low, "high": high, "paired": paired}


SEED_FREE = {"base"}  # greedy evaluation of the untrained model: its one seed has no seed-to-seed variance


def compare_over_seeds(
    results_root: Path, mode: str, arm: str, other: str, statistic: str | None = None
) -> dict[str, object]:
    """The same difference as `compare_arms`, with a 95 % interval over seeds instead of problems: each seed's value of
    the statistic (on all problems), the difference of the two arms' means, and Welch's t-interval (unequal variances,
    Welch-Satterthwaite degrees of freedom). Each arm needs two seeds or more, except the seed-free `base`."""
    statistic = _statistic(mode, statistic)
    values = {}
    for name in (arm, other):
        values[name] = [_stats(rows, mode)[statistic] for rows in _arm_outcomes(results_root, name, mode)]
        if len(values[name]) < 2 and name not in SEED_FREE:
            raise ValueError(f"arm '{name}' has {len(values[name])} seed(s) of {mode} results; an interval over seeds "
                             "needs at least 2")  # fmt: skip
    means = {name: sum(v) / len(v) for name, v in values.items()}
    var_of_mean = {  # the sample variance of the seeds over their count; 0 for a seed-free arm
        name: (sum((x - means[name]) ** 2 for x in v) / (len(v) - 1) / len(v) if len(v) > 1 else 0.0)
        for name, v in values.items()
    }
    difference = means[arm] - means[other]
    se = math.sqrt(sum(var_of_mean.values()))
    df = se**4 / sum(w**2 / (len(values[n]) - 1) for n, w in var_of_mean.items() if len(values[n]) > 1) if se else 0.0
    half = _t_quantile(0.975, df) * se if se else 0.0
    return {"difference": difference, "low": difference - half, "high": difference + half, "df": df,
            "per_seed": values}  # fmt: skip


# The comparisons RESULTS.md reads (mode, arm, other, statistic or None for the mode's revision gain).
PAIRS: list[tuple[str, str, str, str | None]] = [
    ("fb", "warmup_fb", "grpo", None),
    ("fb", "warmup_fb", "base", None),
    ("fb", "grpo", "base", None),
    ("nofb", "grpo", "base", None),
    ("nofb", "warmup_fb", "base", None),
    ("nofb", "warmup+score", "warmup", None),
    ("nofb", "warmup", "base", None),
    ("fb", "warmup+score", "warmup", None),
    ("fb", "warmup_fb+ufo", "warmup_fb", None),
    ("fb", "warmup_fb+ufo", "grpo", None),
    ("nofb", "warmup_fb+ufo", "warmup_fb", None),
    ("fb", "ufo", "grpo", None),
    ("fb", "ufo", "base", None),
    ("nofb", "score", "base", None),
    ("nofb", "score", "grpo", None),
    ("fb", "critique_grpo", "grpo", "acc@1"),
]
GAIN_NAMES = {"fb": "succ@3 − acc@1, with feedback", "nofb": "Δ(t1,t2), no feedback"}
# The comparisons recipes/PROTOCOL.md decides on, in its order (questions 1 and 2; question 3's pass@k needs
# per-problem sample counts, which result files do not hold yet).
PROTOCOL_PAIRS: list[tuple[str, str, str, str | None]] = [
    ("fb", "warmup_fb+grpo", "warmup_fb", None),
    ("fb", "warmup_fb+grpo", "warmup_fb", "succ@3"),
    ("fb", "warmup_fb+ufo", "warmup_fb", None),
    ("fb", "warmup_fb+ufo", "warmup_fb", "succ@3"),
    ("fb", "warmup_fb+ufo", "warmup_fb+grpo", None),
    ("fb", "warmup_fb+ufo", "warmup_fb+grpo", "succ@3"),
    ("fb", "warmup_fb+critique_grpo", "warmup_fb", None),
    ("fb", "warmup_fb+critique_grpo", "warmup_fb", "succ@3"),
    ("nofb", "warmup+score", "warmup+naive", "changed@t2"),
    ("nofb", "warmup+score", "warmup+naive", None),
]
# PROTOCOL.md's seeds per arm (question 1: 5, question 2: 3), fixed before its runs. `pairs --pairs protocol` shows no
# figure of a comparison until both arms hold every planned seed, so no interval is read before its question's runs
# are all in; Critique-GRPO was cut by the budget and has none.
PROTOCOL_SEEDS: dict[str, int] = {
    "warmup_fb": 5, "warmup_fb+grpo": 5, "warmup_fb+ufo": 5,
    "warmup": 3, "warmup+naive": 3, "warmup+score": 3,
}  # fmt: skip


def _seeds_run(results_root: Path, arm: str, mode: str) -> set[int]:
    return {int(r["seed"]) for r in _arm_results(results_root, arm, mode)}


def build_pairs_table(results_root: Path, pairs=PAIRS, planned_seeds: dict[str, int] | None = None) -> str:
    """`pairs` as one Markdown table: each difference with its primary interval (seeds, then problems:
    `compare_hierarchical`, paired by seed where the arms share a start) and two secondary ones, over problems with the
    seeds fixed (`compare_arms`) and over seeds (`compare_over_seeds`); a pair with an arm not yet run is listed below
    the table, one whose arm has a single seed gets "-" over seeds. With `planned_seeds` (arm -> seeds 0..n-1 of a
    protocol), a pair is shown only once both arms hold all of their planned seeds: the others are listed below the
    table with the seeds they hold, and a pair with an arm outside the plan is listed as not planned."""

    def pct(x: float) -> str:
        return f"{100 * x:+.1f}"

    def named(arm: str, mode: str) -> str:
        seeds = ",".join(str(r["seed"]) for r in _arm_results(results_root, arm, mode))
        return arm if arm in SEED_FREE else f"{arm} (seeds {seeds})"

    lines = [
        "| comparison | statistic | **primary**: seeds, then problems (hierarchical bootstrap) | secondary: over "
        "problems, seeds fixed (paired bootstrap) | secondary: over seeds (Welch t) |",
        "|---|---|---|---|---|",
    ]
    missing, incomplete, unplanned = [], [], []
    for mode, arm, other, statistic in pairs:
        if planned_seeds is not None:
            if arm not in planned_seeds or other not in planned_seeds:
                unplanned.append(f"{mode}:{arm},{other}")
                continue
            held = {name: _seeds_run(results_root, name, mode) for name in (arm, other)}
            short = [
                f"{name} {len(held[name] & set(range(planned_seeds[name])))} of {planned_seeds[name]}"
                for name in (arm, other)
                if not set(range(planned_seeds[name])) <= held[name]
            ]
            if short:
                incomplete.append(f"{mode}:{arm},{other} ({'; '.join(short)})")
                continue
        if not (_arm_results(results_root, arm, mode) and _arm_results(results_root, other, mode)):
            missing.append(f"{mode}:{arm},{other}")
            continue
        try:
            point, low, high = compare_arms(results_root, mode, arm, other, statistic=statistic)
            over_problems = f"{pct(point)} [{pct(low)}, {pct(high)}]"
        except ValueError:  # a statistic only the hierarchical interval reads (changed@t2)
            over_problems = "-"
        try:
            seeds = compare_over_seeds(results_root, mode, arm, other, statistic=statistic)
            over_seeds = (
                f"{pct(seeds['difference'])} [{pct(seeds['low'])}, {pct(seeds['high'])}] (df {seeds['df']:.1f})"
            )
        except ValueError:  # an arm with one seed
            over_seeds = "-"
        try:
            both = compare_hierarchical(results_root, mode, arm, other, statistic=statistic)
            primary = f"{pct(both['difference'])} [{pct(both['low'])}, {pct(both['high'])}]"
            primary += " (paired by seed)" if both["paired"] else ""
        except ValueError as exc:  # a ratio statistic, or arms that share starts but not seeds
            primary = f"- ({exc})"
        shown = f"{statistic} (`--statistic {statistic}`)" if statistic else GAIN_NAMES[mode]
        lines.append(
            f"| {named(arm, mode)} − {named(other, mode)} | {shown} | {primary} | {over_problems} | {over_seeds} |"
        )
    if missing:
        lines += ["", "Not yet comparable (an arm has no results): " + ", ".join(missing)]
    if incomplete:
        lines += ["", "Not shown until every planned seed is in (seeds held of planned): " + ", ".join(incomplete)]
    if unplanned:
        lines += ["", "Not in the plan (an arm cut or never planned): " + ", ".join(unplanned)]
    return "\n".join(lines)


def build_table(results_root: Path) -> str:
    lines = [
        f"Greedy, {EVAL_PROBLEMS} held-out bundled problems (levels {'-'.join(LEVELS)}), the same for every arm. Each cell: mean over "
        "seeds [secondary interval: 95 % percentile bootstrap over problems with the seeds fixed, 2000 resamples, the "
        "same resampled problems for every seed], in %. The primary interval of a comparison, seeds then problems, is in "
        f"`pairs`. Assembled by `python recipes/reproduce.py table` from `{_shown(results_root)}/`.",
        "",
    ]
    missing = []
    for mode, title in (("nofb", "No feedback (SCoRe instruction, 2 attempts)"), ("fb", "With feedback (unary, ≤3)")):
        header = None
        for arm in ARMS:
            results = _arm_results(results_root, arm, mode)
            if not results:
                missing.append(f"{arm}/{mode}")
                continue
            stats = _bootstrap([_outcomes(r["correct"], ATTEMPTS[mode]) for r in results], mode)
            if header is None:
                header = list(stats)
                lines += [f"**{title}**", "", "| arm | seeds | " + " | ".join(header) + " | train min |"]
                lines.append("|" + "---|" * (len(header) + 3))
            train_min = sum(r["train_seconds"] for r in results) / len(results) / 60
            cells = [
                f"{100 * v:+.1f} [{100 * lo:+.1f}, {100 * hi:+.1f}]"
                if "Δ" in k or "−" in k
                else f"{100 * v:.1f} [{100 * lo:.1f}, {100 * hi:.1f}]"
                for k, (v, lo, hi) in stats.items()
            ]
            seeds = ",".join(str(r["seed"]) for r in results)
            lines.append(f"| {arm} | {seeds} | " + " | ".join(cells) + f" | {train_min:.1f} |")
        lines.append("")
    lines += training_table(results_root)
    if missing:
        lines.append("Not yet run: " + ", ".join(missing) + ".")
    return "\n".join(lines)


TRAIN_LOG = "log_history.jsonl"  # the run's `log_history.jsonl`, next to its result files


def _training_stats(logs: list[dict]) -> dict[str, float] | None:
    """What an RL run's own log says about its signal: steps, first-attempt training accuracy (mean over steps), the
    mean fraction of groups whose rewards were all equal (TRL's `frac_reward_zero_std`: no advantage, no gradient), the
    fraction of steps where every group was so, and the fraction of steps where no attempt of any sample was right (a
    correctness signal of none). None for a run without groups (SFT)."""
    steps = [log for log in logs if "frac_reward_zero_std" in log]
    if not steps:
        return None
    accuracy = [log.get("selfcorrect/acc_t1", log.get("rewards/accuracy/mean", 0.0)) for log in steps]
    never_right = [
        max([log.get("rewards/accuracy/mean", 0.0)] + [v for k, v in log.items() if k.startswith("selfcorrect/acc_t")])
        == 0.0
        for log in steps
    ]  # no attempt of any sample right
    zero = [log["frac_reward_zero_std"] for log in steps]
    return {
        "steps": len(steps),
        "acc": sum(accuracy) / len(steps),
        "equal_groups": sum(zero) / len(zero),
        "dead_steps": sum(z == 1.0 for z in zero) / len(zero),
        "never_right": sum(never_right) / len(steps),
    }


def training_table(results_root: Path) -> list[str]:
    """Per RL arm, means over its seeds of `_training_stats` and how often the evaluated model repeats its previous
    answer (no feedback: attempt 2 vs 1; with "Incorrect": any attempt vs the one before), from the committed logs."""
    rows = []
    for arm in ARMS:
        stats, seeds, repeats = [], [], {mode: [] for mode in MODES}
        for seed_dir in sorted((results_root / arm).glob("seed*")):
            log = seed_dir / TRAIN_LOG
            found = log.is_file() and _training_stats(
                [json.loads(x) for x in log.read_text().splitlines() if x.strip()]
            )
            if not found:
                continue
            stats.append(found)
            seeds.append(seed_dir.name.removeprefix("seed"))
            for mode in MODES:
                result = seed_dir / f"result_{mode}.json"
                if result.is_file():
                    repeats[mode].append(json.loads(result.read_text())["metrics"].get("repeat_answer_frac", 0.0))
        if not stats:
            continue
        mean = _mean_stats(stats)
        cells = [f"{mean['steps']:.0f}", f"{100 * mean['acc']:.1f}",
                 f"{100 * mean['equal_groups']:.0f}", f"{100 * mean['dead_steps']:.0f}",
                 f"{100 * mean['never_right']:.0f}"]  # fmt: skip
        cells += [f"{100 * sum(v) / len(v):.0f}" if v else "—" for v in repeats.values()]
        rows.append(f"| {arm} | {','.join(seeds)} | " + " | ".join(cells) + " |")
    if not rows:
        return []
    return [
        "**Training signal of the RL arms** (means over seeds, from each run's log, `log_history.jsonl`; a step is one "
        "prompt × 8 samples, so a step's accuracy is mostly whether that prompt is within reach). Equal rewards: TRL's "
        "`frac_reward_zero_std`, the total reward (format included); no right answer: no attempt of any sample was right. "
        "Repeats: the evaluated model's answer equals its previous one (160 problems).",
        "",
        "| arm | seeds | steps | train acc@1 % | groups with equal rewards % | steps with equal "
        "rewards in every group % | steps with no right answer % | repeats, no feedback % | repeats after "
        '"Incorrect" % |',
        "|---|---|---|---|---|---|---|---|---|",
        *rows,
        "",
    ]


def _parse_prompts(spec: str | None, parser: argparse.ArgumentParser) -> dict[str, int]:
    """`--prompts 4,warmup_fb+grpo=8` -> {"*": 4, "warmup_fb+grpo": 8}."""
    out: dict[str, int] = {}
    for part in (spec or "").split(","):
        if not part:
            continue
        arm, _, count = part.rpartition("=")
        if arm and arm not in ARMS:
            parser.error(f"--prompts: unknown arm {arm!r}")
        if not count.isdigit() or int(count) < 1:
            parser.error(f"--prompts: {part!r} is not a positive prompt count")
        out[arm or "*"] = int(count)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=("run", "table", "compare", "pairs"))
    parser.add_argument(
        "--compare", default=None, help="compare: MODE:ARM,OTHER (e.g. fb:warmup_fb,grpo): the paired gain difference"
    )
    parser.add_argument(
        "--statistic",
        default=None,
        help="compare: a column of the mode's table instead of the gain (e.g. acc@1, acc@t1)",
    )
    parser.add_argument(
        "--over",
        choices=("hierarchical", "problems", "seeds"),
        default="hierarchical",
        help="compare: the interval: hierarchical (primary: seeds, then problems), problems (secondary: paired "
        "bootstrap, seeds fixed) or seeds (secondary: Welch t-interval)",
    )
    parser.add_argument("--arms", default=",".join(ARMS), help=f"comma-separated, from: {', '.join(ARMS)}")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--out", default=None, help="models and logs; default outputs/<results>-l<levels>")
    parser.add_argument("--levels", default="1,2", help="bundled arithmetic levels of training and evaluation")
    parser.add_argument("--write", default=None, help="also write the table to this Markdown file")
    parser.add_argument(
        "--results",
        default="reproduce-v2",
        help="result set: recipes/results/<results>-l<levels>/ (reproduce-v2: expression-disjoint splits; reproduce: "
        "the runs on the earlier splits, which shared expressions between train and test)",
    )
    parser.add_argument("--pairs", choices=("results", "protocol"), default="results", help="pairs: which comparisons")
    parser.add_argument("--steps", type=int, default=None, help="run: optimizer steps of every RL arm")
    parser.add_argument(
        "--prompts",
        default=None,
        help="run: prompts a step of every RL arm (the batch is prompts x the arm's group size), with per-arm "
        "exceptions: 4,warmup_fb+grpo=8",
    )
    parser.add_argument(
        "--checkpoint_steps",
        type=int,
        default=10,
        help="run: save a checkpoint every N steps to resume from (0: none)",
    )
    parser.add_argument("--train_args", default="", help='run: extra training flags, e.g. "--dtype bfloat16"')
    parser.add_argument(
        "--pass_k", type=int, default=0, help="run: also evaluate pass@k, k = 1, 2, 4, ... up to N samples a problem"
    )
    parser.add_argument(
        "--num_threads",
        type=int,
        default=None,
        help="run: threads of every command (default: each command's own choice from the free cores)",
    )
    parser.add_argument("--pass_k_temperature", type=float, default=0.7, help="run: sampling temperature of pass@k")
    args = parser.parse_args(argv)
    LEVELS[:] = args.levels.split(",")
    RUN.update(
        steps=args.steps,
        prompts=_parse_prompts(args.prompts, parser),
        checkpoint_steps=args.checkpoint_steps,
        train_args=shlex.split(args.train_args),
        results=args.results,
        num_threads=args.num_threads,
    )
    if args.pass_k:
        ks = [str(2**i) for i in range(args.pass_k.bit_length()) if 2**i <= args.pass_k]
        ks += [] if ks[-1] == str(args.pass_k) else [str(args.pass_k)]
        MODES["passk"] = ["--eval_attempts", "1", "--eval_num_samples", str(args.pass_k), "--eval_pass_k", *ks,
                          "--eval_sample_temperature", str(args.pass_k_temperature)]  # fmt: skip
    out = (ROOT / (args.out or f"outputs/{args.results}-l{''.join(LEVELS)}")).resolve()
    if args.command == "run":
        arms = [a for a in args.arms.split(",") if a]
        unknown = [a for a in arms if a not in ARMS]
        if unknown:
            parser.error(f"unknown arm(s) {unknown}; choose from {', '.join(ARMS)}")
        seeds = [int(s) for s in args.seeds.split(",")]
        for seed in seeds:  # seed-major: every arm gets its first seed before any arm gets its third
            for arm in arms:
                if arm == "base" and seed != seeds[0]:
                    continue  # greedy evaluation of the untrained model does not depend on the seed
                try:
                    run_arm(out, arm, seed)
                except RuntimeError as exc:  # one failed run must not stop the matrix; it is reported, not hidden
                    print(f"[failed] {arm} seed {seed}: {exc}", flush=True)
                    (out / arm / f"seed{seed}" / "FAILED").write_text(str(exc) + "\n")
    if args.command == "pairs":
        if args.pairs == "protocol":
            print(build_pairs_table(results_dir(), PROTOCOL_PAIRS, planned_seeds=PROTOCOL_SEEDS))
        else:
            print(build_pairs_table(results_dir(), PAIRS))
        return 0
    if args.command == "compare":
        if not args.compare or ":" not in args.compare or args.compare.count(",") != 1:
            parser.error("compare needs --compare MODE:ARM,OTHER, e.g. --compare fb:warmup_fb,grpo")
        mode, arms = args.compare.split(":")
        arm, other = arms.split(",")
        shown = args.statistic or GAIN[mode]
        if args.over == "seeds":
            result = compare_over_seeds(results_dir(), mode, arm, other, statistic=args.statistic)
            for name, values in result["per_seed"].items():
                print(f"{name}: " + ", ".join(f"{100 * v:+.1f}" for v in values) + " (per seed)")
            print(f"{shown} ({mode}): {arm} − {other} = {100 * result['difference']:+.1f} [{100 * result['low']:+.1f}, "
                  f"{100 * result['high']:+.1f}] (secondary: 95 % Welch t-interval over seeds, df {result['df']:.1f})")  # fmt: skip
            return 0
        if args.over == "hierarchical":
            result = compare_hierarchical(results_dir(), mode, arm, other, statistic=args.statistic)
            paired = ", paired by seed" if result["paired"] else ""
            print(f"{shown} ({mode}): {arm} − {other} = {100 * result['difference']:+.1f} [{100 * result['low']:+.1f}, "
                  f"{100 * result['high']:+.1f}] (primary: 95 % hierarchical bootstrap, seeds then problems{paired})")  # fmt: skip
            return 0
        point, low, high = compare_arms(results_dir(), mode, arm, other, statistic=args.statistic)
        print(f"{shown} ({mode}): {arm} − {other} = {100 * point:+.1f} [{100 * low:+.1f}, {100 * high:+.1f}] "
              "(secondary: paired, 95 % bootstrap over problems, seeds fixed)")  # fmt: skip
        return 0
    table = build_table(results_dir())
    print(table)
    if args.write:
        Path(args.write).write_text(table + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
