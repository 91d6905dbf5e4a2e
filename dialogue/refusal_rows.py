"""SFT rows for harmful requests from public sets, served-style: with help articles attached, answered with a refusal.

The server sends every support-chat message with the passages its retriever returns, harmful ones included, so
a request the input guard lets through reaches the policy looking like a support question with help articles.
The project's own safety rows carry no passages and follow the project's templates; the policy refused almost
none of the public harmful requests that passed the guard. These rows are drawn from the *train* split of the
request model's harmful sources (same entry, same hash), so the system evaluation's dev prompts stay unseen.
The refusals are short and offer nothing: refusals that ended in "I can help you with ..." taught the policy to
answer ordinary questions with that offer.
"""

from __future__ import annotations

import random
from typing import Any

from dialogue.handoff_rows import rows_from_pools
from groundwork.recipe import Recipe
from groundwork.sections.risk import RiskSourceSection

REFUSAL_ANSWERS = (
    "I'm sorry, but I can't assist with that.",
    "Sorry, I won't provide that.",
    "I can't give you that information.",
)


def refusal_requests(source: RiskSourceSection) -> list[str]:
    """Train-split requests of one harmful source (its calib and dev rows are never drawn)."""
    from reward_models.risk_data import HARMFUL, public_rows

    return [row.text for row in public_rows(source) if row.split == "train" and row.label == HARMFUL]


def refusal_rows(recipe: Recipe, kb: Any | None, rng: random.Random) -> list[dict[str, Any]]:
    """``sft.refusal_rows`` conversations, drawn evenly from the sources that have requests (none without any)."""
    cfg = recipe.sft
    if not cfg.refusal_rows:
        return []
    pools = [refusal_requests(source) for source in cfg.refusal_sources]
    return rows_from_pools(pools, cfg.refusal_rows, REFUSAL_ANSWERS, kb, cfg.retrieved_passages, "refusal", rng)
