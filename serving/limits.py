"""Server-side limits shared by the Gradio app and the API: message size, turns, tokens, time, concurrency.

The browser can be bypassed (gradio_client, curl), so every limit is checked here, in the one code path
both front ends call. A request over a limit gets a :class:`LimitError` with a message meant for the user;
a request that finds every generation slot and every waiting place taken gets :class:`BusyError`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

from groundwork.errors import ParleyError


class LimitError(ParleyError, ValueError):
    """A request exceeds a configured limit (too long, too many turns, too many tokens)."""


class BusyError(ParleyError):
    """Every generation slot is busy and the waiting line is full; the client should retry later."""


BUSY_MESSAGE = "The assistant is busy right now. Please try again in a moment."


@dataclass(frozen=True)
class Limits:
    """The numbers from the ``serve:`` recipe section."""

    max_message_chars: int = 2000
    max_turns: int = 20
    max_new_tokens: int = 256
    request_timeout_s: float = 60.0

    def check_message(self, text: object) -> str:
        """The message stripped; raises when it is not text, empty or too long."""
        if not isinstance(text, str):
            raise LimitError("the message must be text")
        stripped = text.strip()
        if not stripped:
            raise LimitError("the message is empty")
        if len(stripped) > self.max_message_chars:
            raise LimitError(f"the message is {len(stripped)} characters long; the limit is {self.max_message_chars}")
        return stripped

    def check_turns(self, user_turns: int) -> None:
        """Refuse a conversation that already holds ``max_turns`` user messages."""
        if user_turns > self.max_turns:
            raise LimitError(
                f"this conversation reached the limit of {self.max_turns} messages; please start a new one"
            )

    def tokens(self, requested: int | None) -> int:
        """The new-token budget: what the client asked for, capped by the server limit."""
        if requested is None:
            return self.max_new_tokens
        if isinstance(requested, bool) or not isinstance(requested, int) or requested < 1:
            raise LimitError("max_tokens must be a positive integer")
        return min(requested, self.max_new_tokens)


def with_deadline(chunks: Iterator[str], timeout_s: float, on_timeout=None) -> Iterator[str]:
    """Yield ``chunks`` until ``timeout_s`` has passed, then stop (calling ``on_timeout`` first).

    The check runs between chunks, so the engine's own cancellation (closing its iterator) frees it.
    """
    deadline = time.monotonic() + timeout_s
    try:
        for chunk in chunks:
            yield chunk
            if time.monotonic() > deadline:
                if on_timeout is not None:
                    on_timeout()
                return
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            close()


class Gate:
    """At most ``slots`` generations run at once; up to ``waiting`` more wait; anyone else hears "busy".

    Both front ends share one gate, so the API cannot starve the UI of CPU (or the reverse) and the total
    load on the model stays bounded.
    """

    def __init__(self, slots: int, waiting: int, wait_timeout_s: float) -> None:
        self._slots = threading.BoundedSemaphore(slots)
        self._lock = threading.Lock()
        self._waiting = 0
        self._running = 0
        self._max_slots = slots
        self._max_waiting = waiting
        self._wait_timeout_s = wait_timeout_s

    @property
    def waiting(self) -> int:
        """Requests waiting for a slot now (the queue depth /metrics reports)."""
        return self._waiting

    @property
    def running(self) -> int:
        """Generations holding a slot now."""
        return self._running

    @property
    def slots(self) -> int:
        return self._max_slots

    def acquire(self) -> None:
        """Take a slot, waiting in line if there is room in it; raises :class:`BusyError` otherwise."""
        if not self._slots.acquire(blocking=False):
            with self._lock:
                if self._waiting >= self._max_waiting:
                    raise BusyError(BUSY_MESSAGE)
                self._waiting += 1
            try:
                if not self._slots.acquire(timeout=self._wait_timeout_s):
                    raise BusyError(BUSY_MESSAGE)
            finally:
                with self._lock:
                    self._waiting -= 1
        with self._lock:
            self._running += 1

    def release(self) -> None:
        with self._lock:
            self._running -= 1
        self._slots.release()

    def hold(self, chunks: Iterator[str]) -> Iterator[str]:
        """Run a stream inside a slot: acquired before the first chunk, released when the stream ends or closes."""
        self.acquire()
        try:
            yield from chunks
        finally:
            self.release()
