"""Gradio event handlers: translate UI events into :class:`ChatService` calls and errors into messages.

Every user-facing failure (a limit, a busy server, an unknown language) becomes ``gr.Error`` with a plain
sentence, which the browser shows as a toast and ``gradio_client`` raises as ``AppError`` with the same text.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import gradio as gr

from groundwork.errors import ParleyError
from groundwork.languages import LANGUAGES, UnknownLanguageError
from serving.app.explain_view import add_explanation
from serving.app.service import ChatService, Session
from serving.app.state import ChatState
from serving.feedback.reasons import REASONS
from serving.handoff import notice
from serving.limits import BusyError, LimitError

THANKS = "Thank you, your feedback was saved."
ASK_REASON = "What was wrong with it? Choose a reason below (optional)."
WHICH_IS_BETTER = "Here is another answer. Which one is better?"
CHOICES = {"first": "original", "second": "alternative"}  # what the radio says -> what the store keeps


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
        add_explanation(state.display, turn)  # "Why this answer", collapsed under the answer
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
        add_explanation(state.display, turn)  # "Why this answer", collapsed under the answer
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

    @staticmethod
    def _reason_box(state: ChatState, message_id: int, liked: bool) -> Any:
        """After a thumbs-down show the reason choice for that answer; after a thumbs-up hide it."""
        state.disliked = None if liked else message_id
        return gr.Group(visible=not liked)

    def like(self, state: ChatState | None, data: gr.LikeData,
             request: gr.Request) -> tuple[str, ChatState, Any, Any, Any]:
        """Chatbot thumbs: ``data.index`` is the bubble; bubbles without a stored answer are ignored.

        A thumbs-down reveals the reason choice (sent with ``/dislike_reason``).
        """
        state = state or ChatState("support")
        index = data.index[0] if isinstance(data.index, (list, tuple)) else data.index
        message_id = state.message_ids.get(int(index))
        if message_id is None or not isinstance(data.liked, bool):
            return "", state, gr.skip(), gr.skip(), gr.skip()
        shown = len(state.display)
        status = self._feedback(state, message_id, request, like=data.liked)
        if not data.liked and len(state.display) == shown:
            status = f"{status} {ASK_REASON}"
        # Re-sending the chat would reset the thumbs the customer just clicked; only do it to show a handoff notice.
        chat = state.display if len(state.display) != shown else gr.skip()
        return status, state, chat, self._reason_box(state, message_id, data.liked), gr.Radio(value=None)

    def vote(self, liked: bool, state: ChatState | None, request: gr.Request) -> tuple[str, ChatState, list, Any]:
        """Like/dislike the newest answer (the same as the thumbs, callable from gradio_client)."""
        state = state or ChatState("support")
        message_id = state.last_answer()
        status = self._feedback(state, message_id, request, like=bool(liked))
        return status, state, state.display, self._reason_box(state, message_id, bool(liked))  # type: ignore[arg-type]

    def dislike_reason(self, reason: str | None, state: ChatState | None,
                       request: gr.Request) -> tuple[str, ChatState, Any]:
        """Say what was wrong with the disliked answer (the newest answer when none was thumbed down)."""
        state = state or ChatState("support")
        if reason not in REASONS:
            raise gr.Error(f"Choose one of the reasons: {', '.join(r.label for r in REASONS.values())}.")
        message_id = state.disliked or state.last_answer()
        status = self._feedback(state, message_id, request, reason=reason)
        return status, state, gr.Group(visible=False)

    # --- another answer --------------------------------------------------------------------------------

    def another_answer(self, state: ChatState | None,
                       request: gr.Request) -> tuple[str, ChatState, str, str, Any]:
        """Draw a second answer to the newest question and show both with "which is better?"."""
        state = state or ChatState("support")
        message_id = state.last_answer()
        if message_id is None:
            raise gr.Error("There is no answer to compare yet.")
        session: Session = state.sessions_by_message.get(message_id) or state.current()
        try:
            turn = self.service.another_answer(session, message_id)
        except (LimitError, BusyError, ParleyError) as exc:
            raise _user_error(exc) from None
        state.comparison = (message_id, turn.message_id)  # type: ignore[assignment]
        first = session.last_answer.text if session.last_answer else ""
        return WHICH_IS_BETTER, state, first, turn.text, gr.Group(visible=True)

    def choose_answer(self, choice: str | None, state: ChatState | None,
                      request: gr.Request) -> tuple[str, ChatState, Any]:
        """Store which of the two shown answers is better (``first`` or ``second``)."""
        state = state or ChatState("support")
        if state.comparison is None:
            raise gr.Error("Press \"Another answer\" first: there are no two answers to choose from.")
        if choice not in CHOICES:
            raise gr.Error("Choose the first or the second answer.")
        original, alternative = state.comparison
        try:
            self.service.choose(original, alternative, rater_of(request), CHOICES[choice])
        except (ParleyError, ValueError) as exc:
            raise _user_error(exc) from None
        state.comparison = None
        return f"{THANKS} You preferred the {choice} answer.", state, gr.Group(visible=False)

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
