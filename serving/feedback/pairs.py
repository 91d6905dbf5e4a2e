"""Turn stored feedback into TRL training rows: preference pairs and unpaired (KTO) examples.

Preference pairs (conversational ``prompt`` / ``chosen`` / ``rejected``) come from three sources, all
deterministic for a given database (everything is ordered by row ids), in this order of precedence:

* ``correction``: a rater who did not like an answer (no like, no rating of 4-5) and wrote a better
  one gives ``chosen`` = the correction, ``rejected`` = the answer.
* ``another_answer``: a rater asked for a second sample of an answer and said which of the two is better.
* ``like_vs_dislike`` / ``rating``: two answers to the same prompt (same text after Unicode, case and
  whitespace normalisation). An answer's like state is the sign of likes minus dislikes over its
  raters; its rating is the raters' mean. A liked answer beats a disliked one; when like states do not
  decide (equal, or one answer has none) a higher mean rating does. Ties and contradictions (liked but
  rated lower) give no pair.

A pair that a source of higher precedence already gave, either way round, is dropped. Every pair carries
``objective`` and ``reason``: the reason a rater gave for disliking the rejected answer (for a correction:
the correcting rater's; for a choice: the one given with it, else the chooser's dislike reason on the
rejected answer; for a comparison: the rejected answer's most frequent reason) and its objective from
:data:`serving.feedback.reasons.REASONS`, ``quality`` without a reason.

Unpaired rows (:func:`unpaired_rows`, TRL's KTO format ``prompt`` / ``completion`` / ``label``) keep every
single judgement: each rater's like or dislike (or, without one, a rating of 4-5 or 1-2) of an answer, and
each correction as a desirable completion.

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

from groundwork.sections.serve import DEFAULT_MAX_PAIRS_PER_PROMPT  # the recipe key's default (serve section)
from serving.feedback.pii import redact, redact_obj
from serving.feedback.reasons import REASONS, main_reason, objective_of


@dataclass(frozen=True)
class Rating:
    """One rater's feedback on an answer."""

    feedback_id: int
    like: bool | None
    rating: int | None
    correction: str | None
    reason: str | None = None

    @property
    def label(self) -> bool | None:
        """Desirable (True) or not (False) for KTO: the like, else a rating of 4-5 or 1-2; None if neither."""
        if self.like is not None:
            return self.like
        if self.rating is not None and self.rating != 3:
            return self.rating >= 4
        return None


@dataclass(frozen=True)
class RatedAnswer:
    """An assistant answer, the conversation before it, and all feedback on it."""

    message_id: int
    conversation_id: int
    prompt: list[dict[str, str]]
    content: str
    ratings: tuple[Rating, ...]
    context: str | None = None  # the KB passages the answer was grounded on
    variant_of: int | None = None  # set for an "another answer" sample: the answer it is an alternative to

    @property
    def like_state(self) -> int:
        net = sum(1 if r.like else -1 for r in self.ratings if r.like is not None)
        return (net > 0) - (net < 0)

    @property
    def mean_rating(self) -> float | None:
        values = [r.rating for r in self.ratings if r.rating is not None]
        return sum(values) / len(values) if values else None

    @property
    def reason(self) -> str | None:
        """The most frequent dislike reason the raters gave (None without any)."""
        return main_reason(r.reason for r in self.ratings)


@dataclass(frozen=True)
class Choice:
    """A rater's pick between an answer and its alternative sample ("another answer")."""

    comparison_id: int
    original: RatedAnswer
    alternative: RatedAnswer
    preferred: str  # "original" or "alternative"
    reason: str | None  # what was wrong with the rejected one, if the rater said


def context_of(citations: Any) -> str | None:
    """The KB text an answer was grounded on, from its stored citations (as the chat service joins them)."""
    if not isinstance(citations, list):
        return None
    parts = [
        f"{c.get('title', '')}: {c['text']}" if c.get("title") else str(c["text"])
        for c in citations
        if isinstance(c, dict) and isinstance(c.get("text"), str) and c["text"].strip()
    ]
    return "\n\n".join(parts) or None


def normalize_text(text: str) -> str:
    """Text as compared for "same prompt" and "same answer": NFKC, case-folded, whitespace collapsed."""
    return re.sub(r"\s+", " ", unicodedata.normalize("NFKC", text)).strip().casefold()


def prompt_key(prompt: list[dict[str, str]]) -> tuple[tuple[str, str], ...]:
    return tuple((m["role"], normalize_text(m["content"])) for m in prompt)


def _has_user_turn(answer: RatedAnswer) -> bool:
    return any(m["role"] == "user" for m in answer.prompt)


def _prompt(prompt: list[dict[str, str]]) -> list[dict[str, str]]:
    return [{"role": m["role"], "content": redact(m["content"])} for m in prompt]


def _tags(reason: str | None, context: str | None) -> dict[str, Any]:
    """Every row has the same keys (null when unknown), so a datasets schema does not depend on row order."""
    return {
        "objective": objective_of(reason),
        "reason": reason,
        "aspect": None if reason is None else REASONS[reason].aspect,
        "context": redact_obj(context) if context else None,
    }


def _row(
    prompt: list[dict[str, str]],
    chosen: str,
    rejected: str,
    source: str,
    chosen_id: str,
    rejected_id: str,
    reason: str | None = None,
    context: str | None = None,
) -> dict[str, Any]:
    return {
        "prompt": _prompt(prompt),
        "chosen": [{"role": "assistant", "content": redact(chosen)}],
        "rejected": [{"role": "assistant", "content": redact(rejected)}],
        "source": source,
        "chosen_id": chosen_id,
        "rejected_id": rejected_id,
        **_tags(reason, context),
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
                    r.reason,
                    answer.context,
                )
            )
    return rows


def choice_pairs(choices: Iterable[Choice]) -> list[dict[str, Any]]:
    """The preferred one of an answer and its alternative sample vs the other."""
    rows = []
    for c in sorted(choices, key=lambda c: c.comparison_id):
        if not _has_user_turn(c.original) or normalize_text(c.original.content) == normalize_text(
            c.alternative.content
        ):
            continue
        chosen, rejected = (c.original, c.alternative) if c.preferred == "original" else (c.alternative, c.original)
        rows.append(
            _row(
                c.original.prompt,
                chosen.content,
                rejected.content,
                "another_answer",
                f"message:{chosen.message_id}",
                f"message:{rejected.message_id}",
                c.reason,
                c.original.context,
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
                    rejected.reason,
                    rejected.context or chosen.context,
                )
            )
            emitted += 1
    return rows


def build_pairs(
    answers: Iterable[RatedAnswer],
    max_pairs_per_prompt: int = DEFAULT_MAX_PAIRS_PER_PROMPT,
    choices: Iterable[Choice] = (),
) -> list[dict[str, Any]]:
    """Correction pairs, then "another answer" choices, then comparison pairs.

    A pair of the same two answers to the same prompt (in either order) is kept once, from the first source.
    """
    answers = list(answers)
    seen: set[tuple[Any, ...]] = set()
    out = []
    rows = correction_pairs(answers) + choice_pairs(choices) + comparison_pairs(answers, max_pairs_per_prompt)
    for row in rows:
        key = (
            prompt_key(row["prompt"]),
            frozenset((normalize_text(row["chosen"][0]["content"]), normalize_text(row["rejected"][0]["content"]))),
        )
        if key not in seen:
            seen.add(key)
            out.append(row)
    return out


def unpaired_rows(answers: Iterable[RatedAnswer]) -> list[dict[str, Any]]:
    """TRL KTO rows (``prompt``, ``completion``, ``label``): every rater's verdict on an answer, and corrections.

    ``label`` is the like (or a rating of 4-5 / 1-2 without one); a correction is a desirable completion of
    the same prompt. Rows also carry ``source``, ``id``, ``objective``/``reason`` (a dislike's reason, else
    null) and ``context`` (KB text) when there is one.
    """
    rows = []
    for answer in sorted(answers, key=lambda a: a.message_id):
        if not _has_user_turn(answer):
            continue
        for r in sorted(answer.ratings, key=lambda r: r.feedback_id):
            label = r.label
            if label is not None:
                source = "rating" if r.like is None else ("like" if r.like else "dislike")
                reason = None if label else r.reason
                rows.append(_unpaired(answer, answer.content, label, source, f"feedback:{r.feedback_id}", reason))
            if r.correction is not None and normalize_text(r.correction) != normalize_text(answer.content):
                rows.append(_unpaired(answer, r.correction, True, "correction", f"feedback:{r.feedback_id}", None))
    return rows


def _unpaired(
    answer: RatedAnswer, completion: str, label: bool, source: str, row_id: str, reason: str | None
) -> dict[str, Any]:
    row = {
        "prompt": _prompt(answer.prompt),
        "completion": [{"role": "assistant", "content": redact(completion)}],
        "label": label,
        "source": source,
        "id": row_id,
        "message_id": f"message:{answer.message_id}",
        **_tags(reason, answer.context),
    }
    if reason is None:
        row["objective"] = None  # a like or rating says nothing about which objective
    return row
