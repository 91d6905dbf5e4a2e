"""Handoff tickets for the operator console (serving/feedback/tickets.py) on SQLite and PostgreSQL: list with the
redacted conversation, close with a redacted note, one winner when two operators close at once, and a database
written before the closures table existed."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from feedback_fixtures import (  # noqa: F401 - pytest fixtures
    db_url_fixture,
    pg_admin_fixture,
    pg_server_url_fixture,
    pg_url_fixture,
    store_fixture,
)
from sqlalchemy import inspect

from serving.feedback import tickets
from serving.feedback.store import FeedbackStore, FeedbackValueError, UnknownRecordError


def _ticket(store: FeedbackStore, text: str = "Where is my order? Mail me at jane.doe@example.com") -> int:
    conversation = store.create_conversation("support", "tiny")
    store.add_message(conversation, "user", text)
    store.add_message(conversation, "assistant", "Let me check.")
    return store.open_handoff(conversation, "customer asked for a human agent")


def test_open_tickets_are_listed_oldest_first_with_the_redacted_conversation(store: FeedbackStore) -> None:
    first, second = _ticket(store), _ticket(store, "Call me on +44 20 7946 0958 please")
    rows = tickets.list_handoffs(store)
    assert [r["id"] for r in rows] == [first, second]
    assert rows[0]["mode"] == "support" and rows[0]["status"] == "open" and rows[0]["note"] is None
    assert rows[0]["transcript"][0] == {"role": "user", "content": "Where is my order? Mail me at [EMAIL]"}
    assert "7946" not in str(rows[1]["transcript"])
    assert tickets.count_open(store) == 2 == store.stats()["handoffs_open"]


def test_closing_keeps_a_redacted_note_and_the_operator_and_leaves_the_open_list(store: FeedbackStore) -> None:
    keep, close = _ticket(store), _ticket(store)
    closed = tickets.close_handoff(store, close, "  Refunded; confirmation sent to jane.doe@example.com  ", "ops")
    assert closed["status"] == "closed" and closed["closed_by"] == "ops" and closed["closed_at"] is not None
    assert closed["note"] == "Refunded; confirmation sent to [EMAIL]"
    assert [r["id"] for r in tickets.list_handoffs(store)] == [keep]
    assert [r["id"] for r in tickets.list_handoffs(store, "closed")] == [close]
    assert len(tickets.list_handoffs(store, None)) == 2
    assert tickets.count_open(store) == 1 == store.stats()["handoffs_open"]


def test_closing_errors(store: FeedbackStore) -> None:
    ticket = _ticket(store)
    for note in ("", "   ", None, "x" * (tickets.MAX_NOTE_CHARS + 1)):
        with pytest.raises(FeedbackValueError):
            tickets.close_handoff(store, ticket, note, "ops")  # type: ignore[arg-type]
    with pytest.raises(FeedbackValueError, match="operator"):
        tickets.close_handoff(store, ticket, "done", "")
    with pytest.raises(UnknownRecordError):
        tickets.close_handoff(store, ticket + 99, "done", "ops")
    with pytest.raises(FeedbackValueError, match="positive integer"):
        tickets.close_handoff(store, 0, "done", "ops")
    with pytest.raises(FeedbackValueError, match="status must be one of"):
        tickets.list_handoffs(store, "pending")
    tickets.close_handoff(store, ticket, "done", "ops")
    with pytest.raises(tickets.TicketClosedError, match="already closed"):
        tickets.close_handoff(store, ticket, "again", "ops")


def test_a_reopened_ticket_can_be_closed_again(store: FeedbackStore) -> None:
    ticket = _ticket(store)
    tickets.close_handoff(store, ticket, "first", "ops")
    store.set_handoff_status(ticket, "open")
    assert tickets.close_handoff(store, ticket, "second", "lead")["note"] == "second"


def test_two_operators_closing_at_once_one_wins(store: FeedbackStore) -> None:
    ticket = _ticket(store)
    tickets.ensure_schema(store)

    def close(who: str) -> str:
        try:
            tickets.close_handoff(store, ticket, f"closed by {who}", who)
            return "closed"
        except tickets.TicketClosedError:
            return "refused"

    with ThreadPoolExecutor(4) as pool:
        outcomes = list(pool.map(close, ["a", "b", "c", "d"]))
    assert sorted(outcomes) == ["closed", "refused", "refused", "refused"]
    winner = outcomes.index("closed")
    assert tickets.get_handoff(store, ticket)["closed_by"] == "abcd"[winner]


def test_a_store_from_before_the_closures_table_gains_it_and_keeps_its_tickets(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    with FeedbackStore(url) as old:  # the store alone creates only its own tables
        ticket = _ticket(old)
        assert "handoff_closures" not in inspect(old.engine).get_table_names()
    with FeedbackStore(url, create=False) as store:
        assert [r["id"] for r in tickets.list_handoffs(store)] == [ticket]
        assert "handoff_closures" in inspect(store.engine).get_table_names()
        tickets.close_handoff(store, ticket, "done", "ops")
    with FeedbackStore(url, create=False) as again:  # readers such as the export still open it
        assert again.stats()["handoffs_open"] == 0
