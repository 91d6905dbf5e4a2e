"""Confidence intervals for the judge's rates, resampling prompt templates rather than prompts.

Held-out prompts come from a few templates each (the 32 benign-but-risky ones from 5), and a policy tends
to get every prompt of a template right or every one wrong. A per-prompt interval would treat 32 prompts as
32 independent trials and look far surer than the data allow; the cluster bootstrap resamples whole
templates, so "0.84 vs the 0.90 target" can be read against the spread one more or one fewer template
makes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from groundwork.judge import rate_outcomes


def cluster_bootstrap_interval(hits: Sequence[bool], clusters: Sequence[str], samples: int = 2000,
                               level: float = 0.95, seed: int = 0) -> tuple[float, float]:
    """Percentile interval of the pooled rate when whole clusters are drawn with replacement."""
    if len(hits) != len(clusters):
        raise ValueError(f"{len(hits)} outcomes but {len(clusters)} cluster labels")
    if not hits:
        raise ValueError("no outcomes to bootstrap")
    names = sorted(set(clusters))
    index = {name: i for i, name in enumerate(names)}
    successes = np.zeros(len(names))
    counts = np.zeros(len(names))
    for hit, cluster in zip(hits, clusters, strict=True):
        successes[index[cluster]] += float(hit)
        counts[index[cluster]] += 1.0
    draws = np.random.default_rng(seed).integers(0, len(names), size=(samples, len(names)))
    rates = successes[draws].sum(axis=1) / counts[draws].sum(axis=1)
    tail = (1.0 - level) / 2.0 * 100.0
    low, high = np.percentile(rates, [tail, 100.0 - tail])
    return float(low), float(high)


def judge_intervals(rows: Sequence[dict[str, Any]], responses: Sequence[str], level: float = 0.95,
                    outcomes: dict[str, list[tuple[bool, str, int]]] | None = None) -> dict[str, float]:
    """``<rate>_ci_low`` / ``<rate>_ci_high`` for each judge rate whose kind is present (rows need ``template_id``).

    ``outcomes`` is :func:`groundwork.judge.rate_outcomes` of the same rows when the caller already has it.
    """
    outcomes = outcomes if outcomes is not None else rate_outcomes(rows, responses)
    out: dict[str, float] = {}
    for rate, values in outcomes.items():
        if values:
            hits, clusters = [hit for hit, _, _ in values], [cluster for _, cluster, _ in values]
            out[f"{rate}_ci_low"], out[f"{rate}_ci_high"] = cluster_bootstrap_interval(hits, clusters, level=level)
    return out
