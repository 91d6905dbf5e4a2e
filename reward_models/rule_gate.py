"""Answers that a fixed rule calls wrong score at most a cap, whatever the learned reward says.

The audit on the policies' own answers (``dialogue.reward_audit``) found the quality and faithfulness models
ranking two kinds of wrong answer above right ones:

* a translation in the wrong language: the 135M policy's echoes (the request or the untranslated sentence
  handed back in the source language) outscored the right translation about 4 times in 10. The MiniLM
  backbone reads Chinese and the Latin-script languages poorly, and no amount of project pairs taught it which
  language an answer is in. A language identifier reads that reliably, so the reward does not have to learn
  it: the request's target (:func:`groundwork.languages.requested_target`) against the answer's language
  (:func:`groundwork.language_id.detect_language`);
* an answer of bad form (filler only, a repeated sentence or 4-gram, the request echoed back:
  :func:`groundwork.answer_form.bad_form`; never a refusal), which the composite already penalizes but the
  per-objective scores still paid.

For each objective in the caps, such an answer's normalized score becomes at most the cap. Answers that pass
keep the learned score, which still has to tell a faithful translation from a garbled one.

The audit's notion of a right answer uses the same language and form rules, so this cap raises the audit
partly by construction; its chrF half for translations and its KB-fact half for support answers are still the
learned models' job (and :mod:`reward_models.grounding`'s). DeepSeek-R1's language-consistency reward is the
same idea for reasoning traces.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from groundwork.answer_form import bad_form
from groundwork.chat_format import last_user_text
from groundwork.language_id import detect_language
from groundwork.languages import requested_target

META_KEY = "rule_cap"
# The objectives the rule checks adjust (this cap and reward_models.grounding); safety is left alone: it tells a
# refusal from a compliance, in any language, and a short refusal is often the right answer.
RULE_OBJECTIVES = ("quality", "faithfulness")


def wrong_language(prompt: Any, response: str) -> bool:
    """Whether ``prompt`` asks for a translation and ``response`` is not in the requested language."""
    target = requested_target(last_user_text(prompt))
    if target is None or not (response or "").strip():
        return False
    return detect_language(response)[0] != target


def wrong_by_rule(prompt: Any, response: str) -> bool:
    """A translation in the wrong language, or an answer of bad form."""
    return wrong_language(prompt, response) or bad_form(response or "", last_user_text(prompt))


def cap_rule_failures(scores: Mapping[str, list[float]], items: Sequence[tuple[Any, str, Any]],
                      caps: Mapping[str, float]) -> dict[str, list[float]]:
    """``scores`` (objective -> normalized values aligned with ``items``) with each objective in ``caps``
    limited to its cap on rows :func:`wrong_by_rule`; other objectives and rows unchanged."""
    capped = {objective: values for objective, values in scores.items() if objective in caps}
    if not capped:
        return dict(scores)
    flags = [wrong_by_rule(prompt, response) for prompt, response, _ in items]
    if not any(flags):
        return dict(scores)
    out = dict(scores)
    for objective, values in capped.items():
        cap = caps[objective]
        out[objective] = [min(v, cap) if flag else v for v, flag in zip(values, flags, strict=True)]
    return out
