"""Equal learning under bf16: the demo chain and one RL arm, fp32 vs bf16, the same seeds, one result file a run.

    python recipes/precision_check.py run --precision fp32 --seeds 0,1,2 -- --bf16 false
    python recipes/precision_check.py run --precision bf16 --seeds 0,1,2 -- --bf16 true
    python recipes/precision_check.py table

One run (precision, seed) is the `make demo` chain followed by one RL arm, on the same gold-derived revision data:
1. the revision warm-up (recipes/demo/revision_warmup_unary.yaml: SFT, 16 steps), evaluated after training as the demo
   evaluates (64 held-out problems, up to 3 attempts, "try again" after a wrong one, greedy);
2. UFO from that warm-up (recipes/demo/ufo.yaml at levels 3-4, 12 steps, the settings of the reproduce arm
   `warmup_fb+ufo`), evaluated the same way.
Everything after `--` is passed to both training commands (the precision's own flags). A finished run writes
`recipes/results/precision-check/<precision>/seed<k>/result.json` at once (both evaluations' per-problem outcomes and
metrics, the per-step training loss and reward, wall times, the commands, the code commit and the machine), and `run`
skips runs whose result file exists. `table` prints, per precision, the mean over seeds of each metric and, per seed,
bf16 - fp32 with the seed-to-seed spread of fp32 beside it: "within noise" means the bf16 - fp32 difference of the
seed means lies inside a 95 % Welch interval over seeds that contains 0.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "recipes"))
from reproduce import _commit, _python, _run, _t_quantile  # noqa: E402

RESULTS = ROOT / "recipes" / "results" / "precision-check"
EVAL = [
    "--arithmetic_levels", "3", "4", "--arithmetic_eval_size", "64",
    "--eval_after_training", "true", "--eval_before_training", "false",
    "--eval_attempts", "3", "--eval_feedback", "unary", "--eval_stop_on_correct", "true",
    "--eval_max_new_tokens", "64", "--eval_batch_size", "64", "--save_strategy", "no", "--report_to", "none",
]  # fmt: skip
UFO = ["--max_steps", "12", "--learning_rate", "1e-5", "--max_attempt_length", "64", "--max_completion_length", "288"]
METRICS = ("acc_t1", "succ_t3")


def _stage(output_dir: Path) -> dict:
    """One trained stage's evaluation (per-problem outcomes, metrics) and its per-step training log."""
    evaluated = json.loads((output_dir / "eval" / "after.json").read_text())
    steps = [json.loads(line) for line in (output_dir / "log_history.jsonl").read_text().splitlines() if line]
    return {
        "metrics": evaluated["metrics"],
        "correct": [sample["correct"] for sample in evaluated["samples"]],
        "loss": [step["loss"] for step in steps if "loss" in step],
        "reward": [step["reward"] for step in steps if "reward" in step],
    }


def run(out: Path, precision: str, seed: int, extra: list[str]) -> None:
    result_path = RESULTS / precision / f"seed{seed}" / "result.json"
    if result_path.is_file():
        print(f"[skip] {precision} seed {seed}", flush=True)
        return
    run_dir = out / precision / f"seed{seed}"
    run_dir.mkdir(parents=True, exist_ok=True)
    log = run_dir / "log.txt"
    data = out / "revision-data-unary"
    if not (data / "sft.jsonl").is_file():
        _run([_python(), "-m", "selfcorrect.cli", "revision-data", "--config", "recipes/demo/ufo.yaml",
              "--source", "gold", "--arithmetic_levels", "3", "4", "--output_dir", str(data)], log)  # fmt: skip
    warmup, ufo = run_dir / "warmup", run_dir / "ufo"
    commands = {
        "warmup": [_python(), "-m", "selfcorrect.cli", "train", "--config", "recipes/demo/revision_warmup_unary.yaml",
                   *EVAL, "--dataset_name", str(data / "sft.jsonl"), "--seed", str(seed),
                   "--output_dir", str(warmup), *extra],
        "ufo": [_python(), "-m", "selfcorrect.cli", "train", "--config", "recipes/demo/ufo.yaml", *EVAL, *UFO,
                "--model_name_or_path", str(warmup), "--seed", str(seed), "--output_dir", str(ufo), *extra],
    }  # fmt: skip
    result = {"precision": precision, "seed": seed, "commit": _commit(), "date": time.strftime("%Y-%m-%d %H:%M"),
              "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores"}  # fmt: skip
    for stage, directory in (("warmup", warmup), ("ufo", ufo)):
        print(f"[{stage}] {precision} seed {seed}", flush=True)
        wall = directory / "wall_seconds.txt"  # a stage finished by an interrupted run is not trained again
        if not wall.is_file():
            seconds = _run(commands[stage], log)
            wall.write_text(f"{seconds:.1f}\n")
        seconds = float(wall.read_text())
        result[stage] = {**_stage(directory), "seconds": round(seconds, 1), "command": " ".join(commands[stage])}
    result_path.parent.mkdir(parents=True, exist_ok=True)
    result_path.write_text(json.dumps(result, indent=1) + "\n")


def table() -> str:
    results: dict[str, list[dict]] = {}
    for path in sorted(RESULTS.glob("*/seed*/result.json")):
        entry = json.loads(path.read_text())
        results.setdefault(entry["precision"], []).append(entry)
    lines = ["| stage | metric | " + " | ".join(f"{p} (seeds)" for p in results) + " | bf16 − fp32 [95 % over seeds] |",
             "|---|---|" + "---|" * len(results) + "---|"]  # fmt: skip
    for stage in ("warmup", "ufo"):
        for metric in (*METRICS, "train_reward_mean", "seconds") if stage == "ufo" else (*METRICS, "seconds"):
            values = {}
            for precision, runs in results.items():
                values[precision] = [_value(run[stage], metric) for run in runs]
            cells = [
                f"{sum(v) / len(v):.2f} ({', '.join(f'{x:.1f}' for x in v)})" if v else "-" for v in values.values()
            ]
            diff = "-"
            if len(values.get("fp32", [])) > 1 and len(values.get("bf16", [])) > 1:
                mid, half = welch_interval(values["bf16"], values["fp32"])
                diff = f"{mid:+.2f} [{mid - half:+.2f}, {mid + half:+.2f}]" if mid == mid else "-"
            lines.append(f"| {stage} | {metric} | " + " | ".join(cells) + f" | {diff} |")
    return "\n".join(lines)


def welch_interval(a: list[float], b: list[float]) -> tuple[float, float]:
    """mean(a) - mean(b) and the half-width of its 95 % Welch t-interval over seeds (unequal variances)."""
    mean_a, mean_b = sum(a) / len(a), sum(b) / len(b)
    var_a = sum((x - mean_a) ** 2 for x in a) / (len(a) - 1) / len(a)
    var_b = sum((x - mean_b) ** 2 for x in b) / (len(b) - 1) / len(b)
    se = math.sqrt(var_a + var_b)
    if not se:
        return mean_a - mean_b, 0.0
    df = se**4 / (var_a**2 / (len(a) - 1) + var_b**2 / (len(b) - 1))
    return mean_a - mean_b, _t_quantile(0.975, df) * se


def _value(stage: dict, metric: str) -> float:
    if metric == "seconds":
        return stage["seconds"]
    if metric == "train_reward_mean":
        rewards = stage["reward"]
        return sum(rewards) / len(rewards) if rewards else float("nan")
    return 100.0 * stage["metrics"][metric]


def main() -> None:
    argv = sys.argv[1:]
    extra = argv[argv.index("--") + 1 :] if "--" in argv else []
    argv = argv[: argv.index("--")] if "--" in argv else argv
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=("run", "table"))
    parser.add_argument("--precision", default="fp32", help="the label of this precision's runs (fp32, bf16)")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--out", default="outputs/precision-check", help="models and logs (not tracked)")
    opts = parser.parse_args(argv)
    if opts.command == "table":
        print(table())
        return
    for seed in (int(s) for s in opts.seeds.split(",")):
        run(ROOT / opts.out, opts.precision, seed, extra)


if __name__ == "__main__":
    main()
