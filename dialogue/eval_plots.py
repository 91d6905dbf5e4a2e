"""PNG plots for the evaluation report."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from groundwork.judge import RATES
from groundwork.plots import plt, save_figure

OBJECTIVE_KEYS = ("quality_mean", "safety_mean", "faithfulness_mean", "composite_mean")


def plot_objective_bars(report: dict[str, Any], path: Path) -> Path:
    """Grouped bars: per-objective mean normalized reward for each model."""
    names = [n for n in report if not n.startswith("_") and n not in ("system", "reward_audit_min")]
    fig, ax = plt.subplots(figsize=(8, 4))
    width = 0.8 / max(len(names), 1)
    for i, name in enumerate(names):
        values = [report[name].get(k) or 0.0 for k in OBJECTIVE_KEYS]
        ax.bar([x + i * width for x in range(len(OBJECTIVE_KEYS))], values, width, label=name)
    ax.set_xticks([x + width * (len(names) - 1) / 2 for x in range(len(OBJECTIVE_KEYS))])
    ax.set_xticklabels([k.removesuffix("_mean") for k in OBJECTIVE_KEYS])
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_ylabel("mean normalized reward")
    ax.set_title("Held-out reward per objective")
    ax.legend()
    return save_figure(fig, path)


def plot_judge_rates(report: dict[str, Any], path: Path) -> Path:
    """Grouped bars of the judge's rates per model, whiskers at the template-bootstrap 95% interval."""
    names = [n for n in report if not n.startswith("_") and n not in ("system", "reward_audit_min")]
    keys = [k for k in RATES if any(report[n].get(k) is not None for n in names)]
    fig, ax = plt.subplots(figsize=(8, 4))
    width = 0.8 / max(len(names), 1)
    for i, name in enumerate(names):
        values = [report[name].get(k) or 0.0 for k in keys]
        low = [v - report[name].get(f"{k}_ci_low", v) for v, k in zip(values, keys, strict=True)]
        high = [report[name].get(f"{k}_ci_high", v) - v for v, k in zip(values, keys, strict=True)]
        ax.bar([x + i * width for x in range(len(keys))], values, width, yerr=[low, high], capsize=3, label=name)
    ax.set_xticks([x + width * (len(names) - 1) / 2 for x in range(len(keys))])
    ax.set_xticklabels([k.removesuffix("_rate").replace("_", " ") for k in keys], fontsize=8)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("rate (95% interval over templates)")
    ax.set_title("Rule-based judge on held-out prompts")
    ax.legend()
    return save_figure(fig, path)


def plot_reward_distributions(composites: dict[str, list[float]], path: Path) -> Path:
    """Overlaid histograms of the per-prompt composite reward of each model."""
    fig, ax = plt.subplots(figsize=(7, 4))
    for name, values in composites.items():
        ax.hist(values, bins=24, alpha=0.45, label=name)
    ax.set_xlabel("composite reward (normalized)")
    ax.set_ylabel("held-out prompts")
    ax.set_title("Composite reward distribution")
    ax.legend()
    return save_figure(fig, path)


def plot_ppo_curves(log_path: Path, path: Path) -> Path:
    """Training reward curves over PPO steps, from ``runs/<run>/ppo/log.jsonl``."""
    entries = [json.loads(line) for line in log_path.read_text(encoding="utf-8").splitlines() if line.strip()]
    keys = ("objective/scores", "reward/quality_mean", "reward/safety_mean", "reward/faithfulness_mean",
            "objective/kl")
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for key in keys:
        points = [(e["step"], e[key]) for e in entries if key in e]
        if points:
            axis = axes[1] if key == "objective/kl" else axes[0]
            axis.plot(*zip(*points, strict=True), label=key)
    axes[0].set_title("PPO rewards")
    axes[1].set_title("KL to reference")
    for axis in axes:
        axis.set_xlabel("PPO step")
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    return save_figure(fig, path)
