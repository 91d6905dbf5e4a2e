"""ORM tables of the feedback store: conversations, their messages, feedback on answers, handoff tickets,
"another answer" comparisons and API idempotency keys.

Constraints live in the schema, not only in Python, so that every writer (the Gradio app, the API, a
one-off script) gets the same guarantees: one feedback row per (message, rater), ratings 1-5, known
modes, roles, dislike reasons and ticket states.

Columns added after a store was first created are listed in :data:`ADDED_COLUMNS`; ``create_all`` does not
add columns to an existing table, so :func:`serving.feedback.migrate.upgrade` does.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from serving.feedback.reasons import REASON_KEYS

MODES = ("support", "translate", "api")
ROLES = ("system", "user", "assistant")
HANDOFF_STATUSES = ("open", "assigned", "closed")
PREFERRED = ("original", "alternative")


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator):
    """Timezone-aware UTC datetimes on every backend (SQLite stores naive text, PostgreSQL timestamptz)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: pass a timezone-aware value")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Base(DeclarativeBase):
    pass


class Conversation(Base):
    __tablename__ = "conversations"
    __table_args__ = (CheckConstraint(_in("mode", MODES), name="ck_conversations_mode"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    mode: Mapped[str] = mapped_column(String(16))
    model_name: Mapped[str] = mapped_column(String(200))
    adapter_hash: Mapped[str | None] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Message(Base):
    __tablename__ = "messages"
    __table_args__ = (
        UniqueConstraint("conversation_id", "turn", name="uq_messages_conversation_turn"),
        CheckConstraint(_in("role", ROLES), name="ck_messages_role"),
        CheckConstraint("turn >= 0", name="ck_messages_turn"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"))
    turn: Mapped[int] = mapped_column(Integer)
    role: Mapped[str] = mapped_column(String(16))
    content: Mapped[str] = mapped_column(Text)  # always redacted
    # A second sample for the same prompt ("another answer"): the assistant message it is an alternative to.
    # It takes the next turn number but is no part of the conversation's history.
    variant_of: Mapped[int | None] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"))
    kb_ids: Mapped[list[Any] | None] = mapped_column(JSON)
    citations: Mapped[list[Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Feedback(Base):
    __tablename__ = "feedback"
    __table_args__ = (
        UniqueConstraint("message_id", "rater", name="uq_feedback_message_rater"),
        CheckConstraint("rating IS NULL OR (rating >= 1 AND rating <= 5)", name="ck_feedback_rating"),
        CheckConstraint(f"reason IS NULL OR {_in('reason', REASON_KEYS)}", name="ck_feedback_reason"),
        Index("ix_feedback_updated_at", "updated_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"))
    rater: Mapped[str] = mapped_column(String(128))  # pseudonymised when it looks like personal data
    like: Mapped[bool | None] = mapped_column(Boolean)
    rating: Mapped[int | None] = mapped_column(SmallInteger)
    correction: Mapped[str | None] = mapped_column(Text)  # always redacted
    reason: Mapped[str | None] = mapped_column(String(32))  # why it was disliked (serving.feedback.reasons)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Comparison(Base):
    """A rater's choice between an answer and an alternative sample for the same prompt (one per rater)."""

    __tablename__ = "comparisons"
    __table_args__ = (
        UniqueConstraint("message_id", "alternative_id", "rater", name="uq_comparisons_pair_rater"),
        CheckConstraint(_in("preferred", PREFERRED), name="ck_comparisons_preferred"),
        CheckConstraint(f"reason IS NULL OR {_in('reason', REASON_KEYS)}", name="ck_comparisons_reason"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"))  # the first answer
    alternative_id: Mapped[int] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"))
    rater: Mapped[str] = mapped_column(String(128))
    preferred: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(String(32))  # what was wrong with the rejected one, if said
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class IdempotencyKey(Base):
    """A client's ``Idempotency-Key`` for a feedback request: a retry with the same key is answered, not applied."""

    __tablename__ = "idempotency_keys"

    rater: Mapped[str] = mapped_column(String(128), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    request_hash: Mapped[str] = mapped_column(String(64))
    feedback_id: Mapped[int | None] = mapped_column(ForeignKey("feedback.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class HandoffTicket(Base):
    __tablename__ = "handoff_tickets"
    __table_args__ = (CheckConstraint(_in("status", HANDOFF_STATUSES), name="ck_handoff_status"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"))
    reason: Mapped[str] = mapped_column(Text)  # always redacted
    transcript: Mapped[list[dict[str, str]]] = mapped_column(JSON)  # always redacted
    status: Mapped[str] = mapped_column(String(16), default="open")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


# Columns added to tables that existed before them: (table, column, DDL after the column name). Nullable, so
# rows written before keep their meaning; the check constraint comes with the column where SQL allows it.
ADDED_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("feedback", "reason", f"VARCHAR(32) CONSTRAINT ck_feedback_reason CHECK (reason IS NULL OR "
                           f"{_in('reason', REASON_KEYS)})"),
    ("messages", "variant_of", "INTEGER REFERENCES messages (id) ON DELETE CASCADE"),
)
# Tables every store has had from the start: a database without them is not a feedback store.
CORE_TABLES = ("conversations", "messages", "feedback", "handoff_tickets")
