"""The feedback store on SQLite and PostgreSQL: upserts under concurrency, redaction, validation, errors."""

from __future__ import annotations

import json
import re
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import pytest
from feedback_fixtures import (  # noqa: F401 - pytest fixtures
    db_url_fixture,
    pg_admin_fixture,
    pg_server_url_fixture,
    pg_url_fixture,
    store_fixture,
)
from sqlalchemy import JSON, String, Text, insert, select, text

from serving.feedback.engine import FeedbackStoreError
from serving.feedback.models import Base, Conversation, Feedback, Message
from serving.feedback.store import FeedbackStore, FeedbackValueError, UnknownRecordError

EMAIL_RE = re.compile(r"[\w.+-]+@[\w-]+\.\w+")
CARD_RE = re.compile(r"\d(?:[ -]?\d){12,18}")


def _answers(store: FeedbackStore, n: int) -> list[int]:
    ids = []
    for i in range(n):
        conv = store.create_conversation("support", "smollm2-135m", "abc123")
        store.add_message(conv, "user", f"question {i}")
        ids.append(store.add_message(conv, "assistant", f"answer {i}"))
    return ids


def _seed_answers(store: FeedbackStore, n: int) -> list[int]:
    """n one-question conversations written in one transaction (the API would commit 3n times)."""
    now = datetime.now(UTC)
    with store.engine.begin() as conn:
        conv_ids = (
            conn.execute(
                insert(Conversation).returning(Conversation.id, sort_by_parameter_order=True),
                [{"mode": "support", "model_name": "m", "created_at": now} for _ in range(n)],
            )
            .scalars()
            .all()
        )
        rows = [
            {"conversation_id": c, "turn": t, "role": r, "content": f"{r} {i}", "created_at": now}
            for i, c in enumerate(conv_ids)
            for t, r in ((0, "user"), (1, "assistant"))
        ]
        ids = conn.execute(insert(Message).returning(Message.id, sort_by_parameter_order=True), rows).scalars().all()
    return ids[1::2]


def _run_threads(n: int, target) -> None:
    barrier = threading.Barrier(n)

    def worker(i: int) -> None:
        barrier.wait()
        target(i)

    with ThreadPoolExecutor(n) as pool:
        list(pool.map(worker, range(n)))


def test_conversation_messages_and_turns(store: FeedbackStore) -> None:
    conv = store.create_conversation("translate", "smollm2-135m")
    assert [store.add_message(conv, role, c) for role, c in [("user", "Hallo"), ("assistant", "Hello")]] == [1, 2]
    mid = store.add_message(conv, "assistant", "Hi", kb_ids=["kb-1", 7], citations=[{"id": "kb-1", "quote": "x"}])
    rows = store.recent(5)
    assert rows == []
    store.record_feedback(mid, "rater-1", like=True)
    (row,) = store.recent(5)
    assert row["message_id"] == mid and row["mode"] == "translate" and row["like"] is True
    assert row["updated_at"].tzinfo is not None


def test_fifty_clients_ten_events_each_make_500_rows(store: FeedbackStore) -> None:
    messages = _seed_answers(store, 500)

    def client(i: int) -> None:
        for k in range(10):
            mid = messages[i * 10 + k]
            store.record_feedback(mid, f"client-{i}", like=k % 2 == 0, rating=1 + k % 5)

    _run_threads(50, client)
    with store.engine.connect() as conn:
        assert len(conn.execute(select(Feedback.message_id, Feedback.rater)).all()) == 500
        assert len(set(conn.execute(select(Feedback.message_id)).scalars())) == 500
    stats = store.stats()
    assert stats["feedback"] == 500 and stats["likes"] == 250 and stats["dislikes"] == 250
    assert stats["per_day"][-1]["like_ratio"] == 0.5


def test_repeated_clicks_update_one_row(store: FeedbackStore) -> None:
    (mid,) = _answers(store, 1)
    first = store.record_feedback(mid, "ann", like=True)
    for like in (False, True, False):
        assert store.record_feedback(mid, "ann", like=like) == first
    store.record_feedback(mid, "ann", rating=2)
    store.record_feedback(mid, "ann", rating=4)
    store.record_feedback(mid, "ann", correction="A better answer.")
    (row,) = store.feedback_for(mid)
    assert (row["like"], row["rating"], row["correction"]) == (False, 4, "A better answer.")
    assert row["updated_at"] >= row["created_at"]


def test_concurrent_clicks_by_one_rater_keep_one_row_with_a_last_value(store: FeedbackStore) -> None:
    (mid,) = _answers(store, 1)
    last_by_thread: dict[int, tuple[bool, int]] = {}

    def clicker(i: int) -> None:
        for k in range(10):
            value = ((i + k) % 2 == 0, 1 + (i + k) % 5)
            store.record_feedback(mid, "same-rater", like=value[0], rating=value[1])
        last_by_thread[i] = value

    _run_threads(8, clicker)
    rows = store.feedback_for(mid)
    assert len(rows) == 1
    assert (rows[0]["like"], rows[0]["rating"]) in set(last_by_thread.values())
    store.record_feedback(mid, "same-rater", like=True, rating=3)
    (row,) = store.feedback_for(mid)
    assert (row["like"], row["rating"]) == (True, 3)


def test_no_raw_pii_in_any_table(store: FeedbackStore) -> None:
    conv = store.create_conversation("support", "smollm2-135m")
    store.add_message(conv, "user", "I'm bob@example.com, card 4111 1111 1111 1111, phone +44 20 7946 0958")
    mid = store.add_message(
        conv, "assistant", "Thanks bob@example.com", citations=[{"quote": "x@y.com"}], kb_ids=["mail-z@z.org"]
    )
    store.record_feedback(
        mid, "carol@example.org", like=False, correction="Never repeat 5500 0055 5555 5559 or bob@example.com back."
    )
    store.record_feedback(mid, "+1 (555) 123-4567", rating=2)
    store.open_handoff(conv, "customer bob@example.com wants a refund to 4111-1111-1111-1111")
    transcript = [{"role": "user", "content": "dave@example.net 4111111111111111"}]
    store.open_handoff(conv, "asked twice", transcript=transcript)
    scanned = 0
    with store.engine.connect() as conn:
        for table in Base.metadata.sorted_tables:
            cols = [c for c in table.columns if isinstance(c.type, (String, Text, JSON))]
            for row in conn.execute(select(*cols)):
                for value in row:
                    blob = str(value)
                    scanned += 1
                    assert not EMAIL_RE.search(blob), (table.name, blob)
                    assert not CARD_RE.search(blob), (table.name, blob)
                    assert "7946" not in blob
    assert scanned > 10
    raters = {r["rater"] for r in store.feedback_for(mid)}
    assert len(raters) == 2 and all(r.startswith("anon-") for r in raters)


def test_handoff_defaults_to_stored_transcript(store: FeedbackStore) -> None:
    conv = store.create_conversation("support", "m")
    store.add_message(conv, "user", "where is my parcel? mail me at a@b.co")
    ticket = store.open_handoff(conv, "needs a human")
    with store.engine.connect() as conn:
        row = conn.execute(text("SELECT transcript, status FROM handoff_tickets WHERE id = :i"), {"i": ticket}).one()
    transcript = row[0] if isinstance(row[0], list) else json.loads(row[0])
    assert transcript == [{"role": "user", "content": "where is my parcel? mail me at [EMAIL]"}] and row[1] == "open"
    assert store.stats()["handoffs_open"] == 1
    store.set_handoff_status(ticket, "closed")
    assert store.stats()["handoffs_open"] == 0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"rating": 0}, "rating must be an integer from 1 to 5"),
        ({"rating": 6}, "rating must be an integer from 1 to 5"),
        ({"rating": 4.5}, "rating must be an integer"),
        ({"rating": True}, "rating must be an integer"),
        ({"like": "yes"}, "like must be True, False or None"),
        ({"correction": "   "}, "correction is empty"),
        ({"correction": "x" * 40_000}, "limit is"),
        ({}, "at least one of like, rating or correction"),
    ],
)
def test_malformed_feedback_is_a_value_error(store: FeedbackStore, kwargs: dict, message: str) -> None:
    (mid,) = _answers(store, 1)
    with pytest.raises(ValueError, match=message):
        store.record_feedback(mid, "ann", **kwargs)
    assert store.feedback_for(mid) == []


def test_bad_ids_modes_and_roles(store: FeedbackStore) -> None:
    conv = store.create_conversation("api", "m")
    user_msg = store.add_message(conv, "user", "hi")
    with pytest.raises(UnknownRecordError):
        store.record_feedback(999_999, "ann", like=True)
    with pytest.raises(FeedbackValueError, match="feedback is for answers"):
        store.record_feedback(user_msg, "ann", like=True)
    with pytest.raises(FeedbackValueError, match="rater"):
        store.record_feedback(user_msg, "  ", like=True)
    with pytest.raises(FeedbackValueError, match="mode"):
        store.create_conversation("chat", "m")
    with pytest.raises(FeedbackValueError, match="role"):
        store.add_message(conv, "tool", "x")
    with pytest.raises(UnknownRecordError):
        store.add_message(424242, "user", "x")
    with pytest.raises(FeedbackValueError, match="transcript"):
        store.open_handoff(conv, "why", transcript=[{"role": "user"}])
    with pytest.raises(FeedbackValueError):
        store.recent(0)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("", "empty"),
        ("mysql://u:p@localhost/db", "unsupported feedback database"),
        ("sqlite://", "needs a SQLite file"),
        ("sqlite:////no/such/folder/feedback.db", "folder of the SQLite feedback database does not exist"),
        ("postgresql+psycopg://u:secret@127.0.0.1:1/db", "cannot reach feedback database"),
        ("postgresql+nodriver://u:p@localhost/db", "cannot use feedback database"),
    ],
)
def test_bad_urls_give_one_line_errors(url: str, message: str) -> None:
    with pytest.raises(FeedbackStoreError, match=message) as info:
        FeedbackStore(url)
    assert "secret" not in str(info.value) and "\n" not in str(info.value)


def test_sqlite_runs_in_wal_with_busy_timeout(tmp_path) -> None:
    with FeedbackStore(tmp_path / "f.db") as s, s.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30_000
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
