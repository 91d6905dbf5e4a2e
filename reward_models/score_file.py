"""``parley reward score``: add quality / safety / faithfulness / composite to every row of a JSONL file.

With a request-risk model (``risk``) each row also gets ``risk`` = p(harmful | prompt), and the composite is
routed by it exactly as PPO's reward is (:func:`~reward_models.lagrange.combine_routed`).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from groundwork.chat_format import last_user_text, normalize_messages
from groundwork.data_loading import BadRows, read_jsonl
from groundwork.sections.reward import CompositeSection
from reward_models.lagrange import combine_routed, form_flags, refusal_flags
from reward_models.scorer import RewardScorer


def score_input_row(obj: dict) -> dict[str, Any]:
    """Validate one input row ``{"prompt": str | messages, "response": str, "context"?: str}``; keep all keys."""
    if "prompt" not in obj:
        raise KeyError("'prompt'")
    normalize_messages(obj["prompt"])
    if not isinstance(obj.get("response"), str):
        raise ValueError("'response' must be a string")
    if obj.get("context") is not None and not isinstance(obj["context"], str):
        raise ValueError("'context' must be a string or null")
    return obj


def score_file(scorer: RewardScorer, input_path: str | Path, output_path: str | Path, composite: CompositeSection,
               batch_size: int = 64, on_bad_row: str = "skip", risk: Any | None = None) -> dict[str, Any]:
    """Score every valid row; malformed rows are reported with file:line and skipped (or raise, per policy)."""
    started = time.time()
    bad = BadRows(on_bad_row)
    rows = read_jsonl(Path(input_path), score_input_row, bad)
    bad.print_summary("reward score input")
    items = [(row["prompt"], row["response"], row.get("context")) for row in rows]
    scores = scorer.score(items, batch_size=batch_size, progress=True)
    lagrange = composite.lagrange_init
    flags = form_flags([last_user_text(row["prompt"]) for row in rows], [row["response"] for row in rows])
    refused = refusal_flags([row["response"] for row in rows])
    if risk is not None:
        from reward_models.risk_model import request_text

        risks = risk.probabilities([request_text(row["prompt"]) for row in rows])
    else:
        risks = [None] * len(rows)
    output = Path(output_path)
    output.parent.mkdir(parents=True, exist_ok=True)
    with open(output, "w", encoding="utf-8") as handle:
        for i, row in enumerate(rows):
            per_objective = {o: round(float(v[i]), 5) for o, v in scores.items()}
            routed = combine_routed(per_objective, risks[i], composite, lagrange, flags[i], refused[i])
            row = {**row, **per_objective, "composite": round(float(routed), 5)}
            if risks[i] is not None:
                row["risk"] = round(float(risks[i]), 5)
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    return {"rows": len(rows), "skipped": len(bad.problems), "problems": bad.problems[:5],
            "seconds": round(time.time() - started, 2)}
