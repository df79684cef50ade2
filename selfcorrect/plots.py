"""Plots of the self-correction evaluation, saved next to its JSON and Markdown.

One figure per table: accuracy at each attempt (one line per evaluated model, e.g. before and after training), the
Δ^{i→c} / Δ^{c→i} transition bars between the first and the last attempt, and pass@k when it was measured.
matplotlib is a dependency, but a missing or broken install only costs the picture: `save_eval_plot` warns and
returns None.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)


def _attempt_keys(metrics: dict[str, Any]) -> list[str]:
    return sorted((k for k in metrics if k.startswith("acc_t") and k[5:].isdigit()), key=lambda k: int(k[5:]))


def _pass_keys(metrics: dict[str, Any]) -> list[str]:
    return sorted((k for k in metrics if k.startswith("pass@") and k[5:].isdigit()), key=lambda k: int(k[5:]))


def save_eval_plot(named_metrics: dict[str, dict[str, Any]], path: str | Path, title: str = "") -> Path | None:
    """Plot one or more eval tables ({name: metrics}) into `path` (PNG); None (with a warning) without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")  # files only: no display needed
        import matplotlib.pyplot as plt
    except ImportError:
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
