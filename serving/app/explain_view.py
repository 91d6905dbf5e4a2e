"""The "Why this answer" section under a bot message: the explanation (:mod:`serving.explain`) as a collapsed
Chatbot "thought" (a message with ``metadata.title``; ``status: "done"`` renders it closed).

The section follows the answer in the display list, so it sits in the answer's bubble, under its text; it has
no stored message of its own (a vote on the bubble goes to the answer, the first message of the group).
Tests find it by its title and by the classes ``why-scores``, ``why-guard``, ``why-sources`` and
``why-highlight`` (the highlighted sentence is a ``<mark>``).
"""

from __future__ import annotations

from html import escape
from typing import Any

TITLE = "Why this answer"
DECISIONS = {
    "passed": "passed",
    "input_blocked": "request blocked",
    "output_replaced": "answer replaced",
    "refusal_handed_off": "refusal handed to a human",
    "off": "off",
    "not_checked": "not checked",
}


def is_explanation(message: dict[str, Any]) -> bool:
    """Whether a display message is a "Why this answer" section."""
    return ((message.get("metadata") or {}).get("title") or "") == TITLE


def _signed(value: float) -> str:
    return f"{value:+.2f}"


def explanation_markdown(explanation: dict[str, Any]) -> str:
    """The explanation as the section's Markdown (with a little HTML for classes and the highlight)."""
    lines = []
    scores = explanation.get("scores")
    if scores:
        parts = " · ".join(f"{name} {_signed(scores[name])}" for name in ("quality", "safety", "faithfulness")
                           if name in scores)
        lines.append(f'<span class="why-scores">**Scores**: {parts} · **composite {_signed(scores["composite"])}'
                     "**</span>  ")
        lines.append(f"<small>{escape(explanation['scores_note'])}</small>")
    else:
        lines.append(f'<span class="why-scores">**Scores**: {escape(explanation["scores_note"])}</span>')
    risk = explanation.get("request_risk")
    lines.append("")
    lines.append(f'<span class="why-risk">**Request risk** p(harmful): '
                 f'{"n/a (guard off)" if risk is None else f"{risk:.3f}"}</span>  ')
    guard = explanation["guard"]
    kind = f", response class: {guard['response_class']}" if guard.get("response_class") else ""
    lines.append(f'<span class="why-guard">**Guard**: {DECISIONS.get(guard["decision"], guard["decision"])}'
                 f"{kind}. {escape(guard['summary'])} <small>({escape(guard['reason'])})</small></span>")
    sources = explanation.get("sources") or []
    lines.append("")
    if not sources:
        lines.append('<span class="why-sources">**Sources**: none (no knowledge-base passage was used)</span>')
        return "\n".join(lines)
    lines.append(f'<span class="why-sources">**Sources** (the supporting sentence is '
                 f'{escape(explanation["highlight_method"])})</span>')
    lines.append("")
    for i, source in enumerate(sources, start=1):
        head = f"{i}. **{escape(source['title'])}** (`{escape(str(source['id']))}`)"
        if not source.get("sentence"):
            lines.append(f"{head}: no sentence shares a word with the answer")
            continue
        words = ", ".join(escape(w) for w in source["matched"][:8])
        lines.append(f'{head}: <mark class="why-highlight">{escape(source["sentence"])}</mark> '
                     f"<small>overlap {source['overlap']:.2f}; shared words: {words}</small>")
    return "\n".join(lines)


def explanation_message(explanation: dict[str, Any]) -> dict[str, Any]:
    """A collapsed Chatbot thought holding the explanation."""
    return {"role": "assistant", "content": explanation_markdown(explanation),
            "metadata": {"title": TITLE, "status": "done"}}


def add_explanation(display: list[Any], turn: Any) -> None:
    """Put the turn's explanation under its answer (the newest message of ``display``), when it has one."""
    if turn.explanation is not None:
        display.append(explanation_message(turn.explanation))
