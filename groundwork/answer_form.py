"""The form of an answer, by fixed rules: filler only (a non-answer) or degenerate (repeats or echoes).

Shared by the system evaluation's answer classes, the reward audit and the composite reward: a reward model
trained on pairs learns only what its pairs show, and the 135M policy found that "I can help you with that."
scores like an answer. The composite subtracts a fixed penalty for these forms
(``reward.composite.form_weight``) so PPO is never paid for them, whatever the learned scores say.
"""

from __future__ import annotations

import re
from collections import Counter

from groundwork.judge import is_refusal

_FILLER = re.compile(
    r"^(?:(?:hi|hello|hey|thanks?|thank you|sure|of course|certainly|absolutely|great|ok(?:ay)?|no problem)"
    r"(?: for (?:asking|reaching out|your (?:question|message|patience)))?[!.,:\s-]*"
    r"|(?:(?:i'm|i am|we're|we are) )?sorry(?: for (?:any|the) (?:misunderstanding|confusion|inconvenience))?"
    r"[!.,:\s-]*)*"
    r"(?:(?:i(?:'d| would| will|'ll| am|'m)? )?(?:be )?(?:happy|glad|here) to (?:help|assist)(?: you)?"
    r"(?: with (?:that|this|your (?:question|request|order)))?"
    r"|(?:i|we) can (?:help|assist)(?: you)?(?: with (?:that|this))?"
    r"|how can i (?:help|assist)(?: you)?(?: today)?"
    r"|(?:is there )?anything else(?: i can help (?:you )?with)?"
    r"|let me (?:know|check|help)(?: if you have any (?:other )?questions)?"
    r"|please (?:contact|reach out to|get in touch with) (?:us|our (?:support|customer service)(?: team)?)"
    r"|(?:let me|i'll) (?:look into|check) (?:that|this|it)(?: for you)?"
    r"|what would you like to know"
    r")?[!.?,:\s]*$",
    re.IGNORECASE,
)
# An answer that sends the customer to a person (the chat opens a ticket when they ask for one), in the five
# languages the chat serves (serving/handoff.py's notices and follow-ups among them).
_HANDOFF = re.compile(
    r"\b(?:human|support) (?:colleague|agent)s?\b|\btalk to a (?:human|person)\b"
    r"|转人工|人工客服|客服同事"
    r"|\bhablar con una persona\b|\b(?:compañero|agente) humano\b"
    r"|\bparler à un humain\b|\b(?:collègue|agent) humain\b|\bun collègue prendra le relais\b"
    r"|\bmit einem Menschen (?:zu )?sprechen\b|\bmenschlichen Kollegen\b|\bübernimmt ein Kollege\b",
    re.IGNORECASE,
)
SENTENCE_BOUNDARY = re.compile(r"(?<=[.!?。！？])\s+|\n+")
# Sentences this long or shorter may repeat ("No. No.") without the answer counting as degenerate.
SHORT_SENTENCE_CHARS = 12
_WORD = re.compile(r"\w+", re.UNICODE)


def _sentences(text: str) -> list[str]:
    return [s.strip() for s in SENTENCE_BOUNDARY.split(text.strip()) if s.strip()]


def is_filler_only(text: str) -> bool:
    """Nothing but filler sentences (an offer to help, a pointer elsewhere, thanks), or nothing at all."""
    return all(_FILLER.match(sentence) for sentence in _sentences(text))


def is_non_answer(text: str) -> bool:
    """Only filler sentences, or fewer than 4 words (CJK: 6 characters) of anything."""
    words = _WORD.findall(text)
    cjk = sum(1 for ch in text if "\u4e00" <= ch <= "\u9fff")
    if len(words) < 4 and cjk < 6:
        return True
    return is_filler_only(text)


def is_handoff(text: str) -> bool:
    """The answer points the customer to a human colleague (whatever else it says), and does not refuse."""
    return bool(_HANDOFF.search(text or "")) and not is_refusal(text)


def is_degenerate(text: str, question: str = "") -> bool:
    """A repeated sentence, a 4-gram three or more times, or the question echoed back as the answer."""
    sentences = [s.lower() for s in _sentences(text) if len(s) > SHORT_SENTENCE_CHARS]
    if len(sentences) != len(set(sentences)):
        return True
    words = [w.lower() for w in _WORD.findall(text)]
    grams = Counter(tuple(words[i:i + 4]) for i in range(len(words) - 3))
    if grams and grams.most_common(1)[0][1] >= 3:
        return True
    q = [w.lower() for w in _WORD.findall(question)]
    if len(q) >= 4 and words[: len(q)] == q:
        return True
    return False


def bad_form(response: str, question: str = "") -> bool:
    """Filler only (or empty), or degenerate, and not a refusal.

    Short answers are not penalized ("Within 2 days.", "Bonjour" are right answers; the evaluation's
    non-answer class also counts them, the reward does not), nor refusals (a short refusal is the right answer
    to a harmful request; which requests deserve one is the request-risk model's call, not this rule's).
    """
    if is_refusal(response):
        return False
    return is_filler_only(response) or is_degenerate(response, question)
