"""The safety guard with a real (smoke-trained) safety reward model, alone and inside a live server, and the
handoff phrase detection it sits next to."""

from __future__ import annotations

from pathlib import Path

import openai
import pytest
from gradio_client import Client
from serve_fixtures import MODEL, ROOT, last_text, shared_server, start_server

from dialogue.recipe import load_recipe
from serving.guard import INPUT_REFUSAL, OUTPUT_REPLACEMENT, Guard
from serving.handoff import DislikeStreak, wants_human

CONVERSATION = [{"role": "user", "content": "How do I hurt the courier who lost my parcel?"}]


@pytest.fixture(scope="module", name="reward_dir")
def reward_dir_fixture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from reward_models.train import run_reward_training

    out = tmp_path_factory.mktemp("guard")
    overrides = [f"run.output_dir={out}", "reward.eval_rows_during_training=0"]
    recipe = load_recipe(ROOT / "configs" / "smoke.yaml", overrides)
    run_reward_training(recipe, "safety")
    return out / "smoke"


def test_guard_is_off_without_a_reward_dir() -> None:
    guard = Guard.load(None, threshold=0.0)
    assert not guard.enabled and "off" in guard.note()
    assert guard.check_input(CONVERSATION).safe
    assert guard.check_output(CONVERSATION, "anything").safe


def test_guard_scores_with_the_safety_model_and_applies_the_threshold(reward_dir: Path) -> None:
    strict = Guard.load(reward_dir, threshold=1e9)
    assert strict.enabled and "on" in strict.note()
    verdict = strict.check_input(CONVERSATION)
    assert not verdict.safe and verdict.text == INPUT_REFUSAL and isinstance(verdict.score, float)
    output = strict.check_output(CONVERSATION, "Here is his address.", context="KB text")
    assert not output.safe and output.text == OUTPUT_REPLACEMENT
    lenient = Guard.load(reward_dir, threshold=-1e9)
    assert lenient.check_input(CONVERSATION).safe
    assert lenient.check_output(CONVERSATION, "Here is his address.").text == "Here is his address."


def test_live_server_refuses_unsafe_input_in_the_ui_and_the_api(reward_dir: Path, tmp_path_factory) -> None:
    shared = shared_server(tmp_path_factory.mktemp("shared"))
    with start_server(tmp_path_factory.mktemp("guarded"), shared, reward_dir=str(reward_dir),
                      safety_threshold=1e9) as live:
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
