"""Why an answer was disliked, and which reward objective that reason speaks to: the one table of it.

A dislike may carry one of these reasons (the UI's reason choice, ``reason`` in ``POST /v1/feedback``).
The export tags every preference pair built from a disliked answer with its reason's objective, and
``parley reward train --feedback`` trains each objective only on the pairs tagged with it. Pairs without
a reason go to :data:`DEFAULT_OBJECTIVE`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from groundwork.data_loading import OBJECTIVES


@dataclass(frozen=True)
class Reason:
    label: str  # what the customer reads
    objective: str  # the reward objective the reason is evidence for
    aspect: str | None = None  # a finer tag inside the objective (kept in the exported rows)


REASONS: dict[str, Reason] = {
    "made_up_fact": Reason("Made-up or wrong fact", "faithfulness"),
    "unhelpful": Reason("Did not answer / unhelpful", "quality"),
    "should_not_answer": Reason("Should not have answered this", "safety", "harmful_answer"),
    "over_refusal": Reason("Refused something that was fine", "safety", "over_refusal"),
    "wrong_language": Reason("Wrong language", "quality", "wrong_language"),
}
REASON_KEYS = tuple(REASONS)
DEFAULT_OBJECTIVE = "quality"

assert {r.objective for r in REASONS.values()} <= set(OBJECTIVES) and DEFAULT_OBJECTIVE in OBJECTIVES


def objective_of(reason: str | None) -> str:
    """The reward objective a reason is tagged with (``quality`` without a reason)."""
    return DEFAULT_OBJECTIVE if reason is None else REASONS[reason].objective


def main_reason(reasons: Iterable[str | None]) -> str | None:
    """The most frequent reason (ties: the one listed first in :data:`REASONS`), or None without any."""
    counts = Counter(r for r in reasons if r is not None)
    if not counts:
        return None
    return max(REASON_KEYS, key=lambda k: (counts.get(k, 0), -REASON_KEYS.index(k)))


def choices() -> list[tuple[str, str]]:
    """(label, key) pairs for a radio button: the browser shows the label, the API takes the key."""
    return [(r.label, key) for key, r in REASONS.items()]
