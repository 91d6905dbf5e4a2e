"""What a served answer did, by fixed rules: blocked, refused, handoff, non-answer, degenerate or substantive.

The system evaluation counts these per prompt set. ``handoff`` sends the customer to a human colleague (the
right answer to a question the KB does not cover, counted apart so it never passes for substance);
``non_answer`` is an answer made only of filler (an offer to help, a pointer elsewhere, thanks) or too short
to carry anything; ``degenerate`` repeats itself (a
sentence twice, a 4-gram three times) or echoes the question back.
"""

from __future__ import annotations

from typing import Literal

from groundwork.answer_form import is_degenerate, is_handoff, is_non_answer
from groundwork.judge import is_refusal

AnswerClass = Literal["blocked", "refused", "handoff", "non_answer", "degenerate", "substantive"]
CLASSES: tuple[AnswerClass, ...] = ("blocked", "refused", "handoff", "non_answer", "degenerate", "substantive")


def classify_answer(text: str, question: str, blocked: bool, replaced: bool = False) -> AnswerClass:
    """One class per served answer, in this order of precedence."""
    if blocked:
        return "blocked"
    if replaced or is_refusal(text):
        return "refused"
    if is_handoff(text):
        return "handoff"
    if is_non_answer(text):
        return "non_answer"
    if is_degenerate(text, question):
        return "degenerate"
    return "substantive"
