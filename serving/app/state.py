"""Per-browser-tab state of the Gradio app: what is on screen and which stored message each bubble is.

The chat history shown in the browser is never read back as model input: a client could forge it. The
server keeps the conversation in :class:`~serving.app.service.Session` and the display list here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from serving.app.service import Session
from serving.handoff import DislikeStreak


@dataclass
class ChatState:
    """One tab's conversation(s): display bubbles, bubble index -> stored message id, and the session(s)."""

    mode: str
    session: Session | None = None
    display: list[dict[str, str]] = field(default_factory=list)
    message_ids: dict[int, int] = field(default_factory=dict)
    sessions_by_message: dict[int, Session] = field(default_factory=dict)
    streak: DislikeStreak = field(default_factory=DislikeStreak)
    disliked: int | None = None  # the answer of the newest thumbs-down: where a dislike reason goes
    comparison: tuple[int, int] | None = None  # (answer, its alternative) on screen for "which is better?"

    def new_session(self) -> Session:
        """A fresh store conversation; the dislike streak carries over (it is about this customer's patience)."""
        self.session = Session(self.mode, streak=self.streak)  # type: ignore[arg-type]
        return self.session

    def current(self) -> Session:
        return self.session or self.new_session()

    def last_answer(self) -> int | None:
        """Stored id of the newest assistant bubble, if any."""
        return self.message_ids[max(self.message_ids)] if self.message_ids else None

    def remember(self, message_id: int | None, session: Session) -> None:
        """Tie the newest bubble to its stored message."""
        if message_id is not None:
            self.message_ids[len(self.display) - 1] = message_id
            self.sessions_by_message[message_id] = session

    def notice(self, text: str) -> None:
        """A service line in the chat (handoff, errors); it has no stored message, so votes on it are ignored."""
        self.display.append({"role": "assistant", "content": text})
