"""cProfile one bench arm (issue 14: where does a trainer's step time go, next to plain TRL's?).

    python recipes/profile_arm.py trl nsr [--steps 4] [--model embedded] [--out outputs/profile] [--precision bf16]

Each arm is built exactly as `python -m selfcorrect.bench` builds it (same recipe, `--fixed-length`: every completion
has the cap's length, so arms generate the same tokens), trained `--steps` optimizer steps under cProfile, one arm
after the other in this process. Prints and writes (`<out>/profile.md`, `<out>/<arm>.prof` for `snakeviz` or
`pstats`) the cumulative seconds of the step's parts: generation (HF `generate`, its prefill), the episode engine
around it, scoring, the loss forward and the backward. Run it alone on the machine.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
from pathlib import Path

# (label, function name, a part of its file's path): the step's parts, as cProfile names them
PARTS = [
    ("training step", "training_step", "trl/trainer/grpo_trainer.py"),
    ("generate + score (TRL's)", "_generate_and_score_completions", "trl/trainer/grpo_trainer.py"),
    ("HF generate", "generate", "transformers/generation/utils.py"),
    ("  of which prefill", "_prefill", "transformers/generation/utils.py"),
    ("episode engine (generate included)", "run_episodes", "selfcorrect/episodes.py"),
    ("reward functions + credit (ours)", "_calculate_rewards", "selfcorrect/trainers/base.py"),
    ("reward functions (TRL's)", "_calculate_rewards", "trl/trainer/grpo_trainer.py"),
    ("loss forward", "_compute_loss", "trl/trainer/grpo_trainer.py"),
    ("backward", "backward", "torch/_tensor.py"),
]


def cumulative(stats: pstats.Stats, name: str, path_part: str) -> float | None:
    found = [ct for (file, _, func), (_, _, _, ct, _) in stats.stats.items() if func == name and path_part in file]
    return max(found) if found else None


def profile_arm(arm: str, opts, out: Path) -> pstats.Stats:
    import yaml

    from selfcorrect import bench
    from selfcorrect.train import build_trainer

    bench_opts = bench.parse_args(
        ["--fixed-length", "--model", opts.model, "--max-new-tokens", str(opts.max_new_tokens)]
    )
    values = bench.recipe_values(arm, bench_opts, out / arm / "run", opts.precision)
    values["max_steps"] = opts.steps
    recipe = out / arm / "recipe.yaml"
    recipe.parent.mkdir(parents=True, exist_ok=True)
    recipe.write_text(yaml.safe_dump(values))
    if arm in bench.TRL_ARMS:
        trainer = bench.build_baseline_trainer(values)
    else:
        trainer = build_trainer(["--config", str(recipe)])[0]
    profiler = cProfile.Profile()
    profiler.enable()
    trainer.train()
    profiler.disable()
    profiler.dump_stats(out / f"{arm}.prof")
    return pstats.Stats(profiler)


def main(argv: list[str] | None = None) -> dict[str, dict[str, float | None]]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("arms", nargs="+", help="bench arms, e.g. trl nsr")
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--model", default="embedded")
    parser.add_argument("--out", default="outputs/profile")
    parser.add_argument(
        "--precision",
        default="fp32",
        choices=["fp32", "bf16"],
        help="bf16: autocast over fp32 weights (`bf16: true`).",
    )
    opts = parser.parse_args(argv)
    out = Path(opts.out)
    out.mkdir(parents=True, exist_ok=True)
    stats = {arm: profile_arm(arm, opts, out) for arm in opts.arms}  # one profiled run per arm
    table = {arm: {label: cumulative(stats[arm], name, part) for label, name, part in PARTS} for arm in opts.arms}
    lines = [
        f"cProfile, cumulative seconds over {opts.steps} steps (`python recipes/profile_arm.py {' '.join(opts.arms)} "
        f"--steps {opts.steps} --precision {opts.precision}`)",
        "",
        "| part | " + " | ".join(opts.arms) + " |",
        "|---|" + "---|" * len(opts.arms),
    ]
    for label, _, _ in PARTS:
        cells = [f"{table[arm][label]:.2f}" if table[arm][label] is not None else "—" for arm in opts.arms]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    (out / "profile.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return table


if __name__ == "__main__":
    main()
