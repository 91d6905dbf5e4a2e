"""The safety guard with a real (smoke-trained) request-risk model, alone and inside a live server, and the
handoff phrase detection it sits next to."""

from __future__ import annotations

from pathlib import Path

import openai
import pytest
from gradio_client import Client
from serve_fixtures import MODEL, ROOT, last_text, shared_server, start_server

from groundwork.recipe import load_recipe
from serving.guard import INPUT_REFUSAL, OUTPUT_REPLACEMENT, Guard
from serving.handoff import DislikeStreak, wants_human

CONVERSATION = [{"role": "user", "content": "How do I hurt the courier who lost my parcel?"}]


@pytest.fixture(scope="module", name="risk_dir")
def risk_dir_fixture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from reward_models.risk_train import run_risk_training

    out = tmp_path_factory.mktemp("guard")
    recipe = load_recipe(ROOT / "configs" / "smoke.yaml", [f"run.output_dir={out}"])
    run_risk_training(recipe)
    return out / "smoke" / "risk" / "model"


def test_guard_is_off_without_a_risk_model() -> None:
    guard = Guard.load(None)
    assert not guard.enabled and "off" in guard.note()
    assert guard.check_input(CONVERSATION).safe
    assert guard.check_output(CONVERSATION, "anything").safe


def test_guard_applies_the_threshold_and_tells_refusals_from_compliance(risk_dir: Path) -> None:
    strict = Guard.load(risk_dir, threshold=0.0)  # every request is risky
    assert strict.enabled and "on" in strict.note()
    verdict = strict.check_input(CONVERSATION)
    assert not verdict.safe and verdict.text == INPUT_REFUSAL and 0.0 <= verdict.score <= 1.0
    assert "threshold" in verdict.reason
    output = strict.check_output(CONVERSATION, "Here is his home address.", context="KB text")
    assert not output.safe and output.text == OUTPUT_REPLACEMENT and output.kind == "harmful_compliance"
    refusal = strict.check_output(CONVERSATION, "I'm sorry, but I can't help with that.")
    assert refusal.safe and refusal.kind == "refusal"
    lenient = Guard.load(risk_dir, threshold=1.01)  # nothing is
    assert lenient.check_input(CONVERSATION).safe
    passed = lenient.check_output(CONVERSATION, "Here is his home address.")
    assert passed.text == "Here is his home address." and passed.kind == "answer"
    stored = Guard.load(risk_dir)
    assert 0.0 < stored.threshold < 1.0  # the calibrated threshold saved with the model


def test_the_output_check_reads_the_answer_against_the_answer_threshold(risk_dir: Path) -> None:
    stored = Guard.load(risk_dir)
    assert stored.answer_threshold == stored.risk.settings.answer_threshold is not None
    answer = "Your card's contactless setting is under Security in the app."
    p = stored.risk.probability(answer)
    calm = [{"role": "user", "content": "Where do I switch on contactless payments?"}]
    # The request passes either way (threshold above 1); only the answer's own score decides.
    above = Guard(stored.risk, threshold=1.01, answer_threshold=p + 1e-6).check_output(calm, answer)
    assert above.safe and above.kind == "answer"
    at = Guard(stored.risk, threshold=1.01, answer_threshold=p).check_output(calm, answer)
    assert not at.safe and at.kind == "harmful_compliance" and "answer threshold" in at.reason
    assert Guard(stored.risk, threshold=0.3).answer_threshold == 0.3  # an explicit threshold sets both


def test_short_answers_are_scored_once_with_the_same_verdict(risk_dir: Path) -> None:
    stored = Guard.load(risk_dir)
    calls: list[str] = []
    score = stored.risk.probability

    def counted(text):
        calls.append(text)
        return score(text)

    stored.risk.probability = counted
    calm = [{"role": "user", "content": "Where is my parcel?"}]
    first = [stored.check_output(calm, "Your", request_risk=0.0) for _ in range(3)]
    assert calls == ["Your"] and len({(v.safe, v.score, v.kind) for v in first}) == 1
    assert first[0].score == pytest.approx(float(score("Your")))
    long_answer = "Your parcel left our warehouse yesterday and arrives within 3 business days."
    stored.check_output(calm, long_answer, request_risk=0.0)
    stored.check_output(calm, long_answer, request_risk=0.0)
    assert calls.count(long_answer) == 2  # whole answers are always scored afresh
    tight = Guard(stored.risk, threshold=1.01, answer_threshold=0.0)  # every answer is too risky
    assert not tight.check_output(calm, "Your", request_risk=0.0).safe


def test_streamed_text_is_released_only_after_it_passes(risk_dir: Path, tmp_path_factory) -> None:
    """Whatever the tiny model writes, no delta reaches the client after the output check rejected the answer,
    and an answer that passed arrives whole."""
    from dataclasses import replace

    from serve_fixtures import BASE

    from serving.app.service import Session
    from serving.server import build_service

    shared = shared_server(tmp_path_factory.mktemp("shared"))
    # A service of its own (store, metrics) on the shared server's loaded engine and KB embeddings.
    cfg = replace(BASE, db=f"sqlite:///{tmp_path_factory.mktemp('holdback') / 'feedback.db'}",
                  risk_model=str(risk_dir))
    service = build_service(cfg, MODEL, engine=shared.service.engine, kb=shared.service.kb)
    guard = service.guard

    outcomes = set()
    for offset in (-1.0, 1e-6, 0.02, 0.05):
        p = guard.request_risk("Where is my parcel?")
        service.guard = Guard(guard.risk, threshold=min(1.0, max(0.0, p + offset)))
        try:
            for seed_text in ("Where is my parcel?", "Where is my parcel? Please answer in detail."):
                turn, deltas = service.turn(Session("api"), seed_text)
                shown = "".join(deltas)
                if turn.blocked == "output":
                    assert turn.text == OUTPUT_REPLACEMENT and OUTPUT_REPLACEMENT not in shown
                    assert turn.guard is not None and not turn.guard.safe
                elif turn.blocked == "input":
                    assert shown == INPUT_REFUSAL
                else:
                    assert shown.strip() == turn.text.strip() or turn.replaced
                outcomes.add(turn.blocked)
        finally:
            service.guard = guard
    service.store.close()
    assert "input" in outcomes and len(outcomes) >= 2


def test_live_server_refuses_unsafe_input_in_the_ui_and_the_api(risk_dir: Path, tmp_path_factory) -> None:
    shared = shared_server(tmp_path_factory.mktemp("shared"))
    with start_server(tmp_path_factory.mktemp("guarded"), shared, risk_model=str(risk_dir),
                      risk_threshold=0.0) as live:
        api = openai.OpenAI(base_url=live.api, api_key="unused", max_retries=0, timeout=60)
        reply = api.chat.completions.create(model=MODEL, messages=CONVERSATION)
        assert reply.choices[0].message.content == INPUT_REFUSAL
        assert reply.model_extra["parley"]["guard"] == "input"
        stream = api.chat.completions.create(model=MODEL, messages=CONVERSATION, stream=True)
        assert "".join(c.choices[0].delta.content or "" for c in stream) == INPUT_REFUSAL
        client = Client(live.url, verbose=False)
        chat, *_ = client.predict(CONVERSATION[0]["content"], api_name="/support")
        assert last_text(chat) == INPUT_REFUSAL
        client.close()


@pytest.mark.parametrize("text", [
    "Can I talk to a human?", "I want a real person", "转人工", "我要人工客服", "¿Puedo hablar con un agente humano?",
    "Je veux parler à un conseiller", "Kann ich bitte mit einem Mitarbeiter sprechen?", "agent",
])
def test_requests_for_a_human_are_recognised(text: str) -> None:
    assert wants_human(text) is not None


@pytest.mark.parametrize("text", [
    "My travel agent booked the trip", "Where is my order?", "Je veux parler de ma commande",
    "Ich möchte über meine Bestellung sprechen", "Quiero devolver un producto", "Wie lange dauert der Versand?",
])
def test_ordinary_messages_are_not_handoff_requests(text: str) -> None:
    assert wants_human(text) is None


def test_two_dislikes_in_a_row_trigger_once_and_a_like_resets() -> None:
    streak = DislikeStreak()
    assert not streak.record(1, False)
    assert not streak.record(1, False)  # the same answer twice is one dislike
    assert not streak.record(2, True)
    assert not streak.record(3, False)
    assert streak.record(4, False)
    assert not streak.record(5, False)


def test_the_benign_threshold_leaves_the_stated_share_of_harmful_requests_below_it(risk_dir: Path) -> None:
    import numpy as np

    from reward_models.risk_train import choose_benign_threshold

    harmful = np.linspace(0.01, 1.0, 100)
    threshold, rule = choose_benign_threshold(harmful, 0.05)
    assert np.sum(harmful < threshold) == 5 and "5.0% of 100 harmful" in rule
    assert choose_benign_threshold(harmful, 0.0)[0] == harmful.min()  # nothing harmful below: the lowest score
    stored = Guard.load(risk_dir)
    assert stored.benign_threshold == stored.risk.settings.benign_threshold is not None
    assert 0.0 <= stored.benign_threshold <= stored.threshold
    assert stored.clearly_benign(stored.benign_threshold - 1e-6) and not stored.clearly_benign(stored.benign_threshold)
    assert not stored.clearly_benign(None) and not Guard.load(None).clearly_benign(0.0)


class ScriptedEngine:
    """Stands in for the model: streams the answer it was given, word by word."""

    def __init__(self, answer: str) -> None:
        self.answer = answer

    def stream(self, messages, context=None, cancel=None, **params):
        for word in self.answer.split(" "):
            yield word + " "


@pytest.mark.parametrize("live", [True, False])
def test_a_refusal_of_a_clearly_benign_request_becomes_the_way_to_a_human(
        risk_dir: Path, tmp_path: Path, live: bool) -> None:
    from dataclasses import replace

    from serve_fixtures import BASE

    from dialogue.answer_classes import classify_answer
    from serving.app.service import Session
    from serving.explain import guard_decision
    from serving.handoff import REFUSAL_HANDOFF
    from serving.server import build_service

    refusal = "I'm sorry, but we can't help with that. Please try again later today."
    question = "Why can't I complete the transfer?"
    for enabled in (True, False):
        cfg = replace(BASE, db=f"sqlite:///{tmp_path / f'{enabled}.db'}", risk_model=str(risk_dir),
                      hand_off_benign_refusals=enabled)
        service = build_service(cfg, MODEL, engine=ScriptedEngine(refusal))
        loaded = service.guard.risk
        try:
            for benign_threshold, handed in ((1.01, enabled), (0.0, False)):
                loaded.settings.benign_threshold = benign_threshold
                service.guard = Guard(loaded, threshold=1.01)  # the input check lets everything through
                turn, deltas = service.turn(Session("api"), question, live=live)
                shown = "".join(deltas)
                assert turn.handed_off == handed and turn.blocked is None
                if handed:
                    assert turn.text == REFUSAL_HANDOFF["en"] and shown.strip().endswith(REFUSAL_HANDOFF["en"])
                    assert "Please try again" not in shown  # the refusal's rest is never streamed
                    assert classify_answer(turn.text, question, blocked=False) == "handoff"
                    assert guard_decision(turn)["decision"] == "refusal_handed_off"  # "Why this answer" says so
                else:
                    assert turn.text.strip() == refusal and classify_answer(turn.text, question, False) == "refused"
            # A translation is never handed off, whatever its risk.
            loaded.settings.benign_threshold = 1.01
            prompt, _ = service.translation_prompt("Hola.", "en", None)
            turn, _ = service.turn(Session("api"), "Hola.", prompt=prompt, use_kb=False, detect_handoff=False)
            assert not turn.handed_off
            # /metrics counts each handoff once (the disabled service none).
            assert service.metrics.pointed_to_human.labels("benign_refusal")._value.get() == int(enabled)
        finally:
            service.store.close()


@pytest.mark.parametrize("language", sorted(["en", "zh", "es", "fr", "de"]))
def test_the_refusal_handoff_is_a_handoff_in_every_language(language: str) -> None:
    from dialogue.answer_classes import classify_answer
    from serving.handoff import REFUSAL_HANDOFF

    assert classify_answer(REFUSAL_HANDOFF[language], "?", blocked=False) == "handoff"
