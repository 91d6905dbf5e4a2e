"""Dislike reasons and "another answer" in the Gradio app, through gradio_client against the live shared server
(and the thumbs handler called as the browser's like event calls it)."""

from __future__ import annotations

import gradio as gr
import pytest
from gradio_client import Client
from gradio_client.exceptions import AppError
from serve_fixtures import last_text
from sqlalchemy import select
from test_serve import _store, client_fixture, live_fixture, module_client_fixture  # noqa: F401 - shared fixtures

from serving.app.handlers import Handlers
from serving.app.state import ChatState
from serving.feedback.models import Comparison, Message
from serving.feedback.store import FeedbackStore

QUESTION = "How long does account deletion take?"


def _newest_answer(store: FeedbackStore) -> int:
    with store.engine.connect() as conn:
        return conn.execute(select(Message.id).where(Message.role == "assistant", Message.variant_of.is_(None))
                            .order_by(Message.id.desc()).limit(1)).scalar_one()


def test_a_dislike_reason_is_stored_with_the_dislike(live, client: Client) -> None:
    client.predict(QUESTION, api_name="/support")
    status, _ = client.predict(False, api_name="/vote")
    assert "saved" in status
    assert "saved" in client.predict("made_up_fact", api_name="/dislike_reason")
    with _store(live) as store:
        mine = [r for r in store.feedback_for(_newest_answer(store)) if r["rater"].startswith("session-")]
    assert [(r["like"], r["reason"]) for r in mine] == [(False, "made_up_fact")]
    with pytest.raises(AppError, match="made_up_fact|Made-up or wrong fact|choices"):
        client.predict("rude", api_name="/dislike_reason")


def test_a_reason_alone_is_a_dislike_of_the_newest_answer(live, client: Client) -> None:
    client.predict("Hallo, wie geht es?", "auto", "en", api_name="/translate")
    assert "saved" in client.predict("wrong_language", api_name="/translate_dislike_reason")
    with _store(live) as store:
        (row,) = store.feedback_for(_newest_answer(store))
    assert (row["like"], row["reason"]) == (False, "wrong_language")


def test_another_answer_shows_two_answers_and_stores_the_choice(live, client: Client) -> None:
    chat, *_ = client.predict(QUESTION, api_name="/support")
    client.predict("unhelpful", api_name="/dislike_reason")
    status, first, second = client.predict(api_name="/another_answer")
    assert "Which one is better" in status and first == last_text(chat).strip() and second.strip()
    assert "saved" in client.predict("second", api_name="/choose_answer")
    with _store(live) as store, store.engine.connect() as conn:
        original = _newest_answer(store)
        stored_first = conn.execute(select(Message.content).where(Message.id == original)).scalar_one()
        alternative = conn.execute(select(Message).where(Message.variant_of == original)).one()
        assert alternative.content == second and alternative.role == "assistant"
        (comparison,) = conn.execute(select(Comparison).where(Comparison.message_id == original)).all()
        assert (comparison.alternative_id, comparison.preferred) == (alternative.id, "alternative")
        pairs = [r for r in store.export_preferences() if r["chosen_id"] == f"message:{alternative.id}"]
    assert pairs and pairs[0]["source"] == "another_answer" and pairs[0]["objective"] == "quality"
    assert pairs[0]["reason"] == "unhelpful"
    with pytest.raises(AppError, match="Another answer"):  # the choice was made; nothing left to choose
        client.predict("first", api_name="/choose_answer")
    # The conversation goes on from the first answer: the next answer's prompt does not hold the alternative.
    client.predict("Thanks. And my data?", api_name="/support")
    client.predict(True, api_name="/vote")
    with _store(live) as store:
        _, kto = store.export_all()
        (later,) = [r for r in kto if r["message_id"] == f"message:{_newest_answer(store)}"]
    # (the stored text: the chat display may re-indent lines of the random tiny model's answer)
    assert [m["content"] for m in later["prompt"]] == [QUESTION, stored_first, "Thanks. And my data?"]


def test_another_answer_on_the_translate_tab(live, client: Client) -> None:
    client.predict("Bonjour, où est ma commande ?", "fr", "en", api_name="/translate")
    _, first, second = client.predict(api_name="/translate_another_answer")
    assert first.strip() and second.strip()
    assert "first" in client.predict("first", api_name="/translate_choose_answer")


def test_another_answer_needs_an_answer_and_a_choice_needs_two(client: Client) -> None:
    with pytest.raises(AppError, match="no answer"):
        client.predict(api_name="/another_answer")
    with pytest.raises(AppError, match="Another answer"):
        client.predict("first", api_name="/choose_answer")
    client.predict("Can I talk to a human, please?", api_name="/support")  # a handoff notice, not a model answer
    with pytest.raises(AppError, match="newest answer"):
        client.predict(api_name="/another_answer")


def test_thumbs_down_reveals_the_reason_choice_and_thumbs_up_hides_it(live) -> None:
    handlers = Handlers(live.service)
    state = ChatState("support")
    request = gr.Request(username="thumbs-tester")
    *_, state, _, _ = list(handlers.support(QUESTION, state, request))[-1]
    index = max(state.message_ids)
    down = gr.LikeData(None, {"index": index, "value": state.display[index]["content"], "liked": False})
    status, state, _, box, _ = handlers.like(state, down, request)
    assert "What was wrong" in status and box.visible is True and state.disliked == state.message_ids[index]
    handlers.dislike_reason("should_not_answer", state, request)
    up = gr.LikeData(None, {"index": index, "value": state.display[index]["content"], "liked": True})
    _, state, _, box, _ = handlers.like(state, up, request)
    assert box.visible is False and state.disliked is None
    with _store(live) as store:
        (row,) = [r for r in store.feedback_for(state.message_ids[index]) if r["rater"] == "thumbs-tester"]
    assert (row["like"], row["reason"]) == (True, None)  # the like took the reason back
