"""Handoff tickets for the operator console: list them with their (redacted) conversation, close one with a note.

:class:`~serving.feedback.store.FeedbackStore` opens tickets; this module reads and closes them through the
store's engine. How a ticket was closed (the operator's note, who, when) lives in its own table,
``handoff_closures``, one row per closed ticket. It is a new table rather than new columns on
``handoff_tickets`` because the store has no migrations (it creates missing tables with ``create_all``, which
never alters an existing one): a database written by an older Parley gains the table on first use and keeps
every ticket it has.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import (
    Column,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    delete,
    func,
    insert,
    select,
    update,
)

from serving.feedback.engine import WRITE_OPTION
from serving.feedback.migrate import SideTables
from serving.feedback.models import HANDOFF_STATUSES, Conversation, HandoffTicket, UTCDateTime, utcnow
from serving.feedback.pii import redact
from serving.feedback.store import FeedbackStore, FeedbackValueError, UnknownRecordError

MAX_NOTE_CHARS = 4_000
MAX_OPERATOR_CHARS = 128
MAX_LIST = 500
OPEN = ("open", "assigned")  # not closed yet: what the operator console lists and /metrics counts

metadata = MetaData()
handoff_closures = Table(
    "handoff_closures",
    metadata,
    Column("ticket_id", Integer, ForeignKey(HandoffTicket.__table__.c.id, ondelete="CASCADE"), primary_key=True),
    Column("note", Text, nullable=False),  # always redacted
    Column("closed_by", String(MAX_OPERATOR_CHARS), nullable=False),  # the operator's login name
    Column("closed_at", UTCDateTime, nullable=False),
)


class TicketClosedError(FeedbackValueError):
    """The ticket is already closed."""


_TABLES = SideTables(metadata)


def ensure_schema(store: FeedbackStore) -> None:
    """Create ``handoff_closures`` if this database does not have it yet (idempotent, once per engine)."""
    _TABLES.ensure(store.engine)


def _statuses(status: str | Sequence[str] | None) -> tuple[str, ...]:
    if status is None:
        return HANDOFF_STATUSES
    wanted = (status,) if isinstance(status, str) else tuple(status)
    bad = [s for s in wanted if s not in HANDOFF_STATUSES]
    if bad or not wanted:
        raise FeedbackValueError(f"status must be one of {', '.join(HANDOFF_STATUSES)}; got {status!r}")
    return wanted


def _select() -> Any:
    t, c = HandoffTicket, handoff_closures.c
    return (
        select(t.id, t.conversation_id, Conversation.mode, t.reason, t.transcript, t.status, t.created_at,
               c.note, c.closed_by, c.closed_at)
        .join(Conversation, Conversation.id == t.conversation_id)
        .outerjoin(handoff_closures, c.ticket_id == t.id)
    )


def list_handoffs(store: FeedbackStore, status: str | Sequence[str] | None = OPEN,
                  limit: int = 100) -> list[dict[str, Any]]:
    """Tickets in the given status(es) (default: not closed), oldest first, with their redacted transcript.

    Each dict: ``id, conversation_id, mode, reason, transcript, status, created_at, note, closed_by,
    closed_at`` (the last three are None until the ticket is closed here).
    """
    wanted = _statuses(status)
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIST:
        raise FeedbackValueError(f"limit must be an integer from 1 to {MAX_LIST}, got {limit!r}")
    ensure_schema(store)
    with store.engine.connect() as conn:
        rows = conn.execute(
            _select().where(HandoffTicket.status.in_(wanted)).order_by(HandoffTicket.id).limit(limit)
        ).mappings()
        return [dict(row) for row in rows]


def get_handoff(store: FeedbackStore, ticket_id: int) -> dict[str, Any]:
    """One ticket (any status), as in :func:`list_handoffs`; raises UnknownRecordError when there is none."""
    ticket_id = _check_ticket(ticket_id)
    ensure_schema(store)
    with store.engine.connect() as conn:
        row = conn.execute(_select().where(HandoffTicket.id == ticket_id)).mappings().first()
    if row is None:
        raise UnknownRecordError(f"handoff ticket {ticket_id} does not exist")
    return dict(row)


def count_open(store: FeedbackStore) -> int:
    """Tickets not closed yet (the store's ``stats()['handoffs_open']``, as one cheap query)."""
    with store.engine.connect() as conn:
        return conn.execute(
            select(func.count()).select_from(HandoffTicket).where(HandoffTicket.status.in_(OPEN))
        ).scalar_one()


def close_handoff(store: FeedbackStore, ticket_id: int, note: str, operator: str) -> dict[str, Any]:
    """Close an open ticket, keeping the operator's (redacted) note and name; returns the closed ticket.

    One write transaction: of two operators closing the same ticket at once, one succeeds and the other gets
    :class:`TicketClosedError`.
    """
    ticket_id = _check_ticket(ticket_id)
    if not isinstance(note, str) or not note.strip():
        raise FeedbackValueError("write a note on how the ticket was resolved")
    if len(note) > MAX_NOTE_CHARS:
        raise FeedbackValueError(f"the note is {len(note)} characters; the limit is {MAX_NOTE_CHARS}")
    if not isinstance(operator, str) or not operator.strip() or len(operator) > MAX_OPERATOR_CHARS:
        raise FeedbackValueError("operator must be a login name of at most 128 characters")
    ensure_schema(store)
    with store.engine.execution_options(**{WRITE_OPTION: True}).begin() as conn:
        status = conn.execute(select(HandoffTicket.status).where(HandoffTicket.id == ticket_id)).scalar_one_or_none()
        if status is None:
            raise UnknownRecordError(f"handoff ticket {ticket_id} does not exist")
        closed = conn.execute(
            update(HandoffTicket)
            .where(HandoffTicket.id == ticket_id, HandoffTicket.status != "closed")
            .values(status="closed")
        )
        if closed.rowcount == 0:
            raise TicketClosedError(f"handoff ticket {ticket_id} is already closed")
        # A ticket reopened with set_handoff_status() and closed again keeps only its latest closure.
        conn.execute(delete(handoff_closures).where(handoff_closures.c.ticket_id == ticket_id))
        conn.execute(insert(handoff_closures).values(ticket_id=ticket_id, note=redact(note.strip()),
                                                     closed_by=operator.strip(), closed_at=utcnow()))
    return get_handoff(store, ticket_id)


def _check_ticket(ticket_id: Any) -> int:
    if isinstance(ticket_id, float) and ticket_id.is_integer():
        ticket_id = int(ticket_id)  # a number field in the UI sends 3.0
    if isinstance(ticket_id, bool) or not isinstance(ticket_id, int) or ticket_id < 1:
        raise FeedbackValueError(f"ticket id must be a positive integer, got {ticket_id!r}")
    return ticket_id
