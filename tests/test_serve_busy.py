"""A server with login, one generation slot and a queue of one: a full queue answers "busy" (4xx, never 5xx or
a hang) on both the Gradio queue and the API, and the UI, the operator console and the API are closed without
their credentials (chat credentials do not open the console)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import httpx
import openai
import pytest
from gradio_client import Client
from serve_fixtures import MODEL, OPERATOR, shared_server, start_server

USER, PASSWORD = "admin", "s3cret-pw"


@pytest.fixture(scope="module", name="live")
def live_fixture(tmp_path_factory: pytest.TempPathFactory):
    shared = shared_server(tmp_path_factory.mktemp("shared"))
    with start_server(tmp_path_factory.mktemp("busy"), shared, auth=f"{USER}:{PASSWORD}",
                      admin_auth=":".join(OPERATOR), concurrency=1, queue_size=1, max_new_tokens=200) as server:
        yield server


@contextmanager
def _logged_in(live) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=live.url, timeout=60) as http:
        http.post("/login", data={"username": USER, "password": PASSWORD}).raise_for_status()
        yield http


def _support_fn_index(http: httpx.Client) -> int:
    config = http.get("/config").json()
    return next(d["id"] for d in config["dependencies"] if d.get("api_name") == "support")


def test_full_gradio_queue_answers_busy_not_5xx(live) -> None:
    with _logged_in(live) as http:
        fn_index = _support_fn_index(http)

        def join(_: int) -> httpx.Response:
            body = {"data": ["Where is my order?", None], "fn_index": fn_index, "session_hash": uuid.uuid4().hex,
                    "event_data": None, "trigger_id": None}
            return http.post("/gradio_api/queue/join", json=body)

        with ThreadPoolExecutor(8) as pool:
            responses = list(pool.map(join, range(8)))
    codes = [r.status_code for r in responses]
    assert all(c < 500 for c in codes), codes
    busy = [r for r in responses if r.status_code == 429]
    assert busy, f"expected some requests to be turned away, got {codes}"
    assert "busy" in busy[0].json()["detail"]
    assert any(c == 200 for c in codes)


def test_api_answers_busy_when_every_slot_and_place_is_taken(live) -> None:
    client = openai.OpenAI(base_url=live.api, api_key=f"{USER}:{PASSWORD}", max_retries=0, timeout=120)

    def ask(_: int) -> str:
        try:
            client.chat.completions.create(model=MODEL, max_tokens=200,
                                           messages=[{"role": "user", "content": "Tell me about returns."}])
            return "ok"
        except openai.RateLimitError as exc:
            assert "busy" in str(exc)
            return "busy"

    with ThreadPoolExecutor(6) as pool:
        outcomes = list(pool.map(ask, range(6)))
    assert "busy" in outcomes and "ok" in outcomes, outcomes
    assert client.chat.completions.create(model=MODEL, max_tokens=4, messages=[{"role": "user", "content": "hi"}])


def test_ui_admin_and_api_need_credentials(live) -> None:
    assert httpx.get(f"{live.url}/config").status_code == 401
    # SSR is off, so a forged Host header does not get past the login either.
    assert httpx.get(f"{live.url}/config", headers={"Host": "localhost:7860"}).status_code == 401
    with pytest.raises(Exception):  # noqa: B017 - the client refuses in its own way; any error is a refusal
        Client(live.url, verbose=False)
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=live.api, api_key="wrong", max_retries=0).models.list()
    assert httpx.get(f"{live.operator}/config").status_code == 401
    # Prometheus scrapes /metrics without a login; it holds counts, never conversation text.
    assert httpx.get(f"{live.url}/metrics").status_code == 200
    with pytest.raises(Exception):  # noqa: B017
        Client(live.operator, verbose=False)
    with pytest.raises(Exception, match="(?i)incorrect credentials|login"):  # chat credentials are not operator ones
        Client(live.operator, auth=(USER, PASSWORD), verbose=False)
    client = Client(live.url, auth=(USER, PASSWORD), verbose=False)
    with pytest.raises(ValueError, match="Cannot find a function"):
        client.predict(api_name="/admin_refresh")  # the chat has no operator endpoint
    client.close()
    operator = Client(live.operator, auth=OPERATOR, verbose=False)
    counts, _, _ = operator.predict(api_name="/admin_refresh")
    assert "**Conversations:**" in counts
    operator.close()
