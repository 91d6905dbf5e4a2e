"""50 Gradio clients (gradio_client) and 50 API clients (``POST /v1/feedback``) send 10 mixed feedback events each,
all at once, to one live server: likes, dislikes with reasons, ratings, PII-laden corrections and retried requests.
The store must hold exactly the expected rows with the expected final values, on SQLite and on PostgreSQL."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from feedback_fixtures import (  # noqa: F401 - pytest fixtures
    db_url_fixture,
    pg_admin_fixture,
    pg_server_url_fixture,
    pg_url_fixture,
)
from gradio_client import Client
from serve_fixtures import shared_server, start_server
from sqlalchemy import func, select

from serving.feedback.models import Feedback, HandoffTicket, IdempotencyKey
from serving.feedback.store import FeedbackStore

CLIENTS = 50
ANSWERS = 10  # answers the API clients share (several raters per answer)


def _gradio_client(client: Client, i: int) -> None:
    """Two questions, five feedback events on each answer (the session's newest answer)."""
    client.predict(f"Where is my order {i}?", api_name="/support")
    client.predict(True, api_name="/vote")
    client.predict(4, api_name="/rate")
    client.predict(f"Client {i}: a better first answer.", api_name="/suggest")
    client.predict(5, api_name="/rate")
    client.predict(True, api_name="/vote")
    client.predict(f"How do I return item {i}?", api_name="/support")
    client.predict(False, api_name="/vote")
    client.predict("wrong_language", api_name="/dislike_reason")
    client.predict(1, api_name="/rate")
    client.predict(f"Client {i}: call +44 20 7946 0958 instead.", api_name="/suggest")
    client.predict("over_refusal", api_name="/dislike_reason")


def _api_client(api: str, answers: list[int], j: int) -> int:
    """Ten events on two shared answers, two of them retries; returns how many answers were replays."""
    a, b = answers[j % ANSWERS], answers[(j + 3) % ANSWERS]
    user = f"client-{j}"
    events = [
        ({"message_id": a, "label": "like"}, "k1"),
        ({"message_id": a, "rating": 4}, "k2"),
        ({"message_id": a, "rating": 4}, "k2"),  # a retry
        ({"message_id": b, "label": "dislike", "reason": "unhelpful"}, "k3"),
        ({"message_id": b, "correction": f"Client {j}: mail help.desk@example.com"}, "k4"),
        ({"message_id": b, "rating": 2}, "k5"),
        ({"message_id": b, "label": "dislike", "reason": "unhelpful"}, "k3"),  # a late retry: must not apply
        ({"message_id": b, "reason": "made_up_fact"}, "k6"),
        ({"message_id": a, "label": "like"}, "k7"),
        ({"message_id": a, "rating": 5}, None),
    ]
    replays = 0
    with httpx.Client(base_url=api, timeout=60) as http:
        for body, key in events:
            headers = {"Idempotency-Key": key} if key else {}
            r = http.post("/feedback", json={**body, "user": user}, headers=headers)
            assert r.status_code == 200, r.text
            replays += r.json()["replayed"]
    return replays


def test_fifty_gradio_and_fifty_api_clients_make_exactly_the_expected_rows(
    db_url: str, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    base = shared_server(tmp_path_factory.mktemp("load-shared"))
    started = time.monotonic()
    with start_server(tmp_path, reuse=base, db=db_url, queue_size=4 * CLIENTS, concurrency=4, max_new_tokens=4,
                      max_turns=8, max_message_chars=500) as live:
        with httpx.Client(base_url=live.api, timeout=60) as http:
            answers = [http.post("/chat/completions", json={
                "messages": [{"role": "user", "content": f"Question {k} about my parcel"}], "max_tokens": 4,
                "mode": "chat"}).json()["parley"]["message_id"] for k in range(ANSWERS)]
        with ThreadPoolExecutor(10) as pool:
            clients = list(pool.map(lambda _: Client(live.url, verbose=False), range(CLIENTS)))
        barrier = threading.Barrier(2 * CLIENTS)

        def gradio_worker(i: int) -> int:
            barrier.wait()
            _gradio_client(clients[i], i)
            return 0

        def api_worker(j: int) -> int:
            barrier.wait()
            return _api_client(live.api, answers, j)

        try:
            with ThreadPoolExecutor(2 * CLIENTS) as pool:
                gradio = [pool.submit(gradio_worker, i) for i in range(CLIENTS)]
                api = [pool.submit(api_worker, j) for j in range(CLIENTS)]
                assert sum(f.result(timeout=300) for f in gradio) == 0
                assert sum(f.result(timeout=300) for f in api) == 2 * CLIENTS
        finally:
            with ThreadPoolExecutor(10) as pool:
                list(pool.map(lambda c: c.close(), clients))
        elapsed = time.monotonic() - started

        with FeedbackStore(db_url, create=False) as store, store.engine.connect() as conn:
            rows = [dict(r) for r in conn.execute(select(Feedback.__table__)).mappings()]
            keys = conn.execute(select(func.count()).select_from(IdempotencyKey)).scalar_one()
            tickets = conn.execute(select(func.count()).select_from(HandoffTicket)).scalar_one()
            stats = store.stats()
    print(f"\n{db_url.split(':')[0]}: {20 * CLIENTS} feedback events from {2 * CLIENTS} clients in {elapsed:.1f} s")

    assert len(rows) == 4 * CLIENTS and len({(r["message_id"], r["rater"]) for r in rows}) == 4 * CLIENTS
    assert keys == 7 * CLIENTS and tickets == 0

    ui = [r for r in rows if r["rater"].startswith("session-")]
    assert len(ui) == 2 * CLIENTS and len({r["rater"] for r in ui}) == CLIENTS
    by_client: dict[int, list[tuple]] = {}
    for r in ui:
        i = int(r["correction"].split(":")[0].removeprefix("Client "))
        by_client.setdefault(i, []).append((r["like"], r["rating"], r["reason"], r["correction"]))
    assert {i: sorted(v, key=str) for i, v in by_client.items()} == {i: sorted([
        (True, 5, None, f"Client {i}: a better first answer."),
        (False, 1, "over_refusal", f"Client {i}: call [PHONE] instead."),
    ], key=str) for i in range(CLIENTS)}

    api = {(r["rater"], r["message_id"]): (r["like"], r["rating"], r["reason"], r["correction"])
           for r in rows if r["rater"].startswith("api:")}
    assert api == {
        **{(f"api:client-{j}", answers[j % ANSWERS]): (True, 5, None, None) for j in range(CLIENTS)},
        **{(f"api:client-{j}", answers[(j + 3) % ANSWERS]): (False, 2, "made_up_fact", f"Client {j}: mail [EMAIL]")
           for j in range(CLIENTS)},
    }
    assert stats["reasons"]["over_refusal"] == CLIENTS and stats["reasons"]["made_up_fact"] == CLIENTS
    assert stats["likes"] == 2 * CLIENTS and stats["dislikes"] == 2 * CLIENTS
