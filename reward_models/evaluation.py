"""Pairwise accuracy and margin of a reward model on held-out preference pairs."""

from __future__ import annotations

from groundwork.data_loading import Row
from reward_models.scorer import Item, RewardScorer


def pair_items(rows: list[Row]) -> tuple[list[Item], list[Item]]:
    """(chosen items, rejected items) for the scorer."""
    chosen = [(r["prompt"], r["chosen"][-1]["content"], r.get("context")) for r in rows]
    rejected = [(r["prompt"], r["rejected"][-1]["content"], r.get("context")) for r in rows]
    return chosen, rejected


def pair_scores(scorer: RewardScorer, objective: str, rows: list[Row], batch_size: int) -> tuple[list, list]:
    """Normalized scores of the chosen and the rejected answer of every pair (one batched pass)."""
    chosen, rejected = pair_items(rows)
    scores = scorer.score(chosen + rejected, batch_size=batch_size)[objective]
    return scores[: len(rows)], scores[len(rows):]


def pairwise_metrics_by_category(rows: list[Row], chosen: list[float], rejected: list[float]) -> dict[str, float]:
    """Accuracy per ``category`` (empty when the rows have none): an overall 0.85 on the safety pairs hid 0.31
    on the benign-but-risky ones, the category PPO then learned to refuse."""
    by_category: dict[str, tuple[list[float], list[float]]] = {}
    for row, c, r in zip(rows, chosen, rejected, strict=True):
        if row.get("category"):
            pair = by_category.setdefault(str(row["category"]), ([], []))
            pair[0].append(c)
            pair[1].append(r)
    return {name: pairwise_metrics(*pair)["accuracy"] for name, pair in sorted(by_category.items())}


def pairwise_metrics(chosen: list[float], rejected: list[float]) -> dict[str, float]:
    """Accuracy (ties count half) and mean margin, in normalized score units."""
    if not chosen:
        return {"pairs": 0, "accuracy": float("nan"), "mean_margin": float("nan")}
    wins = sum(1.0 if c > r else 0.5 if c == r else 0.0 for c, r in zip(chosen, rejected, strict=True))
    margins = [c - r for c, r in zip(chosen, rejected, strict=True)]
    return {
        "pairs": len(chosen),
        "accuracy": round(wins / len(chosen), 4),
        "mean_margin": round(sum(margins) / len(margins), 4),
    }
