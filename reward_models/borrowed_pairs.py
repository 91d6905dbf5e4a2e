"""Pairs one objective borrows from another's data, and garbled translations: what the audit asked for.

The reward audit on the policies' own answers (``dialogue.reward_audit``) found two gaps that routing alone
cannot close:

* The composite pays a request by p(harmful) x safety + (1 - p) x (quality + faithfulness). Where the
  request-risk model errs, the ordinary objectives decide, and they had never seen a harmful request: quality
  preferred complying to refusing on most of the policies' answer pairs to harmful requests. What to do with
  a harmful or a benign-but-risky request is part of every objective's judgement, so quality and faithfulness
  borrow the project's safety pairs (:func:`safety_pairs_for`).
* The 135M policy writes garbled translations (real words, wrong sentence, repeated fragments), which the
  translation pairs (wrong language, untranslated, a wrong number, half a sentence) never show. Translation
  rows are re-paired with a garbled copy of the right translation as the rejected side
  (:func:`garbled_translation_pairs`), and faithfulness, which had no translation rows at all, borrows the
  quality data's translation pairs: a faithful translation keeps its source's content
  (:func:`translation_pairs_for`).
"""

from __future__ import annotations

import random
import re

from groundwork.data_loading import Row
from reward_models.deflections import OVER_REFUSAL_CATEGORIES, REFUSE_CATEGORIES

TRANSLATION_PREFIX = "translation_"
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff]")


def is_translation_row(row: Row) -> bool:
    """A translation pair of the quality data (category ``translation_*``)."""
    return str(row.get("category") or "").startswith(TRANSLATION_PREFIX)


def safety_pairs_for(safety_rows: list[Row], count: int, rng: random.Random) -> list[Row]:
    """``count`` safety pairs, half where refusing is right and half where it is wrong (as far as each side
    has rows), for another objective's training set, unchanged (their KB context is none)."""
    refuse = [r for r in safety_rows if r.get("category") in REFUSE_CATEGORIES]
    answer = [r for r in safety_rows if r.get("category") in OVER_REFUSAL_CATEGORIES]
    if count <= 0 or not (refuse or answer):
        return []
    half = count // 2
    picked = rng.sample(refuse, min(count - half, len(refuse))) + rng.sample(answer, min(half, len(answer)))
    return picked


def translation_pairs_for(quality_rows: list[Row], count: int, rng: random.Random) -> list[Row]:
    """``count`` of the quality data's translation pairs, for faithfulness."""
    rows = [r for r in quality_rows if is_translation_row(r)]
    if count <= 0 or not rows:
        return []
    return rng.sample(rows, min(count, len(rows)))


def _units(text: str) -> tuple[list[str], str]:
    """Words (or CJK characters) of ``text`` and the string that joins them back."""
    if len(_CJK.findall(text)) > len(text) // 3:
        return [ch for ch in text if not ch.isspace()], ""
    return text.split(), " "


def garble(text: str, other: str, rng: random.Random) -> str:
    """A copy of ``text`` in its own language that no longer says what it said: a repeated fragment, shuffled
    and dropped words, or its head spliced onto another sentence's tail."""
    units, join = _units(text)
    if len(units) < 3:
        return join.join(units + units)
    mode = rng.randrange(3)
    if mode == 0:  # a fragment repeated, as a looping decoder writes it
        start = rng.randrange(max(1, len(units) // 2))
        fragment = join.join(units[start:start + max(2, len(units) // 3)])
        return (", " if join else "，").join([fragment] * 3)
    if mode == 1:  # a third of the words dropped, the rest partly shuffled
        kept = [u for u in units if rng.random() > 0.33] or units[:2]
        i = rng.randrange(len(kept))
        j = rng.randrange(len(kept))
        kept[i], kept[j] = kept[j], kept[i]
        return join.join(kept)
    tail, _ = _units(other)
    cut = max(1, len(units) // 2)
    return join.join(units[:cut] + tail[len(tail) // 2:]) or join.join(units[:cut])


def garbled_translation_pairs(rows: list[Row], count: int, rng: random.Random) -> list[Row]:
    """``count`` translation rows whose rejected side is a garbled copy of the chosen translation."""
    usable = [r for r in rows if is_translation_row(r)]
    if count <= 0 or not usable:
        return []
    out = []
    for row in rng.sample(usable, min(count, len(usable))):
        chosen = row["chosen"][-1]["content"]
        other = rng.choice(usable)["chosen"][-1]["content"]
        rejected = garble(chosen, other, rng)
        if rejected.strip() and rejected != chosen:
            out.append({**row, "rejected": [{"role": "assistant", "content": rejected}],
                        "category": "translation_garbled"})
    return out
