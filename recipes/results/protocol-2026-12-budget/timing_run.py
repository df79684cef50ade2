"""3-step bf16 timing of the protocol's arms (train only, no evaluation): per-step times from TRL's log_history."""

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, "recipes")
import reproduce as R  # noqa: E402

R.LEVELS[:] = ["3", "4"]
R.RUN["num_threads"] = 2
OUT = Path("outputs/protocol_timing").resolve()
STEPS = 3
PROMPTS = {"warmup_fb+grpo": 8, "warmup_fb+ufo": 4, "warmup+score": 4, "warmup+naive": 4, "warmup_fb+critique_grpo": 4}
ORDER = [
    "warmup_fb",
    "warmup",
    "warmup_fb+ufo",
    "warmup_fb+grpo",
    "warmup+score",
    "warmup+naive",
    "warmup_fb+critique_grpo",
]
results = OUT / "timing.jsonl"
for arm in ORDER:
    recipe, start, data_key, _ = R.ARMS[arm]
    log = OUT / f"{arm}.log"
    model = OUT / arm
    if (model / "config.json").is_file():
        continue
    base = "embedded" if start == "embedded" else str(OUT / start)
    overrides = R.budget_overrides(arm, STEPS, PROMPTS.get(arm))
    extra = ["--dataset_name", str(R.warmup_data(OUT, data_key, log))] if data_key else []
    command = [
        "/usr/bin/time",
        "-v",
        R._python(),
        "-m",
        "selfcorrect.cli",
        "train",
        "--config",
        recipe,
        *R.COMMON,
        *overrides,
        *extra,
        "--precision",
        "bf16",
        *R._threads(),
        "--arithmetic_levels",
        *R.LEVELS,
        "--model_name_or_path",
        base,
        "--seed",
        "0",
        "--output_dir",
        str(model),
    ]
    start_time = time.time()
    seconds = R._run(command, log)
    text = log.read_text()
    rss = [int(x.split(":")[1]) for x in text.splitlines() if "Maximum resident set size" in x][-1]
    history = [json.loads(x) for x in (model / "log_history.jsonl").read_text().splitlines() if x.strip()]
    steps = [h for h in history if "step_time" in h]
    row = {
        "arm": arm,
        "wall_s": round(seconds, 1),
        "max_rss_kb": rss,
        "step_time": [h.get("step_time") for h in steps],
        "num_tokens": [h.get("num_tokens") for h in steps],
        "completion_length": [h.get("completions/mean_length") for h in steps],
        "train_runtime": next((h.get("train_runtime") for h in history if "train_runtime" in h), None),
    }
    with results.open("a") as handle:
        handle.write(json.dumps(row) + "\n")
    print(row, flush=True)
