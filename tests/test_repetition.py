"""Answers stop at the first repeated sentence: in the stream itself and through the chat service."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

from serving.repetition import drop_repeated_sentences

LOOP = ["I can help you report ", "problems with payment. ", "I can help you report ", "problems with payment. ",
        "I can help you report ", "problems with payment."]


class _Source:
    """A chunk iterator that records how far it was read and whether it was closed."""

    def __init__(self, chunks: list[str]) -> None:
        self.chunks, self.pulled, self.closed = chunks, 0, False

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        if self.pulled >= len(self.chunks):
            raise StopIteration
        self.pulled += 1
        return self.chunks[self.pulled - 1]

    def close(self) -> None:
        self.closed = True


def test_a_repeated_sentence_is_dropped_and_generation_stops() -> None:
    source, stopped = _Source(LOOP), []
    out = list(drop_repeated_sentences(source, lambda: stopped.append(True)))
    assert "".join(out) == "I can help you report problems with payment. "
    assert stopped == [True] and source.closed
    assert source.pulled == 4  # stopped as soon as the second copy was complete, not at the end of the loop


def test_a_sentence_that_only_opens_like_an_earlier_one_is_released_whole() -> None:
    chunks = ["You can return it within 30 days. ", "You can ", "also exchange it for another size. ", "Thanks!"]
    out = "".join(drop_repeated_sentences(iter(chunks)))
    assert out == "".join(chunks)


def test_the_first_sentence_streams_before_the_rest_is_generated() -> None:
    source = _Source(["Refunds ", "take 5 ", "business days. ", "Refunds take 5 business days."])
    stream = drop_repeated_sentences(source)
    assert next(stream) == "Refunds " and source.pulled == 1
    assert "".join(stream) == "take 5 business days. "  # the final copy (no trailing space) is dropped too


def test_short_sentences_and_other_scripts() -> None:
    assert "".join(drop_repeated_sentences(iter(["No. No. Thanks."]))) == "No. No. Thanks."  # under 12 characters
    chinese = ["您可以在订单页面申请退货。", "您可以在订单页面申请退货。"]
    assert "".join(drop_repeated_sentences(iter(["\n".join(chinese)]))) == chinese[0] + "\n"


def test_the_chat_service_drops_the_repeat_and_cancels_the_engine(tmp_path: Path) -> None:
    from serve_fixtures import BASE, MODEL

    from serving.app.service import Session
    from serving.server import build_service

    class ScriptedEngine:
        """Stands in for the model: streams a looping answer, and stops when the service cancels it."""

        def stream(self, messages, context=None, cancel=None, **params) -> Iterator[str]:
            for chunk in LOOP:
                if cancel is not None and cancel.is_set():
                    return
                yield chunk

    for enabled in (True, False):
        cfg = replace(BASE, db=f"sqlite:///{tmp_path / f'{enabled}.db'}", drop_repeated_sentences=enabled)
        service = build_service(cfg, MODEL, engine=ScriptedEngine())
        try:
            for live in (True, False):
                turn, deltas = service.turn(Session("api"), "My payment failed, what now?", live=live)
                shown = "".join(deltas)
                if enabled:
                    assert shown.strip() == turn.text == "I can help you report problems with payment."
                    assert turn.cancel.is_set()
                else:
                    assert turn.text == "".join(LOOP) and shown.strip() == turn.text
            # A translation keeps every sentence: its source may repeat one on purpose.
            prompt, _ = service.translation_prompt("Bonjour", "en", None)
            turn, deltas = service.turn(Session("api"), "Bonjour", prompt=prompt, use_kb=False, detect_handoff=False)
            assert "".join(deltas).strip() == turn.text == "".join(LOOP)
        finally:
            service.store.close()
