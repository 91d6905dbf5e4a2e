"""A support answer that is only filler gets the way to a human added, in the customer's language."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from dialogue.answer_classes import classify_answer
from serving.handoff import FILLER_FOLLOW_UP


class ScriptedEngine:
    """Stands in for the model: streams the answer it was given, word by word."""

    def __init__(self, answer: str) -> None:
        self.answer = answer

    def stream(self, messages, context=None, cancel=None, **params) -> Iterator[str]:
        for word in self.answer.split(" "):
            yield word + " "


def _service(tmp_path: Path, answer: str, enabled: bool = True):
    from serve_fixtures import BASE, MODEL

    from serving.server import build_service

    cfg = replace(BASE, db=f"sqlite:///{tmp_path / f'{enabled}-{len(answer)}.db'}", follow_up_filler=enabled)
    return build_service(cfg, MODEL, engine=ScriptedEngine(answer))


@pytest.mark.parametrize("live", [True, False])
def test_filler_is_followed_up_with_the_way_to_a_human(tmp_path: Path, live: bool) -> None:
    from serving.app.service import Session

    service = _service(tmp_path, "I can help you with that.")
    try:
        question = "How do I download my invoice?"
        turn, deltas = service.turn(Session("api"), question, live=live)
        shown = "".join(deltas).strip()
        assert shown == turn.text == "I can help you with that. " + FILLER_FOLLOW_UP["en"]
        assert turn.followed_up and classify_answer(turn.text, question, blocked=False) == "handoff"
        assert service.metrics.pointed_to_human.labels("filler")._value.get() == 1  # counted in /metrics
        german = "Wie kann ich meine Rechnung herunterladen, bitte? Ich finde sie nicht in meinem Konto."
        turn, deltas = service.turn(Session("api"), german, live=live)
        assert "".join(deltas).strip().endswith(FILLER_FOLLOW_UP["de"]) and turn.followed_up
        # A translation is never followed up: "Sure." may be the right translation.
        prompt, _ = service.translation_prompt("Bien sûr.", "en", None)
        turn, deltas = service.turn(Session("api"), "Bien sûr.", prompt=prompt, use_kb=False, detect_handoff=False)
        assert not turn.followed_up and FILLER_FOLLOW_UP["en"] not in "".join(deltas)
    finally:
        service.store.close()


def test_answers_with_substance_and_the_switch_off_are_left_alone(tmp_path: Path) -> None:
    from serving.app.service import Session

    for answer, enabled in (("Invoices are on the Orders page of your account.", True),
                            ("I can help you with that.", False)):
        service = _service(tmp_path, answer, enabled)
        try:
            turn, deltas = service.turn(Session("api"), "How do I download my invoice?", live=True)
            assert "".join(deltas).strip() == turn.text == answer and not turn.followed_up
        finally:
            service.store.close()
