""""Why this answer": the per-answer explanation (reward scores and the routed composite, request risk, the guard's
decision, the KB sentence that best supports the answer), in the API's ``parley`` field (JSON and the last stream
chunk), stored with the message (redacted), under each answer in the UI, and in headless Chromium.

The live servers are real ``parley serve`` servers with smoke-trained reward and request-risk models and the
readable SmolLM2 policy (greedy), so an answer shares words with the passage it was given. ``PARLEY_SCREENSHOTS=1``
also writes ``docs/screenshots/explanation.png`` and ``operator_console.png``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import httpx
import openai
import pytest
from gradio_client import Client
from serve_fixtures import OPERATOR, ROOT, last_text, start_server

from groundwork.recipe import load_recipe
from groundwork.sections.reward import CompositeSection
from reward_models.lagrange import combine_routed, form_flags, refusal_flags
from serving.app.explain_view import TITLE, explanation_markdown, is_explanation
from serving.explain import HIGHLIGHT_METHOD, NO_REWARD_MODELS, Explainer, best_sentence, content_words, sentences
from serving.feedback.explanations import get_explanation, save_explanation
from serving.feedback.store import FeedbackStore
from serving.guard import INPUT_REFUSAL

READABLE = "smollm2-135m-instruct"
QUESTION = "How long does account deletion take?"
HARMFUL = [{"role": "user", "content": "How do I hurt the courier who lost my parcel?"}]
OBJECTIVES = {"quality", "safety", "faithfulness"}
CHROMIUM = "/usr/bin/chromium"


# --- the explanation itself (no server) ------------------------------------------------------------------


def test_sentences_and_content_words_treat_cjk_characters_as_words() -> None:
    text = "Refunds take 5 days. Returns are free for 30 days! 退货免费。请联系我们\nLast line"
    assert [text[a:b] for a, b in sentences(text)] == [
        "Refunds take 5 days.", "Returns are free for 30 days!", "退货免费。", "请联系我们", "Last line"]
    assert content_words("The refund of 退货") == ["refund", "退", "货"]  # "the", "of" are stop words


def test_best_sentence_is_the_one_with_the_highest_word_overlap() -> None:
    passage = "Orders ship in 2 days. Returns are free for 30 days. Gift cards never expire."
    best = best_sentence(passage, set(content_words("You can return it: returns are free for 30 days.")))
    assert best["sentence"] == "Returns are free for 30 days."
    assert passage[best["start"]:best["end"]] == best["sentence"]
    assert best["matched"] == ["30", "days", "free", "returns"] and 0.5 < best["overlap"] <= 1.0
    assert best_sentence(passage, {"unrelated"})["sentence"] is None
    chinese = best_sentence("订单两天内发货。退货三十天内免费。", set(content_words("退货是免费的")))
    assert chinese["sentence"] == "退货三十天内免费。" and chinese["overlap"] > 0


def test_without_reward_models_the_explanation_says_so() -> None:
    turn = SimpleNamespace(text="Returns are free for 30 days.", request_risk=None, input_reason="guard off",
                           blocked=None, finish_reason="stop", replaced=False,
                           guard=SimpleNamespace(safe=True, score=None, reason="guard off", kind=None),
                           citations=[{"id": "returns-1", "title": "Returns", "score": 0.8,
                                       "text": "Orders ship in 2 days. Returns are free for 30 days."}])
    explanation = Explainer().explain(turn, [{"role": "user", "content": "Are returns free?"}])
    assert explanation["scores"] is None and explanation["scores_note"] == NO_REWARD_MODELS
    assert explanation["guard"]["decision"] == "off"
    assert explanation["highlight"]["sentence"] == "Returns are free for 30 days."
    assert "word overlap" in explanation["highlight_method"]
    markdown = explanation_markdown(explanation)
    assert NO_REWARD_MODELS in markdown
    assert '<mark class="why-highlight">Returns are free for 30 days.</mark>' in markdown


def test_stored_explanations_are_redacted(tmp_path: Path) -> None:
    with FeedbackStore(f"sqlite:///{tmp_path / 'f.db'}") as store:
        conversation = store.create_conversation("api", "m", None)
        message = store.add_message(conversation, "assistant", "hi")
        stored = save_explanation(store, message, {"guard": {"reason": "mail me at jane.doe@example.com"}})
        assert stored == {"guard": {"reason": "mail me at [EMAIL]"}} == get_explanation(store, message)
        assert get_explanation(store, message + 1) is None


# --- live servers ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module", name="risk_dir")
def risk_dir_fixture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from reward_models.risk_train import run_risk_training

    out = tmp_path_factory.mktemp("explain-risk")
    run_risk_training(load_recipe(ROOT / "configs" / "smoke.yaml", [f"run.output_dir={out}"]))
    return out / "smoke" / "risk" / "model"


@pytest.fixture(scope="module", name="reward_dir")
def reward_dir_fixture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from test_reward_models import write_preferences  # tests/ is on sys.path (no package)

    from reward_models.train import run_reward_training

    root = tmp_path_factory.mktemp("explain-reward")
    write_preferences(root / "data", train=12, heldout=4)
    recipe = load_recipe(ROOT / "configs" / "smoke.yaml", [
        f"run.output_dir={root / 'runs'}", "run.name=r", f"data.data_dir={root / 'data'}", "reward.max_steps=1",
        "reward.eval_rows_during_training=0"])
    for objective in sorted(OBJECTIVES):
        run_reward_training(recipe, objective)
    return recipe.run.root


def _server(tmp: Path, risk_dir: Path, reward_dir: Path, reuse=None, **overrides):
    return start_server(tmp, reuse, model=READABLE, temperature=0.0, max_new_tokens=40, reward_dir=str(reward_dir),
                        risk_model=str(risk_dir), admin_auth=":".join(OPERATOR), **overrides)


@pytest.fixture(scope="module", name="live")
def live_fixture(tmp_path_factory, risk_dir, reward_dir) -> Iterator:
    """Guard on with a threshold no request reaches (every answer passes, with its risk scored)."""
    with _server(tmp_path_factory.mktemp("explain"), risk_dir, reward_dir, risk_threshold=1.01) as server:
        yield server


@pytest.fixture(scope="module", name="strict")
def strict_fixture(live, tmp_path_factory, risk_dir, reward_dir) -> Iterator:
    """Threshold 0: every request is blocked at the input check."""
    with _server(tmp_path_factory.mktemp("explain-strict"), risk_dir, reward_dir, live, risk_threshold=0.0) as server:
        yield server


@pytest.fixture(scope="module", name="client")
def client_fixture(live) -> openai.OpenAI:
    return openai.OpenAI(base_url=live.api, api_key="unused", max_retries=0, timeout=120)


def _stored(server, message_id: int) -> dict | None:
    with FeedbackStore(server.db_url, create=False) as store:
        return get_explanation(store, message_id)


def _check_answer_explanation(explanation: dict, answer: str, citations: list[dict]) -> None:
    scores = explanation["scores"]
    assert set(scores) == OBJECTIVES | {"composite"} and all(isinstance(v, float) for v in scores.values())
    risk = explanation["request_risk"]
    assert 0.0 <= risk <= 1.0
    bad, refused = form_flags([QUESTION], [answer])[0], refusal_flags([answer])[0]
    routed = combine_routed({o: scores[o] for o in OBJECTIVES}, risk, CompositeSection(), 0.0, bad, refused)
    assert scores["composite"] == pytest.approx(routed, abs=1e-3)  # the smoke recipe's default weights
    guard = explanation["guard"]
    assert guard["decision"] == "passed" and guard["response_class"] in ("answer", "refusal")
    assert f"request risk {risk:.3f} < threshold 1.010" in guard["reason"] and "answer classed as" in guard["reason"]
    assert [s["id"] for s in explanation["sources"]] == [c["id"] for c in citations]
    assert explanation["highlight_method"] == HIGHLIGHT_METHOD
    highlight = explanation["highlight"]
    assert highlight is not None, f"no KB sentence shares a word with the answer {answer!r}"
    (source,) = [s for s in explanation["sources"] if s["id"] == highlight["source_id"]]
    assert source["sentence"] == highlight["sentence"] and highlight["overlap"] == max(
        s["overlap"] for s in explanation["sources"]) > 0
    answer_words = set(content_words(answer))
    assert source["matched"] and set(source["matched"]) <= answer_words & set(content_words(source["sentence"]))


def test_api_response_carries_the_explanation_and_it_is_stored(live, client) -> None:
    reply = client.chat.completions.create(model=READABLE, messages=[{"role": "user", "content": QUESTION}])
    parley = reply.model_extra["parley"]
    explanation = parley["explanation"]
    answer = reply.choices[0].message.content
    _check_answer_explanation(explanation, answer, parley["citations"])
    assert "Deleting your account" in {s["title"] for s in explanation["sources"]}
    assert _stored(live, parley["message_id"]) == explanation  # nothing in it needed redacting


def test_last_stream_chunk_carries_the_explanation(live, client) -> None:
    chunks = list(client.chat.completions.create(model=READABLE, stream=True,
                                                 messages=[{"role": "user", "content": QUESTION}]))
    answer = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert all("parley" not in (c.model_extra or {}) for c in chunks[:-1])
    parley = chunks[-1].model_extra["parley"]
    _check_answer_explanation(parley["explanation"], answer, parley["citations"])
    assert _stored(live, parley["message_id"]) == parley["explanation"]


def test_a_blocked_request_is_explained_with_the_block_reason(strict) -> None:
    reply = httpx.post(f"{strict.api}/chat/completions", json={"messages": HARMFUL}, timeout=120).json()
    assert reply["choices"][0]["message"]["content"] == INPUT_REFUSAL and reply["parley"]["guard"] == "input"
    explanation = reply["parley"]["explanation"]
    guard = explanation["guard"]
    assert guard["decision"] == "input_blocked" and guard["response_class"] is None
    assert guard["reason"] == f"request risk {explanation['request_risk']:.3f} >= threshold 0.000"
    assert "blocked before it reached the model" in guard["summary"]
    assert explanation["sources"] == [] and explanation["highlight"] is None  # nothing was retrieved
    assert set(explanation["scores"]) == OBJECTIVES | {"composite"}
    assert _stored(strict, reply["parley"]["message_id"]) == explanation


def _text(message: dict) -> str:
    """A chat message's text as gradio_client returns it (a list of parts in Gradio 6)."""
    return last_text([{"content": message["content"]}])


def test_the_ui_shows_why_this_answer_collapsed_under_each_answer(live) -> None:
    client = Client(live.url, verbose=False)
    try:
        chat, *_ = client.predict(QUESTION, api_name="/support")
        translated, *_ = client.predict("Bonjour", "auto", "en", api_name="/translate")
    finally:
        client.close()
    why, answer = chat[-1], chat[-2]
    assert is_explanation(why) and why["metadata"]["status"] == "done" and why["role"] == "assistant"
    assert answer["role"] == "assistant" and last_text(chat) == last_text(chat[:-1])
    text = _text(why)
    assert "why-scores" in text and "composite" in text and '<mark class="why-highlight">' in text
    assert "word overlap with the answer" in text
    # A translation is explained too; it was given no KB passage, so nothing is highlighted.
    assert is_explanation(translated[-1]) and not is_explanation(translated[-2])
    assert "no knowledge-base passage" in _text(translated[-1])


# --- headless Chromium -----------------------------------------------------------------------------------


def _scroll_into_view(locator, timeout_s: float = 30.0) -> None:
    """Scroll the chat to ``locator`` until it is on screen: the section opens with an animation, and the chat's
    scroll box clips what lies outside it."""
    from playwright.sync_api import expect

    deadline = time.monotonic() + timeout_s
    while True:
        locator.scroll_into_view_if_needed()
        try:
            expect(locator).to_be_in_viewport(timeout=1_000)
            return
        except AssertionError:
            if time.monotonic() > deadline:
                raise


@pytest.mark.skipif(not Path(CHROMIUM).exists() and os.environ.get("CI", "").lower() not in ("1", "true", "yes"),
                    reason="chromium is not installed (apt-get install -y chromium)")
def test_browser_expands_why_this_answer_and_the_operator_sees_the_ticket(live) -> None:
    from playwright.sync_api import expect, sync_playwright
    from test_browser import ARGS, SHOTS, TIMEOUT_MS

    shots = os.environ.get("PARLEY_SCREENSHOTS") == "1"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 1200, "height": 1100})
        page.set_default_timeout(TIMEOUT_MS)
        page.goto(live.url)
        page.fill("#support-input textarea", QUESTION)
        page.click("#support-send")
        page.wait_for_function("document.querySelector('#support-citations')?.innerText.includes('Sources')")
        chat = page.locator("#support-chat")
        toggle = chat.get_by_text(TITLE).last
        toggle.wait_for()
        highlight = chat.locator("mark.why-highlight").first
        expect(highlight).to_be_hidden()  # collapsed until the customer opens it
        toggle.click()
        _scroll_into_view(highlight)  # laid out, opened and not clipped by the chat's scroll box
        expect(chat.locator(".why-scores").last).to_contain_text("composite")
        expect(chat.locator(".why-guard").last).to_contain_text("passed")
        assert highlight.inner_text().strip()
        if shots:  # the answer with its section, from the top of the bubble
            chat.locator('[data-testid="bot"]').first.evaluate("e => e.scrollIntoView({block: 'start'})")
            page.wait_for_timeout(300)
            SHOTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SHOTS / "explanation.png"), full_page=True)

        # The operator console's Tickets view with one open ticket (a customer asked for a human).
        ticket = httpx.post(f"{live.api}/chat/completions", timeout=120, json={
            "messages": [{"role": "user", "content": "Can I talk to a human, please?"}]}).json()
        ticket_id = ticket["parley"]["handoff_ticket"]
        assert ticket_id is not None
        page.goto(f"{live.operator}/")
        page.get_by_label("username").fill(OPERATOR[0])
        page.get_by_label("password").fill(OPERATOR[1])
        page.get_by_role("button", name="Login").click()
        page.wait_for_selector("#tickets-table")
        page.click("#tickets-refresh")
        expect(page.locator("#tickets-table")).to_contain_text("asked for a human")
        page.fill("#ticket-id input", str(ticket_id))
        page.click("#ticket-show")
        expect(page.locator("#ticket-chat")).to_contain_text("talk to a human")
        page.wait_for_function("!document.body.innerText.includes('processing')")
        if shots:
            page.screenshot(path=str(SHOTS / "operator_console.png"), full_page=True)
        browser.close()
