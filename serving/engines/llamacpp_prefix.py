"""Prefix caching for the llama.cpp engine: prefilled prompt openings kept as llama.cpp sequence states.

llama-cpp-python already reuses the cells of the previous prompt's opening when the next prompt starts the
same way. It cannot go back to an opening computed before that: after a question that retrieved the returns
article, a question that retrieves the delivery article prefills its passages again. This store keeps the
openings the torch engine's :mod:`.prefix_cache` keeps (the framing every prompt opens with, and the framing
followed by each KB article as the first passage) as copies of llama.cpp's own state of the sequence: its
key/value cells, read with ``llama_state_seq_get_data``. Before a request is evaluated, the longest held opening
of its prompt is written back with ``llama_state_seq_set_data`` when that is longer than what the context
already shares with it; llama-cpp-python then prefills only the rest. Each opening is stored whole (~12 KB per
prompt position for SmolLM2-135M with llama.cpp's F16 cache), so a restore is one copy.
"""

from __future__ import annotations

import ctypes
from collections.abc import Sequence
from typing import Any

from serving.engines.prefix_cache import MIN_PREFIX_TOKENS, common_prefix_length

SEQUENCE = 0  # llama-cpp-python evaluates every prompt as sequence 0


class LlamaPrefixStore:
    """Pinned prefilled openings (token ids -> llama.cpp sequence state) of one ``llama_cpp.Llama``.

    Not thread-safe: the engine calls it while it holds the model for a request.
    """

    def __init__(self, llm: Any) -> None:
        self.llm = llm
        self._entries: dict[tuple[int, ...], bytes] = {}
        self.hits = 0
        self.misses = 0
        self.reused_tokens = 0  # summed over hits: prompt positions not prefilled again

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def pinned_bytes(self) -> int:
        return sum(len(state) for state in self._entries.values())

    @property
    def bytes_per_token(self) -> float:
        """State bytes per prompt position (0 while nothing is held)."""
        for key, state in self._entries.items():
            return len(state) / len(key)
        return 0.0

    def estimated_bytes(self, length: int, held: int = 0) -> float:
        """What pinning an opening of ``length`` ids would take (stored whole: ``held`` does not reduce it)."""
        return self.bytes_per_token * length

    def add(self, ids: Sequence[int]) -> int:
        """Prefill ``ids`` (from the longest held opening of them on) and pin their state; returns its bytes
        (0: too short or already held)."""
        import llama_cpp

        key = tuple(int(i) for i in ids)
        if len(key) < MIN_PREFIX_TOKENS or key in self._entries:
            return 0
        held = self._longest(key)
        start = self._restore(held) if held else self._clear()
        self.llm.eval(list(key[start:]))
        size = llama_cpp.llama_state_seq_get_size(self.llm.ctx, SEQUENCE)
        buffer = (ctypes.c_uint8 * size)()
        written = llama_cpp.llama_state_seq_get_data(self.llm.ctx, buffer, size, SEQUENCE)
        if not written:
            return 0
        self._entries[key] = bytes(buffer)[:written]
        return written

    def prepare(self, ids: Sequence[int]) -> int:
        """Make the context open like ``ids`` as far as a held opening or the live context allows, before the
        request is evaluated; returns how many leading ids are already computed (the rest is prefilled)."""
        key = tuple(int(i) for i in ids)
        live = common_prefix_length(self.llm.input_ids[: self.llm.n_tokens].tolist(), key)
        best = self._longest(key)
        if best is None or len(best) <= live:
            if live >= MIN_PREFIX_TOKENS:
                self.hits += 1
                self.reused_tokens += live
            else:
                self.misses += 1
            return live
        self.hits += 1
        self.reused_tokens += len(best)
        return self._restore(best)

    def _longest(self, ids: tuple[int, ...]) -> tuple[int, ...] | None:
        """The longest held opening that is a strict prefix of ``ids`` (at least one id is left to evaluate, so
        the request's first token comes from fresh logits)."""
        best = None
        for key in self._entries:
            if len(key) < len(ids) and (best is None or len(key) > len(best)) and ids[:len(key)] == key:
                best = key
        return best

    def _clear(self) -> int:
        """Empty the context's cells (nothing computed)."""
        import llama_cpp

        llama_cpp.llama_memory_clear(llama_cpp.llama_get_memory(self.llm.ctx), True)
        self.llm.n_tokens = 0
        return 0

    def _restore(self, key: tuple[int, ...]) -> int:
        """Write ``key``'s held state back as the context's only content; returns its length."""
        import llama_cpp

        self._clear()
        state = self._entries[key]
        buffer = (ctypes.c_uint8 * len(state)).from_buffer_copy(state)
        if llama_cpp.llama_state_seq_set_data(self.llm.ctx, buffer, len(state), SEQUENCE) != len(state):
            self._clear()  # a failed restore leaves nothing half-written: the request prefills in full
            return 0
        self.llm.input_ids[: len(key)] = key
        self.llm.n_tokens = len(key)
        return len(key)
