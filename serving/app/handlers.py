"""Gradio event handlers: translate UI events into :class:`ChatService` calls and errors into messages.

Every user-facing failure (a limit, a busy server, an unknown language) becomes ``gr.Error`` with a plain
sentence, which the browser shows as a toast and ``gradio_client`` raises as ``AppError`` with the same text.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import gradio as gr

from dialogue.errors import ParleyError
from dialogue.languages import LANGUAGES, UnknownLanguageError
from serving.app.service import ChatService, Session
from serving.app.state import ChatState
from serving.handoff import notice
from serving.limits import BusyError, LimitError

THANKS = "Thank you, your feedback was saved."


def rater_of(request: gr.Request | None) -> str:
    """The logged-in user, else the browser session (a pseudonymous id that stays stable for the tab)."""
    if request is not None and request.username:
        return str(request.username)
    if request is not None and request.session_hash:
        return f"session-{request.session_hash}"
    return "anonymous"


def citations_markdown(citations: list[dict[str, Any]]) -> str:
    if not citations:
        return ""
    lines = ["**Sources**"]
    for i, c in enumerate(citations, start=1):
        snippet = c["text"] if len(c["text"]) <= 180 else c["text"][:177] + "..."
        lines.append(f"{i}. **{c['title']}** (`{c['id']}`): {snippet}")
    return "\n".join(lines)


def _user_error(exc: Exception) -> gr.Error:
    return gr.Error(str(exc), duration=8)


class Handlers:
    """The functions wired to the Blocks; ``service`` is shared with the API."""

    def __init__(self, service: ChatService) -> None:
        self.service = service

    # --- support chat ----------------------------------------------------------------------------------

    def support(self, message: str, state: ChatState | None,
                request: gr.Request) -> Iterator[tuple[list, str, ChatState, str, str]]:
        state = state or ChatState("support")
        session = state.current()
        try:
            turn, deltas = self.service.turn(session, message)
        except LimitError as exc:
            raise _user_error(exc) from None
        state.display += [{"role": "user", "content": turn.user_text}, {"role": "assistant", "content": ""}]
        try:
            for delta in deltas:
                state.display[-1]["content"] += delta
                yield state.display, "", state, "", ""
        except BusyError as exc:
            del state.display[-2:]  # the exchange did not happen; the customer can send it again
            raise _user_error(exc) from None
        state.display[-1]["content"] = turn.text
        state.remember(turn.message_id, session)
        status = f"A human colleague will take over (ticket #{turn.ticket_id})." if turn.ticket_id else ""
        if turn.finish_reason == "timeout":
            status = "The answer was cut short because it took too long."
        yield state.display, citations_markdown(turn.citations), state, "", status

    def human(self, state: ChatState | None, request: gr.Request) -> tuple[list, ChatState, str]:
        """The "Talk to a human" button: open a ticket with the conversation so far."""
        state = state or ChatState("support")
        session = state.current()
        ticket = self.service.open_handoff(session, "customer pressed 'Talk to a human'")
        state.notice(notice(ticket, session.language))
        return state.display, state, f"Handoff ticket #{ticket} opened."

    def reset(self, state: ChatState | None) -> tuple[list, str, ChatState, str]:
        return [], "", ChatState(state.mode if state else "support"), ""

    # --- translation -----------------------------------------------------------------------------------

    def translate(self, text: str, source: str, target: str, state: ChatState | None,
                  request: gr.Request) -> Iterator[tuple[list, ChatState, str]]:
        state = state or ChatState("translate")
        try:
            prompt, detected = self.service.translation_prompt(text or "", target, source)
            session = state.new_session()  # one stored conversation per translation: the prompt is self-contained
            turn, deltas = self.service.turn(session, text, prompt=prompt, use_kb=False, detect_handoff=False)
        except (UnknownLanguageError, LimitError) as exc:
            raise _user_error(exc) from None
        note = f"Detected source language: {LANGUAGES[detected]} ({detected})" if detected else ""
        state.display += [{"role": "user", "content": turn.user_text}, {"role": "assistant", "content": ""}]
        try:
            for delta in deltas:
                state.display[-1]["content"] += delta
                yield state.display, state, note
        except BusyError as exc:
            del state.display[-2:]  # the exchange did not happen; the customer can send it again
            raise _user_error(exc) from None
        state.display[-1]["content"] = turn.text
        state.remember(turn.message_id, session)
        yield state.display, state, note

    # --- feedback --------------------------------------------------------------------------------------

    def _feedback(self, state: ChatState, message_id: int | None, request: gr.Request, **values: Any) -> str:
        if message_id is None:
            raise gr.Error("There is no answer to give feedback on yet.")
        session: Session = state.sessions_by_message.get(message_id) or state.current()
        try:
            ticket = self.service.feedback(session, message_id, rater_of(request), **values)
        except (LimitError, ParleyError, ValueError) as exc:
            raise _user_error(exc) from None
        if ticket is not None:
            state.notice(notice(ticket, session.language))
            return f"{THANKS} Sorry this did not help: a human colleague will take over (ticket #{ticket})."
        return THANKS

    def like(self, state: ChatState | None, data: gr.LikeData, request: gr.Request) -> tuple[str, ChatState, Any]:
        """Chatbot thumbs: ``data.index`` is the bubble; bubbles without a stored answer are ignored."""
        state = state or ChatState("support")
        index = data.index[0] if isinstance(data.index, (list, tuple)) else data.index
        message_id = state.message_ids.get(int(index))
        if message_id is None or not isinstance(data.liked, bool):
            return "", state, gr.skip()
        shown = len(state.display)
        status = self._feedback(state, message_id, request, like=data.liked)
        # Re-sending the chat would reset the thumbs the customer just clicked; only do it to show a handoff notice.
        return status, state, state.display if len(state.display) != shown else gr.skip()

    def vote(self, liked: bool, state: ChatState | None, request: gr.Request) -> tuple[str, ChatState, list]:
        """Like/dislike the newest answer (the same as the thumbs, callable from gradio_client)."""
        state = state or ChatState("support")
        return self._feedback(state, state.last_answer(), request, like=bool(liked)), state, state.display

    def rate(self, rating: int | float | str | None, state: ChatState | None,
             request: gr.Request) -> tuple[str, ChatState]:
        state = state or ChatState("support")
        try:
            value = int(rating)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            raise gr.Error("Choose a rating from 1 to 5.") from None
        if not 1 <= value <= 5:
            raise gr.Error("Choose a rating from 1 to 5.")
        return self._feedback(state, state.last_answer(), request, rating=value), state

    def suggest(self, text: str, state: ChatState | None, request: gr.Request) -> tuple[str, ChatState, str, list]:
        state = state or ChatState("support")
        status = self._feedback(state, state.last_answer(), request, correction=text)
        return status, state, "", state.display
