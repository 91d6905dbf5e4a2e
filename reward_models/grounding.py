"""How much of an answer the KB passages support, read off the words: blended into quality and faithfulness.

The audit on the policies' own answers (``dialogue.reward_audit``, development pool of the fresh11 demo) found
the learned faithfulness model ranking a KB-quoting right answer above a wrong one only 6 times in 10: it
scored fluent, on-topic sentences that the passage does not say ("Pots, pans, and small appliances are
protected against defects by the warranty page.") as high as the passage's own sentence. Two trained MiniLM
layers over a 192-token window do not compare an answer with a passage. The share of the answer's content
bigrams found in the passages (:func:`kb_support`) does: on the same pool it ranks right above wrong 0.94 of
the time (unigrams 0.93, trigrams 0.89). It is the lexical "knowledge precision" used to score grounded
dialogue (FaithDial, BEGIN); BEGIN also shows its weakness, that a paraphrase scores low and a copied but
irrelevant sentence scores high, so the learned score keeps half the weight and quality judges relevance.

Where an item has KB context (given, or inside the conversation's system message, as the reward model reads
it: :func:`reward_models.text.reward_context`) and the answer is in the context's language,
``score = (1 - w) * learned + w * SCALE * (support - 0.5)``; elsewhere (no context, an answer in another
language than the passages, e.g. a Chinese answer grounded on English articles) the learned score stands.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any

from groundwork.language_id import detect_language
from reward_models.text import reward_context

META_KEY = "grounding_weight"
# Maps support in [0, 1] onto [-2, 2], the spread of normalized scores (mean 0, std 1).
SCALE = 4.0
_WORD = re.compile(r"\w+(?:[.,:/-]\w+)*", re.UNICODE)
_STOP = frozenset(
    "a an the is are was were be been to of in on for and or with your you we our us it its this that these those "
    "can will would could should may by as at from not no yes do does if so but i me my".split()
)


def _content_words(text: str) -> list[str]:
    return [w for w in _WORD.findall(text.lower()) if w not in _STOP]


@lru_cache(maxsize=4096)
def _context_bigrams(context: str) -> frozenset[tuple[str, str]]:
    words = _content_words(context)
    return frozenset(zip(words, words[1:], strict=False))


@lru_cache(maxsize=4096)
def _context_language(context: str) -> str:
    return detect_language(context)[0]


def kb_support(response: str, context: str | None) -> float | None:
    """Share of the response's content bigrams that occur in the passages; None where it does not apply (no
    passages, or a response in another language than the passages). A response of fewer than two content
    words states nothing the passages could support: 0."""
    passages = context or ""
    if not passages.strip():
        return None
    words = _content_words(response or "")
    if len(words) < 2:
        return 0.0
    if detect_language(response)[0] != _context_language(passages):
        return None
    bigrams = set(zip(words, words[1:], strict=False))
    return len(bigrams & _context_bigrams(passages)) / len(bigrams)


def blend_grounding(scores: Mapping[str, list[float]], items: Sequence[tuple[Any, str, Any]],
                    weights: Mapping[str, float]) -> dict[str, list[float]]:
    """``scores`` with each objective in ``weights`` blended with the KB support of its answers (see module)."""
    targets = {objective: w for objective, w in weights.items() if objective in scores and w > 0}
    if not targets:
        return dict(scores)
    support = [kb_support(response, reward_context(prompt, context)) for prompt, response, context in items]
    out = dict(scores)
    for objective, weight in targets.items():
        out[objective] = [v if s is None else (1.0 - weight) * v + weight * SCALE * (s - 0.5)
                          for v, s in zip(scores[objective], support, strict=True)]
    return out
