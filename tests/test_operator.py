"""The operator console (``--admin-auth``) against live servers: it does not exist without operator logins, every
route refuses anonymous and chat-only callers, operator logins do not open the chat, and with an operator login
the Tickets and Feedback views and the ``/v1/operator`` API work (a ticket opened with the chat's "Talk to a human"
shows up redacted and leaves the open list once closed with a note)."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import gradio as gr
import httpx
import pytest
from gradio_client import Client
from gradio_client.exceptions import AppError
from serve_fixtures import OPERATOR, shared_server, start_server

from groundwork.errors import ConfigError
from groundwork.recipe import load_recipe
from parley.cli import build_parser
from parley.flags import recipe_from_args
from serving.app.admin import Admin
from serving.app.operator import TicketDesk
from serving.feedback.store import FeedbackStore

CHAT = ("customer", "chat-pw")
OPERATOR_KEY = ":".join(OPERATOR)
GRADIO_ENDPOINTS = ["/admin_refresh", "/admin_export", "/tickets_refresh", "/ticket_show", "/ticket_close"]
UI_ROUTES = [("GET", "/operator"), ("GET", "/operator/"), ("GET", "/operator/config"),
             ("GET", "/operator/gradio_api/info"), ("POST", "/operator/gradio_api/queue/join"),
             ("POST", "/operator/login")]
REST_ROUTES = [("GET", "/v1/operator/tickets"), ("GET", "/v1/operator/tickets/1"),
               ("POST", "/v1/operator/tickets/1/close"), ("GET", "/v1/operator/stats"),
               ("GET", "/v1/operator/export")]


@pytest.fixture(scope="module", name="shared")
def shared_fixture(tmp_path_factory: pytest.TempPathFactory):
    """Operator console on, chat open (the usual set-up: public chat, operators log in)."""
    return shared_server(tmp_path_factory.mktemp("shared"))


@pytest.fixture(scope="module", name="plain")
def plain_fixture(shared, tmp_path_factory: pytest.TempPathFactory):
    """No admin_auth: no operator console at all."""
    with start_server(tmp_path_factory.mktemp("plain"), shared, admin_auth=None) as server:
        yield server


@pytest.fixture(scope="module", name="both")
def both_fixture(shared, tmp_path_factory: pytest.TempPathFactory):
    """Chat login and operator login, kept apart."""
    with start_server(tmp_path_factory.mktemp("both"), shared, auth=":".join(CHAT),
                      admin_auth=OPERATOR_KEY) as server:
        yield server


@pytest.fixture(scope="module", name="console")
def console_fixture(shared) -> Iterator[Client]:
    client = Client(shared.operator, auth=OPERATOR, verbose=False)
    yield client
    client.close()


@pytest.fixture(scope="module", name="chat")
def chat_fixture(shared) -> Iterator[Client]:
    client = Client(shared.url, verbose=False)
    yield client
    client.close()


def _request(method: str, url: str, **kwargs) -> httpx.Response:
    return httpx.request(method, url, timeout=30, **kwargs)


@contextmanager
def _session(live, user: tuple[str, str] | None = None, app: str = "") -> Iterator[httpx.Client]:
    """An HTTP session, logged in to the chat app (``app=""``) or the console (``app="/operator"``) if a user
    is given."""
    with httpx.Client(base_url=live.url, timeout=30) as http:
        if user is not None:
            http.post(f"{app}/login", data={"username": user[0], "password": user[1]}).raise_for_status()
        yield http


def _open_ticket(chat: Client, text: str) -> int:
    chat.reset_session()
    chat.predict(text, api_name="/support")
    _, status = chat.predict(api_name="/human")
    return int(re.search(r"#(\d+)", status).group(1))


def _bubble_text(bubble: dict) -> str:
    content = bubble["content"]
    if isinstance(content, str):
        return content
    return "".join(part.get("text", "") for part in content if isinstance(part, dict))


# --- without admin_auth nothing of the console exists ----------------------------------------------------


@pytest.mark.parametrize(("method", "path"), UI_ROUTES)
def test_without_admin_auth_the_operator_ui_does_not_exist(plain, method: str, path: str) -> None:
    assert _request(method, plain.url + path).status_code == 404


@pytest.mark.parametrize(("method", "path"), REST_ROUTES)
def test_without_admin_auth_no_operator_rest_route_exists(plain, method: str, path: str) -> None:
    response = _request(method, plain.url + path, headers={"Authorization": f"Bearer {OPERATOR_KEY}"},
                        json={"note": "x"} if method == "POST" else None)
    assert response.status_code == 404


@pytest.mark.parametrize("api_name", GRADIO_ENDPOINTS)
def test_without_admin_auth_no_operator_gradio_endpoint_exists(plain, api_name: str) -> None:
    client = Client(plain.url, verbose=False)
    try:
        assert api_name not in json.dumps(client.view_api(print_info=False, return_format="dict"))
        with pytest.raises(ValueError, match="Cannot find a function"):
            client.predict(api_name=api_name)
    finally:
        client.close()
    with pytest.raises(Exception):  # noqa: B017 - no app at /operator: the client cannot even load a config
        Client(plain.operator, verbose=False)


# --- with admin_auth: refused without the operator login, chat credentials included ------------------------


@pytest.mark.parametrize("who", ["anonymous", "chat user"])
def test_operator_page_is_only_a_login_form_without_an_operator_login(both, who: str) -> None:
    with _session(both, CHAT if who == "chat user" else None) as http:
        page = http.get("/operator/")
        assert page.status_code == 200 and '"auth_required":true' in page.text.replace(" ", "")
        assert "tickets-table" not in page.text and "admin-export" not in page.text
        assert http.get("/operator/config").status_code == 401
        assert http.get("/operator/gradio_api/info").status_code == 401
        if who == "chat user":
            assert http.get("/config").status_code == 200  # the chat login itself works
    with _session(both, OPERATOR, "/operator") as http:
        assert "tickets-table" in http.get("/operator/config").text


@pytest.mark.parametrize("who", ["anonymous", "chat user"])
@pytest.mark.parametrize("api_name", GRADIO_ENDPOINTS)
def test_operator_gradio_endpoint_refuses_without_an_operator_login(both, api_name: str, who: str) -> None:
    with _session(both, OPERATOR, "/operator") as http:
        config = http.get("/operator/config").json()
    fn_index = next(d["id"] for d in config["dependencies"] if d.get("api_name") == api_name.lstrip("/"))
    with _session(both, CHAT if who == "chat user" else None) as http:
        body = {"data": [1, "note"][: 2 if api_name == "/ticket_close" else 1 if api_name == "/ticket_show" else 0],
                "fn_index": fn_index, "session_hash": uuid.uuid4().hex, "event_data": None, "trigger_id": None}
        assert http.post("/operator/gradio_api/queue/join", json=body).status_code == 401
    # gradio_client: anonymous cannot load the console, chat credentials cannot log in to it.
    with pytest.raises(Exception):  # noqa: B017 - any refusal of the client is a refusal
        Client(both.operator, auth=CHAT if who == "chat user" else None, verbose=False)
    # ...and the chat app (where chat credentials do log in) has no such endpoint.
    client = Client(both.url, auth=CHAT, verbose=False)
    try:
        with pytest.raises(ValueError, match="Cannot find a function"):
            client.predict(api_name=api_name)
    finally:
        client.close()


@pytest.mark.parametrize("key", [None, "wrong:key", ":".join(CHAT), "Basic " + OPERATOR_KEY])
@pytest.mark.parametrize(("method", "path"), REST_ROUTES)
def test_operator_rest_route_refuses_without_the_operator_key(both, method: str, path: str, key: str | None) -> None:
    headers = {} if key is None else {"Authorization": key if key.startswith("Basic") else f"Bearer {key}"}
    response = _request(method, both.url + path, headers=headers, json={"note": "x"} if method == "POST" else None)
    assert response.status_code == 401
    assert response.json()["error"]["type"] == "authentication_error"
    assert response.headers["www-authenticate"].startswith("Bearer")


def test_operator_credentials_do_not_open_the_chat(both) -> None:
    with httpx.Client(base_url=both.url, timeout=30) as http:
        assert http.post("/login", data={"username": OPERATOR[0], "password": OPERATOR[1]}).status_code >= 400
    with _session(both, OPERATOR, "/operator") as http:  # an operator session cookie is not a chat session
        assert http.get("/config").status_code == 401
    assert _request("GET", f"{both.api}/models", headers={"Authorization": f"Bearer {OPERATOR_KEY}"}).status_code == 401
    assert _request("GET", f"{both.api}/operator/stats",
                    headers={"Authorization": f"Bearer {OPERATOR_KEY}"}).status_code == 200


def test_operator_handlers_refuse_a_request_without_an_operator(tmp_path: Path) -> None:
    """Defence in depth: even called directly, the console's handlers want a logged-in operator."""
    with FeedbackStore(f"sqlite:///{tmp_path / 'f.db'}") as store:
        admin = Admin(store, f"sqlite:///{tmp_path / 'f.db'}", frozenset({"ops"}))
        desk = TicketDesk(store, frozenset({"ops"}))
        for request in (None, gr.Request(), gr.Request(username="customer")):
            for call in (lambda r: admin.refresh(r), lambda r: admin.export(r), lambda r: desk.refresh(r),
                         lambda r: desk.show(1, r), lambda r: desk.close(1, "note", r)):
                with pytest.raises(gr.Error, match="Log in as an operator"):
                    call(request)
        assert desk.refresh(gr.Request(username="ops"))[1] == "0 open tickets."


# --- with the operator login: the views work ---------------------------------------------------------------


def test_tickets_view_lists_a_handoff_and_closing_it_with_a_note_removes_it(shared, chat: Client,
                                                                            console: Client) -> None:
    ticket = _open_ticket(chat, "My email is jane.doe@example.com and my parcel never came.")
    table, summary = console.predict(api_name="/tickets_refresh")
    row = next(r for r in table["data"] if r[0] == ticket)
    assert row[2] == "support" and "Talk to a human" in row[3]
    assert "[EMAIL]" in row[5] and "jane.doe" not in json.dumps(table)
    assert "open ticket" in summary

    bubbles, header = console.predict(ticket, api_name="/ticket_show")
    texts = [_bubble_text(b) for b in bubbles]
    assert texts[0] == "My email is [EMAIL] and my parcel never came." and bubbles[0]["role"] == "user"
    assert f"Ticket #{ticket}" in header and "open" in header

    status, table, _, bubbles, note = console.predict(ticket, "Called the customer; parcel resent.",
                                                      api_name="/ticket_close")
    assert status.startswith(f"Ticket #{ticket} closed") and bubbles == [] and note == ""
    assert ticket not in [r[0] for r in table["data"]]
    _, header = console.predict(ticket, api_name="/ticket_show")
    assert "closed" in header and f"Closed by {OPERATOR[0]}: Called the customer; parcel resent." in header
    with pytest.raises(AppError, match="already closed"):
        console.predict(ticket, "again", api_name="/ticket_close")


def test_closing_needs_a_note_and_an_existing_ticket(chat: Client, console: Client) -> None:
    ticket = _open_ticket(chat, "Where is my order?")
    with pytest.raises(AppError, match="write a note"):
        console.predict(ticket, "   ", api_name="/ticket_close")
    with pytest.raises(AppError, match="does not exist"):
        console.predict(ticket + 10_000, "done", api_name="/ticket_close")
    with pytest.raises(AppError, match="choose a ticket"):
        console.predict(None, "done", api_name="/ticket_show")


def test_operator_rest_api_lists_closes_and_exports(shared, chat: Client) -> None:
    key = {"Authorization": f"Bearer {OPERATOR_KEY}"}
    ticket = _open_ticket(chat, "Call me on +44 20 7946 0958, I want a human.")
    listed = _request("GET", f"{shared.api}/operator/tickets", headers=key).json()["data"]
    mine = next(t for t in listed if t["id"] == ticket)
    assert mine["status"] == "open" and "7946" not in json.dumps(mine) and mine["transcript"][0]["role"] == "user"
    assert _request("GET", f"{shared.api}/operator/tickets/{ticket}", headers=key).json()["id"] == ticket

    assert _request("POST", f"{shared.api}/operator/tickets/{ticket}/close", headers=key,
                    content=b"not json").status_code == 400
    assert _request("POST", f"{shared.api}/operator/tickets/{ticket}/close", headers=key,
                    json={"note": ""}).status_code == 400
    closed = _request("POST", f"{shared.api}/operator/tickets/{ticket}/close", headers=key,
                      json={"note": "Rang back on +44 20 7946 0958."})
    assert closed.status_code == 200
    assert closed.json()["closed_by"] == OPERATOR[0] and closed.json()["note"] == "Rang back on [PHONE]."
    def listed_ids(query: str = "") -> list[int]:
        return [t["id"] for t in _request("GET", f"{shared.api}/operator/tickets{query}", headers=key).json()["data"]]

    assert ticket not in listed_ids() and ticket in listed_ids("?status=closed")
    assert _request("POST", f"{shared.api}/operator/tickets/{ticket}/close", headers=key,
                    json={"note": "again"}).status_code == 409
    assert _request("GET", f"{shared.api}/operator/tickets/999999", headers=key).status_code == 404
    assert _request("GET", f"{shared.api}/operator/tickets?status=pending", headers=key).status_code == 400
    assert _request("GET", f"{shared.api}/operator/tickets/abc", headers=key).status_code == 400

    chat.reset_session()
    chat.predict("Can I return shoes?", api_name="/support")
    chat.predict(False, api_name="/vote")
    chat.predict("Yes, within 30 days.", api_name="/suggest")
    export = _request("GET", f"{shared.api}/operator/export", headers=key)
    assert export.status_code == 200 and export.headers["content-type"].startswith("application/x-ndjson")
    rows = [json.loads(line) for line in export.text.splitlines()]
    assert any(r["chosen"][-1]["content"] == "Yes, within 30 days." for r in rows)
    stats = _request("GET", f"{shared.api}/operator/stats", headers=key).json()
    assert stats["corrections"] >= 1 and "handoffs_open" in stats


def test_export_file_is_served_by_the_operator_app_only(shared, console: Client, chat: Client) -> None:
    chat.reset_session()
    chat.predict("Where is my order?", api_name="/support")
    chat.predict(True, api_name="/vote")
    path, status = console.predict(api_name="/admin_export")
    assert "Exported" in status
    with _session(shared, OPERATOR, "/operator") as http:
        job = http.get("/operator/config").json()
        fn_index = next(d["id"] for d in job["dependencies"] if d.get("api_name") == "admin_export")
        session = uuid.uuid4().hex
        http.post("/operator/gradio_api/queue/join", json={"data": [], "fn_index": fn_index, "session_hash": session,
                                                           "event_data": None, "trigger_id": None}).raise_for_status()
        with http.stream("GET", f"/operator/gradio_api/queue/data?session_hash={session}") as events:
            cached = None
            for line in events.iter_lines():
                if line.startswith("data:") and '"process_completed"' in line:
                    cached = json.loads(line[5:])["output"]["data"][0]["path"]
                    break
        assert cached and Path(cached).name.startswith("parley-operator-export-")
        assert http.get(f"/operator/gradio_api/file={cached}").status_code == 200
    assert _request("GET", f"{shared.url}/operator/gradio_api/file={cached}").status_code in (401, 403)
    assert _request("GET", f"{shared.url}/gradio_api/file={cached}").status_code == 404  # the open chat app


# --- configuration ---------------------------------------------------------------------------------------


def test_admin_auth_flag_and_recipe_key() -> None:
    args = build_parser().parse_args(["serve", "--admin-auth", "ops:pw,lead:pw2", "--auth", "a:b"])
    serve = recipe_from_args(args).serve
    assert (serve.admin_auth, serve.auth) == ("ops:pw,lead:pw2", "a:b")
    assert load_recipe(None).serve.admin_auth is None


@pytest.mark.parametrize("overrides", [["serve.admin_auth=nopassword"], ["serve.admin_auth=:pw"],
                                       ["serve.auth=a:b", "serve.admin_auth=ops:x,a:b"]])
def test_bad_admin_auth_is_rejected(overrides: list[str]) -> None:
    with pytest.raises(ConfigError, match="admin_auth"):
        load_recipe(None, overrides)
