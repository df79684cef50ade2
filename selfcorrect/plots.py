"""Plots of the self-correction evaluation and of a training run's learning curves.

`save_eval_plot`: one figure per eval table: accuracy at each attempt (one line per evaluated model, e.g. before and
after training), the Δ^{i→c} / Δ^{c→i} transition bars between the first and the last attempt, and pass@k when it
was measured.

`save_learning_curves`: a run's logged metrics over optimizer steps (`output_dir/eval/learning_curves.png`, saved at
the end of every training run and redrawn by `selfcorrect plot RUN_DIR`): acc@t1, acc@t2, ... (every attempt
logged), Δ, Δ i→c and Δ c→i, the mean reward and the loss; the periodic evaluations (`selfcorrect_eval_steps`) appear
as separate markers. Panels without data are left out, so single-attempt runs show their reward and loss.

    selfcorrect plot RUN_DIR [--output PNG]

reads `RUN_DIR/log_history.jsonl` (written during training by `callbacks.LogHistoryCallback`), or else the
`log_history` of the newest `RUN_DIR/checkpoint-*/trainer_state.json`.

matplotlib is a dependency, but a missing or broken install only costs the picture: the save functions warn and
return None.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import re
from pathlib import Path
from typing import Any

from .errors import PlotError

logger = logging.getLogger(__name__)

LOG_HISTORY_FILE = "log_history.jsonl"
LEARNING_CURVES_FILE = "learning_curves.png"


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")  # files only: no display needed
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    return plt


def _attempt_keys(metrics: dict[str, Any]) -> list[str]:
    return sorted((k for k in metrics if k.startswith("acc_t") and k[5:].isdigit()), key=lambda k: int(k[5:]))


def _pass_keys(metrics: dict[str, Any]) -> list[str]:
    return sorted((k for k in metrics if k.startswith("pass@") and k[5:].isdigit()), key=lambda k: int(k[5:]))


def save_eval_plot(named_metrics: dict[str, dict[str, Any]], path: str | Path, title: str = "") -> Path | None:
    """Plot one or more eval tables ({name: metrics}) into `path` (PNG); None (with a warning) without matplotlib."""
    plt = _pyplot()
    if plt is None:
        logger.warning("matplotlib is not installed, so no plot was saved (%s); `pip install matplotlib`.", path)
        return None
    path = Path(path)
    with_pass = any(_pass_keys(m) for m in named_metrics.values())
    panels = 3 if with_pass else 2
    fig, axes = plt.subplots(1, panels, figsize=(4.2 * panels, 3.6))
    names = list(named_metrics)
    width = 0.8 / max(len(names), 1)

    ax = axes[0]
    for name, metrics in named_metrics.items():
        keys = _attempt_keys(metrics)
        ax.plot(range(1, len(keys) + 1), [100 * metrics[k] for k in keys], marker="o", label=name)
    ax.set_xlabel("attempt")
    ax.set_ylabel("accuracy (%)")
    ax.set_title("accuracy per attempt")
    ax.set_xticks(range(1, max(len(_attempt_keys(m)) for m in named_metrics.values()) + 1))
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
    ax.legend()

    ax = axes[1]
    last = max(len(_attempt_keys(m)) for m in named_metrics.values())
    highest = 0.0
    for i, (name, metrics) in enumerate(named_metrics.items()):
        offsets = [x + (i - (len(names) - 1) / 2) * width for x in (0, 1)]
        values = [100 * metrics.get("delta_i2c", 0.0), 100 * metrics.get("delta_c2i", 0.0)]
        highest = max(highest, *values)
        bars = ax.bar(offsets, values, width, label=name)
        ax.bar_label(bars, fmt="%.1f", fontsize=8)
    ax.set_xticks([0, 1], [f"wrong → right (t1→t{last})", f"right → wrong (t1→t{last})"])
    ax.set_ylim(0, max(highest * 1.35, 1.0))  # room for the labels and the legend
    ax.set_ylabel("% of all problems")
    ax.set_title("Δ i→c and Δ c→i" if last > 1 else "one attempt: no transitions")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(loc="upper center", ncol=len(names))

    if with_pass:
        ax = axes[2]
        for name, metrics in named_metrics.items():
            keys = _pass_keys(metrics)
            if keys:
                ax.plot([int(k[5:]) for k in keys], [100 * metrics[k] for k in keys], marker="o", label=name)
        ax.set_xscale("log", base=2)
        ks = sorted({int(k[5:]) for m in named_metrics.values() for k in _pass_keys(m)})
        ax.set_xticks(ks, [str(k) for k in ks])
        ax.minorticks_off()
        ax.set_xlabel("k")
        ax.set_ylabel("pass@k (%)")
        ax.set_title("pass@k (unbiased estimator)")
        ax.set_ylim(0, 100)
        ax.grid(alpha=0.3)
        ax.legend()

    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


# --- learning curves --------------------------------------------------------------------------------------------------


def read_jsonl_records(path: str | Path) -> list[dict[str, Any]]:
    """The JSON objects of a `.jsonl` file, one a line; blank and unreadable lines (a write cut off) are skipped."""
    records = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict):
            records.append(record)
    return records


def _checkpoint_step(path: Path) -> int:
    match = re.fullmatch(r"checkpoint-(\d+)", path.name)
    return int(match.group(1)) if match else -1


def read_run_history(run_dir: str | Path) -> tuple[list[dict[str, Any]], Path]:
    """A run's logs (step + metrics per log) and the file they came from: `log_history.jsonl`, else the newest
    `checkpoint-*/trainer_state.json`. PlotError when the folder has neither."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise PlotError(f"{run_dir} is not a folder; pass a training run's output_dir.")
    jsonl = run_dir / LOG_HISTORY_FILE
    if jsonl.is_file():
        return read_jsonl_records(jsonl), jsonl
    states = sorted(
        (p for p in run_dir.glob("checkpoint-*/trainer_state.json") if _checkpoint_step(p.parent) >= 0),
        key=lambda p: _checkpoint_step(p.parent),
    )
    if states:
        history = json.loads(states[-1].read_text(encoding="utf-8")).get("log_history", [])
        return [record for record in history if isinstance(record, dict)], states[-1]
    raise PlotError(
        f"{run_dir} has no {LOG_HISTORY_FILE} and no checkpoint-*/trainer_state.json, so there are no training logs "
        "to plot; pass a training run's output_dir."
    )


def _series(history: list[dict[str, Any]], key: str) -> tuple[list[int], list[float]]:
    """(steps, values) of one metric; a step logged twice keeps its last value, non-numbers are skipped."""
    by_step: dict[int, float] = {}
    for record in history:
        value, step = record.get(key), record.get("step")
        if isinstance(value, bool) or not isinstance(value, int | float) or not isinstance(step, int | float):
            continue
        if math.isfinite(value):
            by_step[int(step)] = float(value)
    steps = sorted(by_step)
    return steps, [by_step[s] for s in steps]


def _attempts(history: list[dict[str, Any]], prefix: str) -> list[int]:
    pattern = re.compile(re.escape(prefix) + r"acc_t(\d+)")
    found = {int(m.group(1)) for record in history for key in record if (m := pattern.fullmatch(key))}
    return sorted(found)


def save_learning_curves(history: list[dict[str, Any]], path: str | Path, title: str = "") -> Path | None:
    """Plot a run's logs (dicts with `step` and metrics) over optimizer steps into `path` (PNG).

    Panels, each only when logged: accuracy per attempt (`selfcorrect/acc_t{k}`, %), Δ / Δ i→c / Δ c→i (%),
    `reward` and `loss`; periodic evaluations (`selfcorrect/eval/*`) are drawn as separate markers in the first two.
    None (with a warning) without matplotlib."""
    plt = _pyplot()
    if plt is None:
        logger.warning("matplotlib is not installed, so no plot was saved (%s); `pip install matplotlib`.", path)
        return None
    from matplotlib.ticker import MaxNLocator

    train, evals = "selfcorrect/", "selfcorrect/eval/"
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    delta_styles = {"delta": ("Δ", "-"), "delta_i2c": ("Δ i→c", "--"), "delta_c2i": ("Δ c→i", ":")}
    panels = []  # (title, y label, [(kind, label, steps, values, color, style)])

    lines = []
    for k in sorted(set(_attempts(history, train)) | set(_attempts(history, evals))):
        color = colors[(k - 1) % len(colors)]
        for prefix, kind, label in ((train, "line", f"acc@t{k}"), (evals, "marker", f"eval acc@t{k}")):
            steps, values = _series(history, f"{prefix}acc_t{k}")
            if steps:
                lines.append((kind, label, steps, [100 * v for v in values], color, "-"))
    if lines:
        panels.append(("accuracy per attempt", "accuracy (%)", lines))

    lines = []
    for i, (key, (label, style)) in enumerate(delta_styles.items()):
        color = colors[(i + 3) % len(colors)]
        for prefix, kind, name in ((train, "line", label), (evals, "marker", f"eval {label}")):
            steps, values = _series(history, f"{prefix}{key}")
            if steps:
                lines.append((kind, name, steps, [100 * v for v in values], color, style))
    if lines:
        panels.append(("self-correction (first → last attempt)", "% of problems", lines))

    for key, name in (("reward", "mean reward"), ("loss", "loss")):
        steps, values = _series(history, key)
        if steps:
            panels.append((name, name, [("line", name, steps, values, colors[0], "-")]))

    count = max(len(panels), 1)
    rows, cols = (1, count) if count <= 2 else ((count + 1) // 2, 2)
    fig, axes = plt.subplots(rows, cols, figsize=(5.2 * cols, 3.6 * rows), squeeze=False)
    axes = list(axes.flat)
    for ax in axes[len(panels) :]:
        ax.set_axis_off()
    if not panels:
        axes[0].text(0.5, 0.5, "no step metrics logged", ha="center", va="center", transform=axes[0].transAxes)
    for ax, (name, ylabel, lines) in zip(axes, panels):
        for kind, label, steps, values, color, style in lines:
            if kind == "line":
                marker = "o" if len(steps) <= 60 else None  # points while they can be told apart
                ax.plot(steps, values, linestyle=style, color=color, label=label, marker=marker, markersize=3)
            else:
                ax.scatter(steps, values, color=color, marker="D", s=36, edgecolors="black", zorder=3, label=label)
        if ylabel == "accuracy (%)":  # from 0, and at least 10 points tall
            ax.set_ylim(0, min(100, max(10, 1.15 * max(max(line[3]) for line in lines))))
        elif name.startswith("self-correction"):  # around 0, at least ±2 points
            ax.axhline(0, color="grey", linewidth=0.8)
            low, high = ax.get_ylim()
            ax.set_ylim(min(low, -2), max(high, 2))
        ax.set_title(name)
        ax.set_xlabel("optimizer step")
        ax.set_ylabel(ylabel)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        if len(lines) > 1:
            ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def save_run_learning_curves(
    run_dir: str | Path, path: str | Path | None = None, history: list[dict[str, Any]] | None = None
) -> Path | None:
    """Draw `run_dir`'s learning curves (default `run_dir/eval/learning_curves.png`) from its logs."""
    if history is None:
        history, _ = read_run_history(run_dir)
    path = Path(path) if path is not None else Path(run_dir) / "eval" / LEARNING_CURVES_FILE
    return save_learning_curves(history, path, title=f"{Path(run_dir).resolve().name}: learning curves")


def main(argv: list[str] | None = None) -> None:
    """`selfcorrect plot RUN_DIR [--output PNG]`: redraw a run's learning curves from its logs."""
    parser = argparse.ArgumentParser(
        prog="selfcorrect plot",
        description="Redraw a training run's learning curves (acc@tk, Δ, reward, loss over optimizer steps) from "
        f"RUN_DIR/{LOG_HISTORY_FILE}, or the newest checkpoint-*/trainer_state.json.",
    )
    parser.add_argument("run_dir", help="the run's output_dir")
    parser.add_argument("--output", default=None, help=f"PNG to write (default RUN_DIR/eval/{LEARNING_CURVES_FILE})")
    args = parser.parse_args(argv)
    history, source = read_run_history(args.run_dir)
    saved = save_run_learning_curves(args.run_dir, args.output, history)
    if saved is None:
        raise PlotError("matplotlib is not installed, so no plot was drawn; `pip install matplotlib`.")
    steps = len({r["step"] for r in history if "step" in r and ("loss" in r or "reward" in r)})
    print(f"saved {saved} ({steps} logged steps from {source})", flush=True)
