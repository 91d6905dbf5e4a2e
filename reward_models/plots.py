"""PNGs of a reward run: train/eval accuracy over steps and chosen-vs-rejected score histograms."""

from __future__ import annotations

from pathlib import Path

from groundwork.plots import plot_log_history, plt, save_figure


def plot_accuracy(log_history: list[dict], path: Path, objective: str) -> Path:
    return plot_log_history(log_history, ["accuracy", "eval_accuracy"], path, f"{objective} reward: pairwise accuracy")


def plot_score_distributions(sets: dict[str, tuple[list[float], list[float]]], path: Path, objective: str) -> Path:
    """One panel per held-out set: histograms of the chosen and the rejected answers' normalized scores."""
    fig, axes = plt.subplots(1, max(1, len(sets)), figsize=(5 * max(1, len(sets)), 3.6), squeeze=False)
    for ax, (name, (chosen, rejected)) in zip(axes[0], sets.items(), strict=False):
        bins = 30
        ax.hist(chosen, bins=bins, alpha=0.6, label="chosen", color="tab:green")
        ax.hist(rejected, bins=bins, alpha=0.6, label="rejected", color="tab:red")
        ax.set_title(f"{objective} / {name}", fontsize=9)
        ax.set_xlabel("normalized score")
        ax.legend()
    return save_figure(fig, path)
