"""The "Why this answer" explanation of each stored answer (:mod:`serving.explain`), one row per message.

Its own table, ``message_explanations`` (``message_id`` -> JSON), in its own metadata and created on the
store's engine with ``create_all`` on first use, as :mod:`serving.feedback.tickets` does for handoff closures:
a database written by an older Parley gains the table and keeps everything it has. Every string in a stored
explanation is redacted (:func:`serving.feedback.pii.redact_obj`): the KB sentences and guard reasons it holds
carry no customer text today, but a stored copy must never be the one place personal data slips through.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, Column, ForeignKey, Integer, MetaData, Table, delete, insert, select

from serving.feedback.engine import WRITE_OPTION
from serving.feedback.migrate import SideTables
from serving.feedback.models import Message, UTCDateTime, utcnow
from serving.feedback.pii import redact_obj
from serving.feedback.store import FeedbackStore, FeedbackValueError

metadata = MetaData()
message_explanations = Table(
    "message_explanations",
    metadata,
    Column("message_id", Integer, ForeignKey(Message.__table__.c.id, ondelete="CASCADE"), primary_key=True),
    Column("explanation", JSON, nullable=False),  # always redacted
    Column("created_at", UTCDateTime, nullable=False),
)

_TABLES = SideTables(metadata)


def ensure_schema(store: FeedbackStore) -> None:
    """Create ``message_explanations`` if this database does not have it yet (idempotent, once per engine)."""
    _TABLES.ensure(store.engine)


def _check_message(message_id: Any) -> int:
    if isinstance(message_id, bool) or not isinstance(message_id, int) or message_id < 1:
        raise FeedbackValueError(f"message id must be a positive integer, got {message_id!r}")
    return message_id


def save_explanation(store: FeedbackStore, message_id: int, explanation: dict[str, Any]) -> dict[str, Any]:
    """Store (or replace) the redacted explanation of a message; returns what was stored."""
    message_id = _check_message(message_id)
    if not isinstance(explanation, dict):
        raise FeedbackValueError("an explanation is a JSON object")
    stored = redact_obj(explanation)
    ensure_schema(store)
    with store.engine.execution_options(**{WRITE_OPTION: True}).begin() as conn:
        conn.execute(delete(message_explanations).where(message_explanations.c.message_id == message_id))
        conn.execute(insert(message_explanations).values(message_id=message_id, explanation=stored,
                                                         created_at=utcnow()))
    return stored


def get_explanation(store: FeedbackStore, message_id: int) -> dict[str, Any] | None:
    """The stored explanation of a message, or None when it has none."""
    message_id = _check_message(message_id)
    ensure_schema(store)
    with store.engine.connect() as conn:
        return conn.execute(
            select(message_explanations.c.explanation).where(message_explanations.c.message_id == message_id)
        ).scalar_one_or_none()
