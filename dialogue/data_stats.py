"""Row counts of the project data, per family and split (for the README and closing notes)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from groundwork.data_loading import (
    OBJECTIVES,
    SPLITS,
    BadRows,
    load_kb,
    load_ppo_prompts,
    load_preferences,
    load_support,
    load_translation_pairs,
)


def data_stats(data_dir: str | Path) -> dict[str, Any]:
    """Counts of every project data file; raises DataError when a file is missing."""
    bad = BadRows("error")
    kb = load_kb(data_dir, bad)
    stats: dict[str, Any] = {"kb_articles": len(kb), "kb_facts": sum(len(a["facts"]) for a in kb)}
    for split in SPLITS:
        stats[f"support/{split}"] = len(load_support(data_dir, split, bad))
        stats[f"translation/{split} (parallel rows = pairs per language pair)"] = len(
            load_translation_pairs(data_dir, split, bad))
        for objective in OBJECTIVES:
            rows = load_preferences(data_dir, objective, split, bad)
            stats[f"preferences/{objective}/{split}"] = len(rows)
            if objective == "safety":
                stats[f"preferences/safety/{split} by category"] = dict(Counter(r.get("category") for r in rows))
        prompts = load_ppo_prompts(data_dir, split, bad)
        stats[f"ppo/{split}"] = len(prompts)
        stats[f"ppo/{split} by kind"] = dict(Counter(r.get("kind") for r in prompts))
    return stats
