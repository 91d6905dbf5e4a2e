"""Turn stored feedback into TRL preference pairs (conversational ``prompt`` / ``chosen`` / ``rejected``).

Two sources of pairs, both deterministic for a given database (everything is ordered by row ids):

* ``correction``: a rater who did not like an answer (no like, no rating of 4-5) and wrote a better
  one gives ``chosen`` = the correction, ``rejected`` = the answer.
* ``like_vs_dislike`` / ``rating``: two answers to the same prompt (same text after Unicode, case and
  whitespace normalisation). An answer's like state is the sign of likes minus dislikes over its
  raters; its rating is the raters' mean. A liked answer beats a disliked one; when like states do not
  decide (equal, or one answer has none) a higher mean rating does. Ties and contradictions (liked but
  rated lower) give no pair.

Every text is passed through :func:`serving.feedback.pii.redact` again on the way out, so a row
stored before a detector improved cannot leak into a training file.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from itertools import combinations
from typing import Any

from .pii import redact

DEFAULT_MAX_PAIRS_PER_PROMPT = 100  # a popular prompt ("hi") must not flood the reward data


@dataclass(frozen=True)
class Rating:
    """One rater's feedback on an answer."""

    feedback_id: int
    like: bool | None
    rating: int | None
    correction: str | None


@dataclass(frozen=True)
class RatedAnswer:
    """An assistant answer, the conversation before it, and all feedback on it."""

    message_id: int
    conversation_id: int
    prompt: list[dict[str, str]]
    content: str
    ratings: tuple[Rating, ...]

    @property
    def like_state(self) -> int:
        net = sum(1 if r.like else -1 for r in self.ratings if r.like is not None)
        return (net > 0) - (net < 0)

    @property
    def mean_rating(self) -> float | None:
        values = [r.rating for r in self.ratings if r.rating is not None]
        return sum(values) / len(values) if values else None


def normalize_text(text: str) -> str:
    """Text as compared for "same prompt" and "same answer": NFKC, case-folded, whitespace collapsed."""
    return re.sub(r"\s+", " ", unicodedata.normalize("NFKC", text)).strip().casefold()


def prompt_key(prompt: list[dict[str, str]]) -> tuple[tuple[str, str], ...]:
    return tuple((m["role"], normalize_text(m["content"])) for m in prompt)


def _has_user_turn(answer: RatedAnswer) -> bool:
    return any(m["role"] == "user" for m in answer.prompt)


def _row(
    prompt: list[dict[str, str]], chosen: str, rejected: str, source: str, chosen_id: str, rejected_id: str
) -> dict[str, Any]:
    return {
        "prompt": [{"role": m["role"], "content": redact(m["content"])} for m in prompt],
        "chosen": [{"role": "assistant", "content": redact(chosen)}],
        "rejected": [{"role": "assistant", "content": redact(rejected)}],
        "source": source,
        "chosen_id": chosen_id,
        "rejected_id": rejected_id,
    }


def correction_pairs(answers: Iterable[RatedAnswer]) -> list[dict[str, Any]]:
    """Disliked (or unliked, low- or un-rated) answer vs the rater's corrected answer."""
    rows = []
    for answer in sorted(answers, key=lambda a: a.message_id):
        if not _has_user_turn(answer):
            continue
        for r in sorted(answer.ratings, key=lambda r: r.feedback_id):
            if r.correction is None or r.like is True or (r.rating is not None and r.rating >= 4):
                continue
            if normalize_text(r.correction) == normalize_text(answer.content):
                continue
            rows.append(
                _row(
                    answer.prompt,
                    r.correction,
                    answer.content,
                    "correction",
                    f"feedback:{r.feedback_id}",
                    f"message:{answer.message_id}",
                )
            )
    return rows


def compare(a: RatedAnswer, b: RatedAnswer) -> tuple[int, str]:
    """(+1 if a is preferred, -1 if b is, 0 for a tie or a contradiction; the deciding signal)."""
    la, lb = a.like_state, b.like_state
    like_cmp = (la > lb) - (la < lb) if la and lb else 0
    ra, rb = a.mean_rating, b.mean_rating
    rating_cmp = (ra > rb) - (ra < rb) if ra is not None and rb is not None else 0
    if like_cmp and rating_cmp and like_cmp != rating_cmp:
        return 0, "contradiction"
    if like_cmp:
        return like_cmp, "like_vs_dislike"
    return rating_cmp, "rating"


def comparison_pairs(
    answers: Iterable[RatedAnswer], max_pairs_per_prompt: int = DEFAULT_MAX_PAIRS_PER_PROMPT
) -> list[dict[str, Any]]:
    """Better vs worse answer to the same normalised prompt."""
    groups: dict[tuple[tuple[str, str], ...], list[RatedAnswer]] = {}
    for answer in sorted(answers, key=lambda a: a.message_id):
        if _has_user_turn(answer):
            groups.setdefault(prompt_key(answer.prompt), []).append(answer)
    rows = []
    for group in sorted(groups.values(), key=lambda g: g[0].message_id):
        emitted = 0
        for a, b in combinations(group, 2):
            if emitted >= max_pairs_per_prompt:
                break
            winner, source = compare(a, b)
            if winner == 0 or normalize_text(a.content) == normalize_text(b.content):
                continue
            chosen, rejected = (a, b) if winner > 0 else (b, a)
            rows.append(
                _row(
                    group[0].prompt,
                    chosen.content,
                    rejected.content,
                    source,
                    f"message:{chosen.message_id}",
                    f"message:{rejected.message_id}",
                )
            )
            emitted += 1
    return rows


def build_pairs(
    answers: Iterable[RatedAnswer], max_pairs_per_prompt: int = DEFAULT_MAX_PAIRS_PER_PROMPT
) -> list[dict[str, Any]]:
    """Correction pairs, then comparison pairs; exact duplicates (same prompt, chosen, rejected) dropped."""
    answers = list(answers)
    seen: set[tuple[Any, ...]] = set()
    out = []
    for row in correction_pairs(answers) + comparison_pairs(answers, max_pairs_per_prompt):
        key = (
            prompt_key(row["prompt"]),
            normalize_text(row["chosen"][0]["content"]),
            normalize_text(row["rejected"][0]["content"]),
        )
        if key not in seen:
            seen.add(key)
            out.append(row)
    return out
