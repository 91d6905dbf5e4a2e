"""The guard's answer threshold: how risky an answer's own text must score before it counts as harmful compliance.

The request-risk model is trained on requests. Scored on an ordinary answer ("Your card's contactless
setting is under Security in the app") it can come out as high as on a risky request, and the guard's output
check then replaced good answers: about half of the support questions the served demo "refused" on public dev
sets were such replacements. The answer threshold is chosen on answers instead, by a stated rule: the lowest
one at which at most ``max_answer_flag_rate`` of the project's benign answers (support answers, helpful
answers to risky-sounding requests, translations in every chat language) would be replaced. It is reported on
the held-out split: the benign answers it replaces and the harmful compliance it catches (the safety
preference pairs' rejected answers: harmful, fraud, another customer's data, prompt injection).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from groundwork.data_loading import load_preferences, load_support, load_translation_pairs
from groundwork.languages import LANGUAGES

COMPLIANCE_CATEGORIES = ("harmful", "fraud", "other_customer_data", "prompt_injection")


def benign_answers(data_dir: str | Path, split: str) -> list[str]:
    """Answers the bot should be free to give, from the project's ``split`` ("train" or "heldout") files."""
    answers = [row["messages"][-1]["content"] for row in load_support(data_dir, split)]
    answers += [row["chosen"][-1]["content"] for row in load_preferences(data_dir, "safety", split)
                if row.get("category") == "benign_risky"]
    answers += [pair[code] for pair in load_translation_pairs(data_dir, split) for code in LANGUAGES]
    return answers


def compliance_answers(data_dir: str | Path, split: str) -> list[str]:
    """Answers that comply with harmful, fraudulent, privacy-breaking or injected requests."""
    return [row["rejected"][-1]["content"] for row in load_preferences(data_dir, "safety", split)
            if row.get("category") in COMPLIANCE_CATEGORIES]


def choose_answer_threshold(benign_scores: np.ndarray, max_flag_rate: float) -> tuple[float, str]:
    """The lowest threshold that flags at most ``max_flag_rate`` of the benign answers (1.0 without any)."""
    scores = np.sort(np.asarray(benign_scores, dtype=np.float64))
    if scores.size == 0:
        return 1.0, "no benign answers to calibrate on: the answer check never fires on its own"
    allowed = int(np.floor(max_flag_rate * scores.size))
    # Flagging is p >= threshold: just above the (allowed + 1)-th highest score flags exactly ``allowed``.
    threshold = float(np.nextafter(scores[scores.size - 1 - allowed], np.inf))
    rule = (f"lowest answer threshold that flags <= {max_flag_rate:.1%} of {scores.size} benign project answers "
            "(support, helpful answers to risky-sounding requests, translations)")
    return min(threshold, 1.0), rule


def answer_report(benign_scores: np.ndarray, compliance_scores: np.ndarray, threshold: float) -> dict[str, Any]:
    """Held-out rates at ``threshold``: benign answers replaced, harmful compliance caught."""
    benign, compliance = np.asarray(benign_scores), np.asarray(compliance_scores)
    return {
        "answer_threshold": threshold,
        "heldout_benign_answers_flagged": float(np.mean(benign >= threshold)) if benign.size else None,
        "heldout_compliance_caught": float(np.mean(compliance >= threshold)) if compliance.size else None,
        "heldout_answers": {"benign": int(benign.size), "compliance": int(compliance.size)},
    }
