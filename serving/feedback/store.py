"""The feedback store: what the chat UI and the API write, what the admin view and the reward stage read.

Every piece of free text (messages, corrections, handoff reasons and transcripts, KB citations) goes
through :func:`serving.feedback.pii.redact` before it reaches the database. Feedback is an upsert on
(message, rater) done by the database itself (``INSERT ... ON CONFLICT DO UPDATE``), so repeated or
concurrent clicks update one row instead of racing to insert two.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, case, func, insert, inspect, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError

from dialogue.errors import ParleyError

from . import pairs
from .engine import WRITE_OPTION, FeedbackStoreError, make_engine
from .models import HANDOFF_STATUSES, MODES, ROLES, Base, Conversation, Feedback, HandoffTicket, Message, utcnow
from .pii import contains_pii, redact, redact_obj

MAX_TEXT_CHARS = 32_000  # a long answer or transcript turn; anything larger is a client bug, not feedback
MAX_RATER_CHARS = 128
MAX_RECENT = 1_000


class FeedbackValueError(ParleyError, ValueError):
    """A feedback call got an argument it cannot store (bad rating, empty correction, unknown mode...)."""


class UnknownRecordError(ParleyError, LookupError):
    """A conversation, message or ticket id does not exist in this store."""


def _check_text(name: str, value: Any, *, allow_empty: bool) -> str:
    if not isinstance(value, str):
        raise FeedbackValueError(f"{name} must be a string, got {type(value).__name__}")
    if not allow_empty and not value.strip():
        raise FeedbackValueError(f"{name} is empty")
    if len(value) > MAX_TEXT_CHARS:
        raise FeedbackValueError(f"{name} is {len(value)} characters; the limit is {MAX_TEXT_CHARS}")
    return value


def _check_choice(name: str, value: Any, choices: Sequence[str]) -> str:
    if value not in choices:
        raise FeedbackValueError(f"{name} must be one of {', '.join(choices)}; got {value!r}")
    return value


def _check_id(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise FeedbackValueError(f"{name} must be a positive integer id, got {value!r}")
    return value


def _exists(conn: Connection, model: type[Base], row_id: int) -> bool:
    return conn.execute(select(model.id).where(model.id == row_id)).first() is not None


def rater_key(rater: Any) -> str:
    """The stored rater id: as given, or a stable pseudonym when it looks like an e-mail or phone number."""
    if not isinstance(rater, str) or not rater.strip():
        raise FeedbackValueError("rater must be a non-empty string (a user name or session id)")
    rater = rater.strip()
    if contains_pii(rater):
        return "anon-" + hashlib.blake2b(rater.lower().encode(), digest_size=8).hexdigest()
    if len(rater) > MAX_RATER_CHARS:
        raise FeedbackValueError(f"rater id is {len(rater)} characters; the limit is {MAX_RATER_CHARS}")
    return rater


class FeedbackStore:
    """Conversations, messages, feedback and handoff tickets in SQLite (WAL) or PostgreSQL.

    One engine (one connection pool) per store: create the store once per process and share it across
    requests and threads; all methods are thread-safe.
    """

    def __init__(self, url: str | Path, *, create: bool = True, **engine_kwargs: Any) -> None:
        self.engine: Engine = make_engine(url, must_exist=not create, **engine_kwargs)
        self._writer = self.engine.execution_options(**{WRITE_OPTION: True})
        if create:
            Base.metadata.create_all(self._writer)
        else:
            missing = set(Base.metadata.tables) - set(inspect(self.engine).get_table_names())
            if missing:
                self.engine.dispose()
                raise FeedbackStoreError(
                    f"{self.url} is not a feedback store (missing tables: {', '.join(sorted(missing))})"
                )

    @property
    def url(self) -> str:
        return self.engine.url.render_as_string(hide_password=True)

    def close(self) -> None:
        """Close pooled connections (the store must not be used afterwards)."""
        self.engine.dispose()

    def __enter__(self) -> FeedbackStore:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        with self._writer.begin() as conn:
            yield conn

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        with self.engine.connect() as conn:
            yield conn

    # --- writes ----------------------------------------------------------------------------------------

    def create_conversation(self, mode: str, model_name: str, adapter_hash: str | None = None) -> int:
        """Start a conversation; ``mode`` is support, translate or api. Returns its id."""
        _check_choice("mode", mode, MODES)
        if not isinstance(model_name, str) or not model_name.strip() or len(model_name) > 200:
            raise FeedbackValueError("model_name must be a non-empty string of at most 200 characters")
        if adapter_hash is not None and (not isinstance(adapter_hash, str) or len(adapter_hash) > 128):
            raise FeedbackValueError("adapter_hash must be a string of at most 128 characters or None")
        with self._write() as conn:
            return conn.execute(
                insert(Conversation)
                .values(mode=mode, model_name=model_name, adapter_hash=adapter_hash, created_at=utcnow())
                .returning(Conversation.id)
            ).scalar_one()

    def add_message(
        self,
        conversation_id: int,
        role: str,
        content: str,
        *,
        kb_ids: Sequence[str | int] | None = None,
        citations: Sequence[Any] | None = None,
    ) -> int:
        """Append a (redacted) message as the conversation's next turn. Returns the message id."""
        _check_id("conversation_id", conversation_id)
        _check_choice("role", role, ROLES)
        content = redact(_check_text("content", content, allow_empty=True))
        kb = None if kb_ids is None else [k if isinstance(k, int) else redact(str(k)) for k in kb_ids]
        cites = None if citations is None else redact_obj(list(citations))
        for attempt in range(5):
            try:
                with self._write() as conn:
                    if not _exists(conn, Conversation, conversation_id):
                        raise UnknownRecordError(f"conversation {conversation_id} does not exist")
                    turn = conn.execute(
                        select(func.coalesce(func.max(Message.turn) + 1, 0)).where(
                            Message.conversation_id == conversation_id
                        )
                    ).scalar_one()
                    return conn.execute(
                        insert(Message)
                        .values(
                            conversation_id=conversation_id,
                            turn=turn,
                            role=role,
                            content=content,
                            kb_ids=kb,
                            citations=cites,
                            created_at=utcnow(),
                        )
                        .returning(Message.id)
                    ).scalar_one()
            except IntegrityError:  # two writers took the same turn number (PostgreSQL): retry with the next
                if attempt == 4:
                    raise
        raise AssertionError("unreachable")

    def record_feedback(
        self,
        message_id: int,
        rater: str,
        like: bool | None = None,
        rating: int | None = None,
        correction: str | None = None,
    ) -> int:
        """Create or update the rater's feedback on an assistant answer. Returns the feedback row id.

        Only the fields given (not None) change, so a like click keeps an earlier rating and vice
        versa. The upsert is one statement, safe under concurrent clicks from any number of processes.
        """
        _check_id("message_id", message_id)
        rater = rater_key(rater)
        values: dict[str, Any] = {}
        if like is not None:
            if not isinstance(like, bool):
                raise FeedbackValueError(f"like must be True, False or None, got {like!r}")
            values["like"] = like
        if rating is not None:
            if isinstance(rating, bool) or not isinstance(rating, int) or not 1 <= rating <= 5:
                raise FeedbackValueError(f"rating must be an integer from 1 to 5, got {rating!r}")
            values["rating"] = rating
        if correction is not None:
            values["correction"] = redact(_check_text("correction", correction, allow_empty=False).strip())
        if not values:
            raise FeedbackValueError("record_feedback needs at least one of like, rating or correction")
        now = utcnow()
        with self._write() as conn:
            role = conn.execute(select(Message.role).where(Message.id == message_id)).scalar_one_or_none()
            if role is None:
                raise UnknownRecordError(f"message {message_id} does not exist")
            if role != "assistant":
                raise FeedbackValueError(f"message {message_id} is a {role} message; feedback is for answers")
            dialect_insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
            stmt = dialect_insert(Feedback).values(
                message_id=message_id, rater=rater, created_at=now, updated_at=now, **values
            )
            stmt = stmt.on_conflict_do_update(
                index_elements=[Feedback.message_id, Feedback.rater],
                set_={**{k: stmt.excluded[k] for k in values}, "updated_at": stmt.excluded.updated_at},
            ).returning(Feedback.id)
            return conn.execute(stmt).scalar_one()

    def open_handoff(
        self, conversation_id: int, reason: str, transcript: Sequence[dict[str, str]] | None = None
    ) -> int:
        """Open a ticket for a human agent; the transcript defaults to the stored conversation."""
        _check_id("conversation_id", conversation_id)
        reason = redact(_check_text("reason", reason, allow_empty=False).strip())
        with self._write() as conn:
            if not _exists(conn, Conversation, conversation_id):
                raise UnknownRecordError(f"conversation {conversation_id} does not exist")
            if transcript is None:
                rows = conn.execute(
                    select(Message.role, Message.content)
                    .where(Message.conversation_id == conversation_id)
                    .order_by(Message.turn)
                )
                turns = [{"role": r.role, "content": r.content} for r in rows]
            else:
                turns = self._check_transcript(transcript)
            return conn.execute(
                insert(HandoffTicket)
                .values(
                    conversation_id=conversation_id, reason=reason, transcript=turns, status="open", created_at=utcnow()
                )
                .returning(HandoffTicket.id)
            ).scalar_one()

    @staticmethod
    def _check_transcript(transcript: Any) -> list[dict[str, str]]:
        if not isinstance(transcript, (list, tuple)):
            raise FeedbackValueError("transcript must be a list of {role, content} messages")
        turns = []
        for i, message in enumerate(transcript):
            if not isinstance(message, dict) or "role" not in message or "content" not in message:
                raise FeedbackValueError(f"transcript message {i} must have 'role' and 'content'")
            role = _check_choice(f"transcript message {i} role", message["role"], ROLES)
            content = _check_text(f"transcript message {i} content", message["content"], allow_empty=True)
            turns.append({"role": role, "content": redact(content)})
        return turns

    def set_handoff_status(self, ticket_id: int, status: str) -> None:
        """Move a ticket to assigned or closed."""
        _check_id("ticket_id", ticket_id)
        _check_choice("status", status, HANDOFF_STATUSES)
        with self._write() as conn:
            result = conn.execute(update(HandoffTicket).where(HandoffTicket.id == ticket_id).values(status=status))
            if result.rowcount == 0:
                raise UnknownRecordError(f"handoff ticket {ticket_id} does not exist")

    # --- reads -----------------------------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """Counts for the admin view, plus likes, dislikes and like ratio per UTC day (for a plot)."""
        with self._read() as conn:
            count = lambda model: conn.execute(select(func.count()).select_from(model)).scalar_one()  # noqa: E731
            likes = func.sum(case((Feedback.like.is_(True), 1), else_=0))
            dislikes = func.sum(case((Feedback.like.is_(False), 1), else_=0))
            totals = conn.execute(
                select(
                    func.count(),
                    likes,
                    dislikes,
                    func.count(Feedback.rating),
                    func.avg(Feedback.rating),
                    func.count(Feedback.correction),
                )
            ).one()
            day = self._utc_day(conn, Feedback.updated_at)
            per_day = conn.execute(select(day.label("day"), likes, dislikes).group_by(day).order_by(day)).all()
            open_tickets = conn.execute(
                select(func.count()).select_from(HandoffTicket).where(HandoffTicket.status != "closed")
            ).scalar_one()
            days = []
            for d, lk, dk in per_day:
                lk, dk = int(lk or 0), int(dk or 0)
                days.append(
                    {
                        "day": str(d),
                        "likes": lk,
                        "dislikes": dk,
                        "like_ratio": round(lk / (lk + dk), 4) if lk + dk else None,
                    }
                )
            return {
                "conversations": count(Conversation),
                "messages": count(Message),
                "feedback": totals[0],
                "likes": int(totals[1] or 0),
                "dislikes": int(totals[2] or 0),
                "ratings": totals[3],
                "mean_rating": None if totals[4] is None else round(float(totals[4]), 3),
                "corrections": totals[5],
                "handoffs_open": open_tickets,
                "per_day": days,
            }

    @staticmethod
    def _utc_day(conn: Connection, column: Any) -> Any:
        if conn.dialect.name == "postgresql":
            return func.date(func.timezone("UTC", column))
        return func.date(column)  # SQLite holds naive UTC text

    def recent(self, n: int = 50) -> list[dict[str, Any]]:
        """The ``n`` most recently updated feedback rows with the answer they rate, newest first."""
        if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_RECENT:
            raise FeedbackValueError(f"n must be an integer from 1 to {MAX_RECENT}, got {n!r}")
        with self._read() as conn:
            rows = conn.execute(
                select(
                    Feedback.id,
                    Feedback.message_id,
                    Message.conversation_id,
                    Conversation.mode,
                    Conversation.model_name,
                    Feedback.rater,
                    Feedback.like,
                    Feedback.rating,
                    Feedback.correction,
                    Message.content,
                    Feedback.updated_at,
                )
                .join(Message, Feedback.message_id == Message.id)
                .join(Conversation, Message.conversation_id == Conversation.id)
                .order_by(Feedback.updated_at.desc(), Feedback.id.desc())
                .limit(n)
            ).mappings()
            return [dict(row) for row in rows]

    def feedback_for(self, message_id: int) -> list[dict[str, Any]]:
        """All raters' feedback rows on one message, oldest first."""
        _check_id("message_id", message_id)
        with self._read() as conn:
            rows = conn.execute(
                select(Feedback.__table__).where(Feedback.message_id == message_id).order_by(Feedback.id)
            ).mappings()
            return [dict(row) for row in rows]

    def export_preferences(
        self, max_pairs_per_prompt: int = pairs.DEFAULT_MAX_PAIRS_PER_PROMPT
    ) -> list[dict[str, Any]]:
        """TRL preference rows built from this store's feedback (see :mod:`serving.feedback.pairs`)."""
        with self._read() as conn:
            answers = self._rated_answers(conn)
        return pairs.build_pairs(answers, max_pairs_per_prompt=max_pairs_per_prompt)

    @staticmethod
    def _rated_answers(conn: Connection) -> list[pairs.RatedAnswer]:
        """Every assistant message with feedback, with its prompt (earlier turns) and all raters' feedback."""
        feedback_rows = conn.execute(
            select(Feedback.id, Feedback.message_id, Feedback.like, Feedback.rating, Feedback.correction).order_by(
                Feedback.message_id, Feedback.id
            )
        ).all()
        by_message: dict[int, list[pairs.Rating]] = {}
        for row in feedback_rows:
            by_message.setdefault(row.message_id, []).append(
                pairs.Rating(feedback_id=row.id, like=row.like, rating=row.rating, correction=row.correction)
            )
        if not by_message:
            return []
        rated = conn.execute(
            select(Message.id, Message.conversation_id, Message.turn, Message.role, Message.content)
            .where(Message.id.in_(list(by_message)))
            .order_by(Message.id)
        ).all()
        conversation_ids = sorted({m.conversation_id for m in rated})
        history: dict[int, list[tuple[int, str, str]]] = {}
        for chunk_start in range(0, len(conversation_ids), 500):
            chunk = conversation_ids[chunk_start : chunk_start + 500]
            for m in conn.execute(
                select(Message.conversation_id, Message.turn, Message.role, Message.content)
                .where(Message.conversation_id.in_(chunk))
                .order_by(Message.conversation_id, Message.turn)
            ):
                history.setdefault(m.conversation_id, []).append((m.turn, m.role, m.content))
        answers = []
        for m in rated:
            if m.role != "assistant":
                continue
            prompt = [{"role": r, "content": c} for t, r, c in history[m.conversation_id] if t < m.turn]
            answers.append(
                pairs.RatedAnswer(
                    message_id=m.id,
                    conversation_id=m.conversation_id,
                    prompt=prompt,
                    content=m.content,
                    ratings=tuple(by_message[m.id]),
                )
            )
        return answers
