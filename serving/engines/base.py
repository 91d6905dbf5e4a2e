"""One engine interface: ``generate`` and ``stream`` over Parley-formatted conversations.

Every engine sees the same conversation framing (:func:`groundwork.chat_format.build_messages`) and the
local ones render it with the HF tokenizer's chat template, so switching engines never changes the
prompt. Stop strings, ``max_tokens`` and cancellation behave the same everywhere because they are
enforced here, around each backend's raw token stream.
"""

from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

from groundwork.chat_format import build_messages, render_prompt
from serving.engines.errors import EngineError
from serving.engines.prefix_cache import common_prefix_length


@dataclass
class SamplingParams:
    """Decoding settings shared by all engines; ``temperature`` 0 means greedy."""

    max_tokens: int = 256
    temperature: float = 0.0
    top_p: float = 1.0
    stop: tuple[str, ...] = ()
    seed: int | None = None
    # Never sample an end-of-sequence token, so exactly ``max_tokens`` are generated (vLLM's ``ignore_eos``):
    # speed benchmarks compare engines at one length, whatever each model would have answered.
    ignore_eos: bool = False

    @classmethod
    def from_kwargs(cls, **params: Any) -> SamplingParams:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(params) - known - {"max_new_tokens"})
        if unknown:
            raise EngineError(f"unknown generation parameter(s): {', '.join(unknown)}")
        if "max_new_tokens" in params:
            params["max_tokens"] = params.pop("max_new_tokens")
        stop = params.get("stop") or ()
        params["stop"] = (stop,) if isinstance(stop, str) else tuple(stop)
        out = cls(**params)
        if out.max_tokens < 1:
            raise EngineError("max_tokens must be at least 1")
        if out.temperature < 0 or not 0 < out.top_p <= 1:
            raise EngineError("temperature must be >= 0 and top_p in (0, 1]")
        return out


@dataclass
class GenerationStats:
    """Filled in while a request runs; ``Engine.last_stats`` keeps the latest finished one."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    ttft_s: float | None = None
    total_s: float = 0.0
    finish_reason: str = "length"
    started: float = field(default_factory=time.perf_counter, repr=False)

    @property
    def decode_tokens_per_s(self) -> float | None:
        """Tokens after the first, per second after the first (prefill excluded)."""
        if self.ttft_s is None or self.completion_tokens < 2 or self.total_s <= self.ttft_s:
            return None
        return (self.completion_tokens - 1) / (self.total_s - self.ttft_s)


class CancelToken:
    """Tells a backend to stop: set by ``Engine.cancel()``, a caller's ``threading.Event``, or ``set()``.

    ``set()`` is the engine's own "stop now" (stop string seen, caller stopped reading); ``cancelled()``
    is true only for a real cancellation, which is what ``finish_reason`` reports.
    """

    def __init__(self, external: threading.Event | None = None) -> None:
        self._cancel = threading.Event()
        self._stop = threading.Event()
        self._external = external

    def set(self) -> None:
        self._stop.set()

    def cancel(self) -> None:
        self._cancel.set()

    def cancelled(self) -> bool:
        return self._cancel.is_set() or (self._external is not None and self._external.is_set())

    def is_set(self) -> bool:
        return self._stop.is_set() or self.cancelled()


class StopMatcher:
    """Withholds text that may be the start of a stop string; reports when one is complete."""

    def __init__(self, stops: Sequence[str]) -> None:
        self.stops = [s for s in stops if s]
        self.buffer = ""

    def feed(self, text: str) -> tuple[str, bool]:
        """Return ``(text safe to emit, stopped)``; the stop string itself is never emitted."""
        self.buffer += text
        if not self.stops:
            out, self.buffer = self.buffer, ""
            return out, False
        hits = [i for i in (self.buffer.find(s) for s in self.stops) if i >= 0]
        if hits:
            out, self.buffer = self.buffer[:min(hits)], ""
            return out, True
        hold = 0
        for stop in self.stops:
            for n in range(min(len(stop) - 1, len(self.buffer)), hold, -1):
                if self.buffer.endswith(stop[:n]):
                    hold = n
                    break
        cut = len(self.buffer) - hold
        out, self.buffer = self.buffer[:cut], self.buffer[cut:]
        return out, False

    def flush(self) -> str:
        out, self.buffer = self.buffer, ""
        return out


class Engine(ABC):
    """Base class: subclasses implement :meth:`_token_stream` for a rendered prompt."""

    kind = "base"

    def __init__(self, tokenizer=None, system_prompt: str | None = None) -> None:
        self.tokenizer = tokenizer
        self.system_prompt = system_prompt
        self.last_stats: GenerationStats | None = None
        self._active: set[CancelToken] = set()
        self._lock = threading.Lock()

    def messages(self, messages: Any, context: str | Sequence[str] | None = None) -> list[dict[str, str]]:
        """Parley's framing: system prompt plus fenced KB context (same for every engine)."""
        return build_messages(messages, context, self.system_prompt)

    def render(self, messages: Any, context: str | Sequence[str] | None = None) -> str:
        """The exact prompt text a local engine feeds its model."""
        if self.tokenizer is None:
            raise EngineError(f"the {self.kind} engine has no tokenizer to render prompts with")
        return render_prompt(self.tokenizer, self.messages(messages, context))

    def prompt_ids(self, text: str) -> list[int]:
        """The token ids a local engine feeds its model for a rendered prompt."""
        if self.tokenizer is None:
            raise EngineError(f"the {self.kind} engine has no tokenizer")
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def framing_openings(self) -> list[list[int]]:
        """Token ids every prompt of this engine opens with: with KB passages and without (a translation).

        Found by rendering two requests that differ in everything a customer or retrieval supplies and keeping
        the ids they share, so the opening follows the system prompt and chat template actually in use.
        """
        openings = []
        for contexts in ((None, None), (["alpha"], ["omega"])):
            a, b = (self.prompt_ids(self.render([{"role": "user", "content": text}], context=context))
                    for text, context in zip(("first question", "zzz other"), contexts, strict=True))
            openings.append(a[:common_prefix_length(a, b)])
        return openings

    def passage_opening(self, passage: str) -> list[int]:
        """Token ids every prompt whose first KB passage is ``passage`` opens with (the same two-render trick as
        :meth:`framing_openings`, so the cut falls where the next passage or the question begins)."""
        a, b = (self.prompt_ids(self.render([{"role": "user", "content": text}], context=[passage, other]))
                for text, other in (("first question", "alpha"), ("zzz other", "omega")))
        return a[:common_prefix_length(a, b)]

    def prepare(self, messages: Any, context: str | Sequence[str] | None = None) -> Any:
        """What :meth:`_token_stream` receives; local engines take the rendered text."""
        return self.render(messages, context)

    @abstractmethod
    def _token_stream(self, prompt: Any, params: SamplingParams, cancel: CancelToken,
                      stats: GenerationStats) -> Iterator[str]:
        """Yield decoded text per generated token (may be empty); stop when ``cancel`` is set."""

    def stream(self, messages: Any, context: str | Sequence[str] | None = None,
               cancel: threading.Event | None = None, **params: Any) -> Iterator[str]:
        """Yield text chunks as they are generated; stops on EOS, a stop string, ``max_tokens`` or cancellation."""
        sampling = SamplingParams.from_kwargs(**params)
        prompt = self.prepare(messages, context)
        token = CancelToken(cancel)
        stats = GenerationStats()
        matcher = StopMatcher(sampling.stop)
        with self._lock:
            self._active.add(token)
        backend = self._token_stream(prompt, sampling, token, stats)
        try:
            for piece in backend:
                if piece and stats.ttft_s is None:
                    stats.ttft_s = time.perf_counter() - stats.started
                if token.cancelled():
                    stats.finish_reason = "cancelled"
                    break
                text, stopped = matcher.feed(piece)
                if text:
                    yield text
                if stopped:
                    stats.finish_reason = "stop"
                    break
            else:
                if token.cancelled():
                    stats.finish_reason = "cancelled"
                tail = matcher.flush()
                if tail:
                    yield tail
        finally:
            token.set()  # tells a generation thread to stop if the caller stopped reading
            backend.close()
            stats.total_s = time.perf_counter() - stats.started
            with self._lock:
                self._active.discard(token)
            self.last_stats = stats

    def generate(self, messages: Any, context: str | Sequence[str] | None = None,
                 cancel: threading.Event | None = None, **params: Any) -> str:
        """The whole reply; always equal to the concatenated :meth:`stream`."""
        return "".join(self.stream(messages, context, cancel=cancel, **params))

    def cancel(self) -> None:
        """Stop every request in flight on this engine (their streams end early)."""
        with self._lock:
            for token in self._active:
                token.cancel()

    def close(self) -> None:
        """Stop requests in flight; subclasses also release the model (engines hold large buffers)."""
        self.cancel()
