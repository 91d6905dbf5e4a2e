"""The Gradio app through gradio_client against a live server: chat, citations, translation, feedback, handoff,
the operator console's feedback view and export, limits, and path-traversal attempts on Gradio's file routes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from gradio_client import Client
from gradio_client.exceptions import AppError
from serve_fixtures import OPERATOR, last_text, shared_server
from sqlalchemy import text

from serving.feedback.store import FeedbackStore

QUESTION = "How long does account deletion take?"


@pytest.fixture(scope="module", name="live")
def live_fixture(tmp_path_factory: pytest.TempPathFactory):
    return shared_server(tmp_path_factory.mktemp("serve"))


@pytest.fixture(scope="module", name="module_client")
def module_client_fixture(live) -> Iterator[Client]:
    client = Client(live.url, verbose=False)
    yield client
    client.close()


@pytest.fixture(name="client")
def client_fixture(module_client: Client) -> Client:
    """A fresh browser-like session per test (its own state: conversation, votes)."""
    module_client.reset_session()
    return module_client


def _store(live) -> FeedbackStore:
    return FeedbackStore(live.db_url, create=False)


def test_support_streams_an_answer_with_citations_and_stores_it(live, client: Client) -> None:
    job = client.submit(QUESTION, api_name="/support")
    chat, citations, _, _ = job.result(timeout=60)
    updates = job.outputs()
    assert len(updates) >= 3, "the answer should arrive in several streamed updates"
    assert last_text(chat).strip()
    assert "accounts-delete" in citations and "Deleting your account" in citations
    with _store(live) as store, store.engine.connect() as conn:
        row = conn.execute(text("SELECT c.mode, c.model_name, m.citations, m.kb_ids FROM messages m JOIN "
                                "conversations c ON c.id = m.conversation_id WHERE m.role = 'assistant' "
                                "ORDER BY m.id DESC LIMIT 1")).one()
    assert row.mode == "support" and row.model_name == "tiny-random-llama"
    assert "accounts-delete" in json.dumps(row.kb_ids)


def test_like_rating_and_correction_are_stored_with_the_answer(live, client: Client) -> None:
    client.predict(QUESTION, api_name="/support")
    assert "saved" in client.predict(True, api_name="/vote")[0]
    assert "saved" in client.predict(5, api_name="/rate")
    assert "saved" in client.predict("Deletion is completed within 21 days.", api_name="/suggest")[0]
    with _store(live) as store:
        recent = store.recent(5)
    mine = [r for r in recent if r["correction"] == "Deletion is completed within 21 days."]
    assert mine and mine[0]["like"] is True and mine[0]["rating"] == 5
    assert mine[0]["mode"] == "support" and mine[0]["rater"].startswith("session-")
    assert mine[0]["updated_at"] is not None


def test_rating_outside_one_to_five_is_refused(client: Client) -> None:
    client.predict(QUESTION, api_name="/support")
    with pytest.raises(AppError, match=r"1 to 5|choices: \[1, 2, 3, 4, 5\]"):
        client.predict(9, api_name="/rate")


def test_two_dislikes_in_a_row_open_a_redacted_handoff_ticket(live, client: Client) -> None:
    client.predict("My email is jane.doe@example.com, where is my order?", api_name="/support")
    client.predict(False, api_name="/vote")
    client.predict("Still nothing. Where is my parcel?", api_name="/support")
    status, chat = client.predict(False, api_name="/vote")
    assert "ticket #" in status and "human" in last_text(chat)
    with _store(live) as store, store.engine.connect() as conn:
        ticket = conn.execute(text("SELECT reason, transcript FROM handoff_tickets ORDER BY id DESC LIMIT 1")).one()
    assert "disliked" in ticket.reason
    transcript = json.dumps(ticket.transcript)
    assert "jane.doe@example.com" not in transcript and "[EMAIL]" in transcript


@pytest.mark.parametrize(("message", "word"), [
    ("Can I talk to a human, please?", "human colleague"),
    ("我要转人工", "人工客服"),
    ("Quiero hablar con una persona", "compañero humano"),
    ("Je voudrais parler à un conseiller", "collègue humain"),
    ("Ich möchte mit einem Mitarbeiter sprechen", "menschlichen Kollegen"),
])
def test_asking_for_a_human_in_each_language_opens_a_ticket(client: Client, message: str, word: str) -> None:
    chat, *_ = client.predict(message, api_name="/support")
    assert word in last_text(chat) and "#" in last_text(chat)


def test_talk_to_a_human_button(client: Client) -> None:
    client.predict(QUESTION, api_name="/support")
    chat, status = client.predict(api_name="/human")
    assert "ticket #" in status.lower() and "human" in last_text(chat)


def test_translate_auto_detects_and_streams(live, client: Client) -> None:
    job = client.submit("Bonjour, où est ma commande ?", "auto", "en", api_name="/translate")
    chat, detected = job.result(timeout=60)
    assert "French (fr)" in detected
    assert last_text(chat).strip()
    with _store(live) as store, store.engine.connect() as conn:
        prompt = conn.execute(text("SELECT m.content FROM messages m JOIN conversations c ON c.id = "
                                   "m.conversation_id WHERE c.mode = 'translate' AND m.role = 'user' "
                                   "ORDER BY m.id DESC LIMIT 1")).scalar_one()
    assert prompt.startswith("Translate from French into English")


@pytest.mark.parametrize(("source", "target"), [("auto", "klingon"), ("xx", "en"), ("en", "")])
def test_unknown_language_code_gets_a_clear_message(client: Client, source: str, target: str) -> None:
    with pytest.raises(AppError, match=r"unknown language code .*supported: en \(English\)"):
        client.predict("Hello", source, target, api_name="/translate")


def test_limits_are_enforced_on_the_server(live, client: Client) -> None:
    with pytest.raises(AppError, match="limit is 500"):
        client.predict("x" * 501, api_name="/support")
    with pytest.raises(AppError, match="empty"):
        client.predict("   ", api_name="/support")
    for _ in range(live.cfg.max_turns):
        client.predict("Where is my order?", api_name="/support")
    with pytest.raises(AppError, match="limit of 4 messages"):
        client.predict("One more?", api_name="/support")


def test_admin_view_and_export_of_preference_pairs(live, client: Client) -> None:
    """Feedback given in the chat shows in the operator console (its own app, behind the operator login)."""
    client.predict("Can I return a used item?", api_name="/support")
    client.predict(False, api_name="/vote")
    client.predict("Yes, within 30 days if it is undamaged.", api_name="/suggest")
    operator = Client(live.operator, auth=OPERATOR, verbose=False)
    try:
        counts, plot, recent = operator.predict(api_name="/admin_refresh")
        assert "**Dislikes:**" in counts and "**Corrections:** " in counts
        assert plot is not None
        assert any("within 30 days" in str(row) for row in recent["data"])
        path, status = operator.predict(api_name="/admin_export")
    finally:
        operator.close()
    rows = [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines()]
    assert "Exported" in status and len(rows) >= 1
    assert any(r["chosen"][-1]["content"] == "Yes, within 30 days if it is undamaged." for r in rows)
    with pytest.raises(ValueError, match="Cannot find a function with `api_name`"):
        client.predict(api_name="/admin_export")  # the customer app has no operator endpoint


TRAVERSALS = [
    "/gradio_api/file=/etc/passwd",
    "/gradio_api/file=../../../../etc/passwd",
    "/gradio_api/file=..%2f..%2f..%2fetc%2fpasswd",
    "/gradio_api/file=%2e%2e/%2e%2e/etc/passwd",
    "/gradio_api/file=%252e%252e%252f%252e%252e%252fetc%252fpasswd",
    "/gradio_api/file=..\\..\\etc\\passwd",
    "/gradio_api/file=/work/../etc/passwd",
    "/file=/etc/passwd",
    "/file=../../etc/passwd",
    "/gradio_api/file=pyproject.toml",
    "/gradio_api/file=tests/serve_fixtures.py",
    "/gradio_api/file=%2Fetc%2Fpasswd",
    "/gradio_api/file=/proc/self/environ",
    "/static/../../../../etc/passwd",
    "/assets/..%2f..%2f..%2fetc/passwd",
    "/gradio_api/file=/etc/passwd%00.png",
]


@pytest.mark.parametrize("path", TRAVERSALS)
def test_no_file_outside_allowed_paths_is_served(live, path: str) -> None:
    # Send the path byte for byte (httpx would normalise "../").
    with httpx.Client(base_url=live.url, timeout=10) as http:
        request = http.build_request("GET", "/")
        request.url = request.url.copy_with(raw_path=path.encode())
        response = http.send(request)
    assert 400 <= response.status_code < 500, (path, response.status_code)
    assert "root:" not in response.text and "[project]" not in response.text


def test_server_keeps_serving_after_hostile_requests(live) -> None:
    assert httpx.get(f"{live.url}/healthz").status_code == 200
    assert httpx.get(f"{live.url}/").status_code == 200
