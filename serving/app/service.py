"""The chat service: one code path for the Gradio app and the API (limits, retrieval, guard, handoff, storage).

A front end holds a :class:`Session` per browser tab (or per API request) and calls :meth:`ChatService.turn`,
which yields text deltas while it fills in a :class:`Turn` (citations, stored message id, ticket, why it
stopped). Everything a user can bypass in a browser is checked here.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from groundwork.answer_form import is_filler_only
from groundwork.languages import LANGUAGES, check_language, translation_request
from serving.explain import Explainer
from serving.feedback.explanations import save_explanation
from serving.guard import Guard
from serving.handoff import DislikeStreak, filler_follow_up, notice, refusal_handoff, wants_human
from serving.limits import BusyError, Gate, LimitError, Limits, with_deadline
from serving.metrics import Metrics
from serving.repetition import drop_repeated_sentences
from serving.retrieval import KnowledgeBase, prompt_passage

log = logging.getLogger("parley.serve")

EMPTY_ANSWER = "I'm sorry, I don't have an answer to that. A human colleague can help: press \"Talk to a human\"."

Mode = Literal["support", "translate", "api"]

ALTERNATIVE_TEMPERATURE = 0.8  # "another answer" samples at the served temperature, or at this one when that is 0
ALTERNATIVE_ATTEMPTS = 3  # draws until one differs from the first answer


@dataclass(frozen=True)
class AnswerRecord:
    """What the model saw for a generated answer, so "another answer" can draw a second sample of it."""

    message_id: int
    text: str
    messages: list[dict[str, str]]
    context: list[str] | None
    citations: list[dict[str, Any]]
_SENTENCE_END = re.compile(r"[.!?\n。！？](?=\s|$)|[。！？]")
_WORD_END = re.compile(r"\S(?=\s)|[\u3000-\u9fff\uff00-\uffef]")
# Streamed text is checked before it is shown: the first token, then 2, 4, 8 and at most this many more words
# (or a sentence end), so the check adds one short scoring to the first token and few after it.
MAX_HOLD_WORDS = 16


def _release_point(text: str, released: int, hold_words: int) -> int:
    """How far the shown text may reach once it passes the check: a sentence end, or ``hold_words`` more words
    (CJK characters count as words); ``released`` when neither is there yet."""
    if released == 0 and hold_words == 1:
        return len(text) if text.strip() else 0  # the first token: one check, no wait for the word to end
    sentence = 0
    for m in _SENTENCE_END.finditer(text, released):
        sentence = m.end()
    words = [m.end() for m in _WORD_END.finditer(text, released)]
    by_words = words[hold_words - 1] if len(words) >= hold_words else 0
    return max(released, sentence, by_words)


@dataclass
class Session:
    """One conversation as the server sees it; the client never supplies the history it is judged on."""

    mode: Mode
    conversation_id: int | None = None
    history: list[dict[str, str]] = field(default_factory=list)
    user_turns: int = 0
    streak: DislikeStreak = field(default_factory=DislikeStreak)
    language: str = "en"
    last_answer: AnswerRecord | None = None  # the newest model-generated answer (not a handoff or refusal notice)


@dataclass
class Turn:
    """What one exchange produced; filled in while :meth:`ChatService.turn` streams."""

    user_text: str
    text: str = ""
    citations: list[dict[str, Any]] = field(default_factory=list)
    message_id: int | None = None
    ticket_id: int | None = None
    blocked: Literal["input", "output"] | None = None
    finish_reason: Literal["stop", "timeout", "handoff", "refused"] = "stop"
    replaced: bool = False  # the answer was swapped for a safe one (nothing unchecked was shown)
    followed_up: bool = False  # the answer was only filler, so the server added how to reach a human
    handed_off: bool = False  # the policy refused a clearly benign request; the way to a human replaced it
    request_risk: float | None = None  # p(harmful | request) from the guard's input check (None: guard off)
    input_reason: str | None = None  # why the guard's input check passed or blocked the request
    guard: Any = None  # the guard's output Verdict (kind: refusal / harmful_compliance / answer, reason)
    cancel: threading.Event = field(default_factory=threading.Event)  # set it to stop generation early
    stats: Any = None  # the engine's GenerationStats, when it keeps them
    explanation: dict[str, Any] | None = None  # "Why this answer" (serving.explain), built when it is stored


@dataclass(frozen=True)
class Sampling:
    max_new_tokens: int
    temperature: float = 0.0
    top_p: float = 1.0
    stop: tuple[str, ...] = ()
    seed: int | None = None

    def params(self) -> dict[str, Any]:
        out: dict[str, Any] = {"max_tokens": self.max_new_tokens, "temperature": self.temperature,
                               "top_p": self.top_p}
        if self.stop:
            out["stop"] = list(self.stop)
        if self.seed is not None:
            out["seed"] = self.seed
        return out


class ChatService:
    """Engine + KB + guard + feedback store + limits, shared by every front end."""

    def __init__(self, engine: Any, kb: KnowledgeBase | None, guard: Guard, store: Any, limits: Limits, gate: Gate,
                 model_name: str, adapter_hash: str | None, top_k: int = 2, temperature: float = 0.0,
                 top_p: float = 1.0, metrics: Metrics | None = None, explainer: Any | None = None,
                 drop_repeated_sentences: bool = True, follow_up_filler: bool = True,
                 hand_off_benign_refusals: bool = True) -> None:
        self.engine = engine
        self.kb = kb
        self.guard = guard
        self.store = store
        self.limits = limits
        self.gate = gate
        self.model_name = model_name
        self.adapter_hash = adapter_hash
        self.top_k = top_k
        self.drop_repeated_sentences = drop_repeated_sentences
        self.follow_up_filler = follow_up_filler
        self.hand_off_benign_refusals = hand_off_benign_refusals
        self.default_sampling = Sampling(limits.max_new_tokens, temperature, top_p)
        self.metrics = metrics or Metrics()
        self.explainer = explainer or Explainer()  # without reward models it says "reward models not loaded"
        # KB retrieval runs beside the input guard (both are short encoder passes, one torch thread each), so a
        # request waits for the longer of the two before prefill, not for their sum.
        self._lookups = ThreadPoolExecutor(max_workers=2, thread_name_prefix="parley-retrieval")

    # --- building blocks -------------------------------------------------------------------------------

    def _conversation(self, session: Session) -> int:
        if session.conversation_id is None:
            session.conversation_id = self.store.create_conversation(session.mode, self.model_name,
                                                                     self.adapter_hash)
        return session.conversation_id

    def retrieve(self, query: str) -> list[dict[str, Any]]:
        """Top-k KB passages for a query as citation dicts (empty without a KB)."""
        if self.kb is None:
            return []
        return [p.citation() for p in self.kb.search(query, self.top_k)]

    @staticmethod
    def context_of(citations: list[dict[str, Any]]) -> list[str] | None:
        return [prompt_passage(c["title"], c["text"]) for c in citations] or None

    def _generate(self, messages: list[dict[str, str]], context: list[str] | None, sampling: Sampling,
                  turn: Turn, drop_repeats: bool = False) -> Iterator[str]:
        def timed_out() -> None:
            turn.finish_reason = "timeout"
            turn.cancel.set()

        def repeated() -> None:  # the answer is complete: its next sentence would say an earlier one again
            turn.cancel.set()

        chunks = self.engine.stream(messages, context=context, cancel=turn.cancel, **sampling.params())
        chunks = with_deadline(chunks, self.limits.request_timeout_s, timed_out)
        if drop_repeats:
            chunks = drop_repeated_sentences(chunks, repeated)
        yield from self.gate.hold(chunks)
        # Token counts for the API's usage field; the engine keeps only its latest request's stats.
        turn.stats = getattr(self.engine, "last_stats", None)

    def _finish(self, session: Session, turn: Turn, kb_ids: list[str] | None = None) -> None:
        conversation = self._conversation(session)
        turn.message_id = self.store.add_message(conversation, "assistant", turn.text, kb_ids=kb_ids,
                                                 citations=turn.citations or None)
        self._explain(session, turn)
        session.history.append({"role": "assistant", "content": turn.text})

    def _explain(self, session: Session, turn: Turn) -> None:
        """Build the answer's "Why this answer" explanation and store a redacted copy with the message (a failure
        is logged: the customer still gets the answer)."""
        try:
            turn.explanation = self.explainer.explain(turn, session.history)
            save_explanation(self.store, turn.message_id, turn.explanation)  # type: ignore[arg-type]
        except Exception:  # noqa: BLE001 - the answer is stored and shown either way
            log.exception("could not explain or store the explanation of message %s", turn.message_id)

    def open_handoff(self, session: Session, reason: str) -> int:
        """A ticket for a human agent with the (redacted) stored conversation; returns its id."""
        ticket = self.store.open_handoff(self._conversation(session), reason)
        self.metrics.tickets_opened.inc()
        return ticket

    @staticmethod
    def _note_language(session: Session, text: str) -> None:
        """Remember the customer's language (for handoff notices) when langid is confident."""
        from groundwork.language_id import detect_language

        code, probability = detect_language(text)
        if probability >= 0.9:
            session.language = code

    def preload(self, session: Session, messages: list[dict[str, str]]) -> None:
        """Seed a session with earlier turns sent by an API client (stored too, so feedback has its prompt)."""
        for message in messages:
            # Earlier answers and system prompts may be longer than a customer message, but not unbounded.
            limit = self.limits.max_message_chars * (1 if message["role"] == "user" else 4)
            if len(message["content"]) > limit:
                raise LimitError(f"a {message['role']} message is {len(message['content'])} characters long; "
                                 f"the limit is {limit}")
            self.store.add_message(self._conversation(session), message["role"], message["content"])
            session.history.append(dict(message))
            session.user_turns += message["role"] == "user"

    # --- one exchange ----------------------------------------------------------------------------------

    def turn(self, session: Session, user_text: str, *, prompt: str | None = None, sampling: Sampling | None = None,
             use_kb: bool = True, detect_handoff: bool = True, live: bool = True) -> tuple[Turn, Iterator[str]]:
        """Check limits (raises :class:`~serving.limits.LimitError` at once), then return the turn and its deltas.

        ``prompt`` is what the model sees when it differs from what the user typed (a translation request).
        With ``live`` False the answer is checked by the guard *before* anything is yielded (the API cannot
        take back streamed text); with ``live`` True it streams in growing pieces (the first token, then 2, 4 ... 16
        words or a sentence), each released only once the answer so far passes the guard's output check (a
        rejected answer stops and is replaced, :attr:`Turn.replaced`, without any of it having been shown).
        """
        started = time.monotonic()
        route = "api" if session.mode == "api" else "ui"
        mode = "support" if prompt is None else "translate"  # only a translation sends the model another text
        try:
            text = self.limits.check_message(user_text)
            self.limits.check_turns(session.user_turns + 1)
        except LimitError:
            self.metrics.turn_finished(route, mode, "limit", None, None)
            raise
        sampling = sampling or self.default_sampling
        turn = Turn(user_text=text)
        # A translation may repeat a sentence of its source on purpose; a support answer never needs to.
        drop_repeats = self.drop_repeated_sentences and mode == "support"
        follow_up = self.follow_up_filler and mode == "support"
        hand_off = self.hand_off_benign_refusals and mode == "support"
        deltas = self._run(session, turn, prompt or text, sampling, use_kb, detect_handoff, live, drop_repeats,
                           follow_up, hand_off)
        return turn, self._measured(deltas, turn, route, mode, started)

    def _measured(self, deltas: Iterator[str], turn: Turn, route: str, mode: str, started: float) -> Iterator[str]:
        """Pass the deltas through, then count the turn in /metrics with how it ended and how long it took."""
        outcome, first = "error", None
        try:
            for delta in deltas:
                if first is None:
                    first = time.monotonic() - started
                yield delta
            outcome = turn.finish_reason
        except BusyError:
            outcome = "busy"
            raise
        except GeneratorExit:
            outcome = "cancelled"
            raise
        finally:
            self.metrics.turn_finished(route, mode, outcome, time.monotonic() - started, first)

    def _run(self, session: Session, turn: Turn, prompt: str, sampling: Sampling, use_kb: bool,
             detect_handoff: bool, live: bool, drop_repeats: bool = False,
             follow_up: bool = False, hand_off: bool = False) -> Iterator[str]:
        conversation = self._conversation(session)
        session.last_answer = None
        self.store.add_message(conversation, "user", prompt)
        session.history.append({"role": "user", "content": prompt})
        session.user_turns += 1

        language = wants_human(turn.user_text) if detect_handoff else None
        if detect_handoff:
            self._note_language(session, turn.user_text)
        if language is not None:
            session.language = language
            turn.ticket_id = self.open_handoff(session, "customer asked for a human agent")
            turn.text, turn.finish_reason = notice(turn.ticket_id, language), "handoff"
            self._finish(session, turn)
            yield turn.text
            return

        lookup = self._lookups.submit(self.retrieve, turn.user_text) if use_kb and self.kb is not None else None
        verdict = self.guard.check_input(session.history)
        turn.request_risk, turn.input_reason = verdict.score, verdict.reason
        if not verdict.safe:
            log.info("guard refused input (score %.3f)", verdict.score)
            self.metrics.guard_block("input")
            turn.text, turn.blocked, turn.finish_reason = verdict.text, "input", "refused"
            self._finish(session, turn)
            yield turn.text
            return

        turn.citations = lookup.result() if lookup is not None else []
        context = self.context_of(turn.citations)
        turn.request_risk = verdict.score
        pieces: list[str] = []
        released = 0  # characters of the answer already shown: only text that passed the output check
        hold_words = 1  # words held back before the next check: the first word goes out after one check
        stopped = None  # the partial verdict that stopped generation: harmful compliance or a refusal to hand off
        hand_off = hand_off and self.guard.clearly_benign(verdict.score)
        for delta in self._generate(list(session.history), context, sampling, turn, drop_repeats):
            pieces.append(delta)
            if not live:
                continue
            if not self.guard.enabled:
                yield delta
                continue
            so_far = "".join(pieces)
            cut = _release_point(so_far, released, hold_words)
            if cut > released:
                partial = self.guard.check_output(session.history, so_far[:cut], request_risk=verdict.score)
                if not partial.safe or (hand_off and partial.kind == "refusal"):
                    stopped = partial
                    turn.cancel.set()
                    break
                yield so_far[released:cut]
                released = cut
                hold_words = min(2 * hold_words, MAX_HOLD_WORDS)
        answer = "".join(pieces).strip()
        checked = stopped or self.guard.check_output(session.history, answer, "\n\n".join(context or []) or None,
                                                      request_risk=verdict.score)
        handing_off = hand_off and checked.safe and checked.kind == "refusal"
        if live and self.guard.enabled and checked.safe and not handing_off and len("".join(pieces)) > released:
            yield "".join(pieces)[released:]
        turn.guard = checked
        turn.text = checked.text
        if not turn.text:
            turn.text, turn.replaced = EMPTY_ANSWER, True
        if not checked.safe:
            log.info("guard replaced output (score %.3f)", checked.score)
            self.metrics.guard_block("output")
            turn.blocked, turn.replaced = "output", True
        elif handing_off:
            turn.text, turn.handed_off, turn.replaced = refusal_handoff(session.language), True, True
            self.metrics.pointed_to_human_for("benign_refusal")
            if live:
                yield turn.text if released == 0 else " " + turn.text
        elif follow_up and not turn.replaced and is_filler_only(turn.text):
            addition = filler_follow_up(session.language)
            turn.text, turn.followed_up = f"{turn.text.rstrip()} {addition}", True
            self.metrics.pointed_to_human_for("filler")
            if live:
                yield addition if "".join(pieces)[-1:].isspace() else " " + addition
        self._finish(session, turn, kb_ids=[c["id"] for c in turn.citations] or None)
        session.last_answer = AnswerRecord(turn.message_id, turn.text, session.history[:-1], context,  # type: ignore[arg-type]
                                           turn.citations)
        if not live:
            yield turn.text

    # --- translation -----------------------------------------------------------------------------------

    @staticmethod
    def translation_prompt(text: str, target: str, source: str | None) -> tuple[str, str | None]:
        """(model prompt, detected source or None); unknown codes raise UnknownLanguageError with the list."""
        from groundwork.language_id import detect_language

        target = check_language(target)
        detected = None
        if source in (None, "", "auto"):
            detected, _ = detect_language(text)
            source = detected
        source = check_language(source)
        return translation_request(text, target, None if source == target else source), detected

    # --- feedback --------------------------------------------------------------------------------------

    def feedback(self, session: Session, message_id: int, rater: str, like: bool | None = None,
                 rating: int | None = None, correction: str | None = None, reason: str | None = None) -> int | None:
        """Store feedback; returns a handoff ticket id when this dislike completes a streak.

        ``reason`` (a key of :data:`serving.feedback.reasons.REASONS`) says what was wrong; it is a dislike.
        """
        if correction is not None:
            correction = self.limits.check_message(correction)
        self.store.record_feedback(message_id, rater, like=like, rating=rating, correction=correction,
                                   reason=reason)
        if reason is not None and like is None:
            like = False
        self.metrics.feedback_given(like, rating, correction)
        if like is not None and session.streak.record(message_id, like):
            return self.open_handoff(session, f"{session.streak.limit} answers in a row were disliked")
        return None


    def api_feedback(self, message_id: int, rater: str, like: bool | None = None, rating: int | None = None,
                     correction: str | None = None, reason: str | None = None,
                     idempotency_key: str | None = None) -> Any:
        """Feedback from ``POST /v1/feedback``: the UI's checks and store call, plus an idempotency key.

        Returns the store's :class:`~serving.feedback.store.FeedbackReceipt`. An API request has no session,
        so it does not count towards a dislike streak (no handoff).
        """
        if correction is not None:
            correction = self.limits.check_message(correction)
        receipt = self.store.submit_feedback(message_id, rater, like, rating, correction, reason,
                                             idempotency_key=idempotency_key)
        if not receipt.replayed:
            self.metrics.feedback_given(False if reason is not None and like is None else like, rating, correction)
        return receipt

    # --- another answer --------------------------------------------------------------------------------

    def another_answer(self, session: Session, message_id: int) -> Turn:
        """Draw a second sample for the session's newest answer (same prompt and KB context, temperature > 0).

        The sample is checked by the guard and stored as an alternative of ``message_id`` (not part of the
        conversation: the next turn still follows the first answer). Returns a finished :class:`Turn` whose
        ``message_id`` is the alternative's. Raises :class:`LimitError` when ``message_id`` is not the newest
        generated answer, and :class:`BusyError` as a turn does.
        """
        record = session.last_answer
        if record is None or record.message_id != message_id:
            raise LimitError("Another answer can only be drawn for the newest answer of the conversation.")
        temperature = self.default_sampling.temperature or ALTERNATIVE_TEMPERATURE
        sampling = replace(self.default_sampling, temperature=temperature)
        context_text = "\n\n".join(record.context or []) or None
        first = " ".join(record.text.split()).casefold()
        for _ in range(ALTERNATIVE_ATTEMPTS):
            turn = Turn(user_text=record.messages[-1]["content"], citations=list(record.citations))
            answer = "".join(self._generate(list(record.messages), record.context, sampling, turn,
                                            self.drop_repeated_sentences)).strip()
            checked = self.guard.check_output(record.messages, answer, context_text)
            turn.text = checked.text or EMPTY_ANSWER
            turn.replaced = not checked.text or not checked.safe
            if not checked.safe:
                turn.blocked = "output"
            if " ".join(turn.text.split()).casefold() != first:
                break
        turn.message_id = self.store.add_message(
            self._conversation(session), "assistant", turn.text,
            kb_ids=[c["id"] for c in record.citations] or None, citations=record.citations or None,
            variant_of=record.message_id)
        return turn

    def choose(self, message_id: int, alternative_id: int, rater: str, preferred: str,
               reason: str | None = None) -> int:
        """Store which of an answer and its alternative the rater prefers; returns the comparison id."""
        return self.store.record_comparison(message_id, alternative_id, rater, preferred, reason)


def language_choices() -> list[tuple[str, str]]:
    return [(f"{name} ({code})", code) for code, name in LANGUAGES.items()]
