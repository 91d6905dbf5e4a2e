"""PNG plots of training curves (matplotlib, headless)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def plot_log_history(log_history: Sequence[dict[str, Any]], keys: Sequence[str], path: Path, title: str) -> Path:
    """Plot each ``key`` of a Trainer ``log_history`` against the step; keys absent from the log are skipped."""
    fig, ax = plt.subplots(figsize=(7, 4))
    plotted = 0
    for key in keys:
        points = [(entry["step"], entry[key]) for entry in log_history if key in entry and "step" in entry]
        if points:
            steps, values = zip(*points, strict=True)
            ax.plot(steps, values, marker="o" if len(points) < 20 else None, label=key)
            plotted += 1
    ax.set_xlabel("step")
    ax.set_title(title)
    if plotted:
        ax.legend()
    ax.grid(alpha=0.3)
    return save_figure(fig, path)


def save_figure(fig, path: Path) -> Path:
    """Write a figure as PNG and free it (every Parley plot goes through here)."""
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
