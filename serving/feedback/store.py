"""The feedback store: what the chat UI and the API write, what the admin view and the reward stage read.

Every piece of free text (messages, corrections, handoff reasons and transcripts, KB citations) goes
through :func:`serving.feedback.pii.redact` before it reaches the database. Feedback is an upsert on
(message, rater) done by the database itself (``INSERT ... ON CONFLICT DO UPDATE``), so repeated or
concurrent clicks update one row instead of racing to insert two. A dislike may carry a reason
(:mod:`serving.feedback.reasons`); an API client may send an idempotency key, and a retry with the same key
returns the first result without applying the request again. An "another answer" sample is stored as a
variant of the answer it was drawn for, and a rater's choice between the two as a :class:`Comparison`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, case, func, insert, inspect, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError

from groundwork.errors import ParleyError
from serving.feedback import pairs
from serving.feedback.engine import WRITE_OPTION, FeedbackStoreError, make_engine
from serving.feedback.migrate import upgrade
from serving.feedback.models import (
    CORE_TABLES,
    HANDOFF_STATUSES,
    MODES,
    PREFERRED,
    ROLES,
    Comparison,
    Conversation,
    Feedback,
    HandoffTicket,
    IdempotencyKey,
    Message,
    utcnow,
)
from serving.feedback.pii import contains_pii, redact, redact_obj
from serving.feedback.reasons import REASON_KEYS, REASONS

MAX_TEXT_CHARS = 32_000  # a long answer or transcript turn; anything larger is a client bug, not feedback
MAX_RATER_CHARS = 128
MAX_RECENT = 1_000
MAX_IDEMPOTENCY_KEY_CHARS = 255


class FeedbackValueError(ParleyError, ValueError):
    """A feedback call got an argument it cannot store (bad rating, empty correction, unknown mode...)."""


class UnknownRecordError(ParleyError, LookupError):
    """A conversation, message or ticket id does not exist in this store."""


class IdempotencyConflictError(FeedbackValueError):
    """An idempotency key was sent again with a different request (a client bug, never a retry)."""


@dataclass(frozen=True)
class FeedbackReceipt:
    """What :meth:`FeedbackStore.submit_feedback` did: the row it wrote (or, for a replay, wrote before)."""

    feedback_id: int
    replayed: bool  # True: the idempotency key was seen before and nothing was written now
    row: dict[str, Any]  # the stored row as it is now: message_id, rater, like, rating, reason, correction...


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


def check_reason(value: Any) -> str:
    """A known dislike reason key (see :data:`serving.feedback.reasons.REASONS`)."""
    return _check_choice("reason", value, REASON_KEYS)


def _exists(conn: Connection, model: Any, row_id: int) -> bool:
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
        if not create:
            missing = set(CORE_TABLES) - set(inspect(self.engine).get_table_names())
            if missing:
                self.engine.dispose()
                raise FeedbackStoreError(
                    f"{self.url} is not a feedback store (missing tables: {', '.join(sorted(missing))})"
                )
        # New tables and columns of later Parley versions (additive and nullable; see serving.feedback.migrate).
        self.upgraded = upgrade(self.engine)

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

    @contextmanager
    def _snapshot(self) -> Iterator[Connection]:
        """A read transaction in which several SELECTs see one state (SQLite: a read transaction already does)."""
        with self.engine.connect() as conn:
            if conn.dialect.name == "postgresql":
                conn = conn.execution_options(isolation_level="REPEATABLE READ")
            with conn.begin():
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
        variant_of: int | None = None,
    ) -> int:
        """Append a (redacted) message as the conversation's next turn. Returns the message id.

        ``variant_of`` stores a second sample for an earlier assistant message of the same conversation
        ("another answer"): it gets a turn number of its own but is not part of the conversation's history.
        """
        _check_id("conversation_id", conversation_id)
        _check_choice("role", role, ROLES)
        if variant_of is not None:
            _check_id("variant_of", variant_of)
            if role != "assistant":
                raise FeedbackValueError("only an assistant message can be an alternative answer")
        content = redact(_check_text("content", content, allow_empty=True))
        kb = None if kb_ids is None else [k if isinstance(k, int) else redact(str(k)) for k in kb_ids]
        cites = None if citations is None else redact_obj(list(citations))
        for attempt in range(5):
            try:
                with self._write() as conn:
                    if not _exists(conn, Conversation, conversation_id):
                        raise UnknownRecordError(f"conversation {conversation_id} does not exist")
                    if variant_of is not None:
                        self._check_variant_target(conn, conversation_id, variant_of)
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
                            variant_of=variant_of,
                            created_at=utcnow(),
                        )
                        .returning(Message.id)
                    ).scalar_one()
            except IntegrityError:  # two writers took the same turn number (PostgreSQL): retry with the next
                if attempt == 4:
                    raise
        raise AssertionError("unreachable")

    @staticmethod
    def _check_variant_target(conn: Connection, conversation_id: int, variant_of: int) -> None:
        target = conn.execute(
            select(Message.conversation_id, Message.role, Message.variant_of).where(Message.id == variant_of)
        ).one_or_none()
        if target is None:
            raise UnknownRecordError(f"message {variant_of} does not exist")
        if target.conversation_id != conversation_id or target.role != "assistant":
            raise FeedbackValueError(f"message {variant_of} is not an answer in conversation {conversation_id}")
        if target.variant_of is not None:
            raise FeedbackValueError(f"message {variant_of} is itself an alternative; use its original answer")

    @staticmethod
    def _upsert(conn: Connection, model: Any, keys: dict[str, Any], values: dict[str, Any]) -> int:
        """``INSERT ... ON CONFLICT (keys) DO UPDATE SET values, updated_at``; returns the row id."""
        now = utcnow()
        dialect_insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
        stmt = dialect_insert(model).values(**keys, created_at=now, updated_at=now, **values)
        stmt = stmt.on_conflict_do_update(
            index_elements=[getattr(model, k) for k in keys],
            set_={**{k: stmt.excluded[k] for k in values}, "updated_at": stmt.excluded.updated_at},
        ).returning(model.id)
        return conn.execute(stmt).scalar_one()

    @staticmethod
    def _feedback_values(
        like: Any, rating: Any, correction: Any, reason: Any
    ) -> dict[str, Any]:
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
        if reason is not None:
            check_reason(reason)
            if like is True:
                raise FeedbackValueError("a reason says what was wrong: it goes with a dislike, not a like")
            values["reason"], values["like"] = reason, False  # a reason is a dislike
        elif like is True:
            values["reason"] = None  # a like takes back an earlier dislike's reason
        if not values:
            raise FeedbackValueError("record_feedback needs at least one of like, rating or correction (or a reason)")
        return values

    @staticmethod
    def _answer_role(conn: Connection, message_id: int) -> None:
        role = conn.execute(select(Message.role).where(Message.id == message_id)).scalar_one_or_none()
        if role is None:
            raise UnknownRecordError(f"message {message_id} does not exist")
        if role != "assistant":
            raise FeedbackValueError(f"message {message_id} is a {role} message; feedback is for answers")

    def record_feedback(
        self,
        message_id: int,
        rater: str,
        like: bool | None = None,
        rating: int | None = None,
        correction: str | None = None,
        reason: str | None = None,
        idempotency_key: str | None = None,
    ) -> int:
        """Create or update the rater's feedback on an assistant answer. Returns the feedback row id.

        Only the fields given (not None) change, so a like click keeps an earlier rating and vice
        versa. The upsert is one statement, safe under concurrent clicks from any number of processes.
        ``reason`` (a key of :data:`~serving.feedback.reasons.REASONS`) records a dislike with its reason; a
        like clears the reason. ``idempotency_key``: see :meth:`submit_feedback`.
        """
        return self.submit_feedback(
            message_id, rater, like, rating, correction, reason, idempotency_key=idempotency_key
        ).feedback_id

    def submit_feedback(
        self,
        message_id: int,
        rater: str,
        like: bool | None = None,
        rating: int | None = None,
        correction: str | None = None,
        reason: str | None = None,
        *,
        idempotency_key: str | None = None,
    ) -> FeedbackReceipt:
        """:meth:`record_feedback`, returning the stored row, with an optional idempotency key.

        The first request with a key (per rater) is applied and remembered with a digest of what it asked
        for; a later request with the same key and the same content is not applied again (the feedback row
        stays as it is, even if other requests changed it since) and gets ``replayed=True``; the same key
        with different content raises :class:`IdempotencyConflictError`.
        """
        _check_id("message_id", message_id)
        rater = rater_key(rater)
        values = self._feedback_values(like, rating, correction, reason)
        if idempotency_key is not None:
            idempotency_key = _check_text("idempotency_key", idempotency_key, allow_empty=False).strip()
            if len(idempotency_key) > MAX_IDEMPOTENCY_KEY_CHARS:
                raise FeedbackValueError(f"idempotency_key is longer than {MAX_IDEMPOTENCY_KEY_CHARS} characters")
        digest = hashlib.sha256(
            json.dumps({"message_id": message_id, **values}, sort_keys=True).encode()
        ).hexdigest()
        with self._write() as conn:
            if idempotency_key is not None:
                seen = self._claim_key(conn, rater, idempotency_key, digest)
                if seen is not None:
                    return FeedbackReceipt(seen, True, self._feedback_row(conn, seen))
            self._answer_role(conn, message_id)
            feedback_id = self._upsert(conn, Feedback, {"message_id": message_id, "rater": rater}, values)
            if idempotency_key is not None:
                conn.execute(
                    update(IdempotencyKey)
                    .where(IdempotencyKey.rater == rater, IdempotencyKey.key == idempotency_key)
                    .values(feedback_id=feedback_id)
                )
            return FeedbackReceipt(feedback_id, False, self._feedback_row(conn, feedback_id))

    @staticmethod
    def _claim_key(conn: Connection, rater: str, key: str, digest: str) -> int | None:
        """Take the key for this request (None) or return the feedback id of the request that took it before.

        The insert is ``ON CONFLICT DO NOTHING``: on PostgreSQL a concurrent request with the same key waits
        for the first to commit and then sees its row; on SQLite write transactions are serial anyway.
        """
        dialect_insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
        taken = conn.execute(
            dialect_insert(IdempotencyKey)
            .values(rater=rater, key=key, request_hash=digest, created_at=utcnow())
            .on_conflict_do_nothing(index_elements=[IdempotencyKey.rater, IdempotencyKey.key])
            .returning(IdempotencyKey.key)
        ).first()
        if taken is not None:
            return None
        earlier = conn.execute(
            select(IdempotencyKey.request_hash, IdempotencyKey.feedback_id).where(
                IdempotencyKey.rater == rater, IdempotencyKey.key == key
            )
        ).one()
        if earlier.request_hash != digest or earlier.feedback_id is None:
            raise IdempotencyConflictError(
                f"idempotency key {key!r} was already used for a different feedback request"
            )
        return earlier.feedback_id

    @staticmethod
    def _feedback_row(conn: Connection, feedback_id: int) -> dict[str, Any]:
        row = conn.execute(select(Feedback.__table__).where(Feedback.id == feedback_id)).mappings().one()
        return dict(row)

    def record_comparison(
        self, message_id: int, alternative_id: int, rater: str, preferred: str, reason: str | None = None
    ) -> int:
        """Store which of an answer and its alternative (see ``add_message(variant_of=...)``) the rater prefers.

        ``preferred`` is ``"original"`` or ``"alternative"``; ``reason`` says what was wrong with the other
        one (without it the export uses the rater's dislike reason on the rejected answer, if any). One row
        per (answer, alternative, rater): choosing again updates it. Returns the comparison id.
        """
        _check_id("message_id", message_id)
        _check_id("alternative_id", alternative_id)
        rater = rater_key(rater)
        _check_choice("preferred", preferred, PREFERRED)
        if reason is not None:
            check_reason(reason)
        with self._write() as conn:
            variant_of = conn.execute(
                select(Message.variant_of).where(Message.id == alternative_id)
            ).one_or_none()
            if variant_of is None:
                raise UnknownRecordError(f"message {alternative_id} does not exist")
            if variant_of[0] != message_id:
                raise FeedbackValueError(f"message {alternative_id} is not an alternative to message {message_id}")
            return self._upsert(
                conn,
                Comparison,
                {"message_id": message_id, "alternative_id": alternative_id, "rater": rater},
                {"preferred": preferred, "reason": reason},
            )

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
                    .where(Message.conversation_id == conversation_id, Message.variant_of.is_(None))
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
            by_reason = dict(
                conn.execute(
                    select(Feedback.reason, func.count()).where(Feedback.reason.is_not(None)).group_by(Feedback.reason)
                ).all()
            )
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
                "reasons": {key: int(by_reason.get(key, 0)) for key in REASONS},
                "comparisons": count(Comparison),
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
                    Feedback.reason,
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
        """TRL preference rows built from this store's feedback, each tagged with its reward objective.

        See :mod:`serving.feedback.pairs`; one consistent snapshot of the store.
        """
        with self._snapshot() as conn:
            answers, choices = self._export_inputs(conn)
        return pairs.build_pairs(answers, max_pairs_per_prompt=max_pairs_per_prompt, choices=choices)

    def export_all(
        self, max_pairs_per_prompt: int = pairs.DEFAULT_MAX_PAIRS_PER_PROMPT
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """(preference rows, unpaired KTO rows) from one read of the store."""
        with self._snapshot() as conn:
            answers, choices = self._export_inputs(conn)
        return (
            pairs.build_pairs(answers, max_pairs_per_prompt=max_pairs_per_prompt, choices=choices),
            pairs.unpaired_rows(answers),
        )

    def _export_inputs(self, conn: Connection) -> tuple[list[pairs.RatedAnswer], list[pairs.Choice]]:
        comparisons = conn.execute(
            select(
                Comparison.id,
                Comparison.message_id,
                Comparison.alternative_id,
                Comparison.rater,
                Comparison.preferred,
                Comparison.reason,
            ).order_by(Comparison.id)
        ).all()
        extra = {c.message_id for c in comparisons} | {c.alternative_id for c in comparisons}
        answers = self._rated_answers(conn, extra)
        by_id = {a.message_id: a for a in answers}
        rater_reasons = {
            (row.message_id, row.rater): row.reason
            for row in conn.execute(
                select(Feedback.message_id, Feedback.rater, Feedback.reason).where(Feedback.reason.is_not(None))
            )
        }
        choices = []
        for c in comparisons:
            original, alternative = by_id.get(c.message_id), by_id.get(c.alternative_id)
            if original is None or alternative is None:
                continue
            rejected = c.alternative_id if c.preferred == "original" else c.message_id
            reason = c.reason or rater_reasons.get((rejected, c.rater))
            choices.append(pairs.Choice(c.id, original, alternative, c.preferred, reason))
        return [a for a in answers if a.ratings], choices

    @staticmethod
    def _rated_answers(conn: Connection, extra_ids: set[int] | None = None) -> list[pairs.RatedAnswer]:
        """Every assistant message with feedback (and those in ``extra_ids``), with its prompt and feedback.

        The prompt is the conversation's earlier turns, without alternative answers; an alternative's prompt
        is its original answer's.
        """
        feedback_rows = conn.execute(
            select(
                Feedback.id, Feedback.message_id, Feedback.like, Feedback.rating, Feedback.correction, Feedback.reason
            ).order_by(Feedback.message_id, Feedback.id)
        ).all()
        by_message: dict[int, list[pairs.Rating]] = {}
        for row in feedback_rows:
            by_message.setdefault(row.message_id, []).append(
                pairs.Rating(
                    feedback_id=row.id, like=row.like, rating=row.rating, correction=row.correction, reason=row.reason
                )
            )
        wanted = sorted(set(by_message) | (extra_ids or set()))
        if not wanted:
            return []
        rated = []
        for chunk_start in range(0, len(wanted), 500):
            rated += conn.execute(
                select(
                    Message.id,
                    Message.conversation_id,
                    Message.turn,
                    Message.role,
                    Message.content,
                    Message.citations,
                    Message.variant_of,
                ).where(Message.id.in_(wanted[chunk_start : chunk_start + 500]))
            ).all()
        rated.sort(key=lambda m: m.id)
        conversation_ids = sorted({m.conversation_id for m in rated})
        history: dict[int, list[tuple[int, str, str]]] = {}
        turn_of: dict[int, int] = {}
        for chunk_start in range(0, len(conversation_ids), 500):
            chunk = conversation_ids[chunk_start : chunk_start + 500]
            for m in conn.execute(
                select(Message.id, Message.conversation_id, Message.turn, Message.role, Message.content,
                       Message.variant_of)
                .where(Message.conversation_id.in_(chunk))
                .order_by(Message.conversation_id, Message.turn)
            ):
                turn_of[m.id] = m.turn
                if m.variant_of is None:
                    history.setdefault(m.conversation_id, []).append((m.turn, m.role, m.content))
        answers = []
        for m in rated:
            if m.role != "assistant":
                continue
            before = turn_of.get(m.variant_of, m.turn) if m.variant_of is not None else m.turn
            prompt = [{"role": r, "content": c} for t, r, c in history.get(m.conversation_id, []) if t < before]
            answers.append(
                pairs.RatedAnswer(
                    message_id=m.id,
                    conversation_id=m.conversation_id,
                    prompt=prompt,
                    content=m.content,
                    ratings=tuple(by_message.get(m.id, ())),
                    context=pairs.context_of(m.citations),
                    variant_of=m.variant_of,
                )
            )
        return answers
