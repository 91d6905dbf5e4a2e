"""Reuse the key/value cache of a prompt's opening across requests (prefix caching).

Every support prompt opens with the same ~110 tokens (the system prompt and the knowledge-base instructions)
before the retrieved passages and the customer's question: a third or more of a typical ~300-token prompt.
Those are prefilled once. Each request's own opening (everything before its last user message: framing and
retrieved passages) is kept too, cut from the cache its generation filled anyway, so the next question that
retrieves the same passages prefills only itself. An entry is used only when its token ids are exactly the
request's first ids, so a prompt that tokenizes differently simply gets no hit (and is computed in full).
"""

from __future__ import annotations

import copy
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

# Openings shorter than this are not worth a cache copy.
MIN_PREFIX_TOKENS = 16


def common_prefix_length(a: Sequence[int], b: Sequence[int]) -> int:
    """How many leading ids ``a`` and ``b`` share."""
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


class PrefixKVCache:
    """A few prefilled openings (token ids -> their model cache), least recently used dropped first."""

    def __init__(self, model: Any, max_entries: int = 8) -> None:
        self.model = model
        self.max_entries = max_entries
        self._entries: OrderedDict[tuple[int, ...], Any] = OrderedDict()
        self.hits = 0
        self.misses = 0
        self.reused_tokens = 0  # summed over hits: prompt positions not prefilled again

    def __len__(self) -> int:
        return len(self._entries)

    def add(self, ids: Sequence[int]) -> None:
        """Prefill ``ids`` once and keep their cache (no-op when too short or already held)."""
        import torch
        from transformers import DynamicCache

        key = tuple(int(i) for i in ids)
        if len(key) < MIN_PREFIX_TOKENS or key in self._entries:
            return
        with torch.inference_mode():
            cache = DynamicCache(config=self.model.config)
            self.model(input_ids=torch.tensor([key]), cache=cache, use_cache=True, logits_to_keep=1)
        self._entries[key] = cache
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def put(self, ids: Sequence[int], cache: Any) -> None:
        """Keep ``cache`` (a generation's, no longer needed by it) cut to its first ``len(ids)`` positions."""
        key = tuple(int(i) for i in ids)
        if len(key) < MIN_PREFIX_TOKENS or cache.get_seq_length() < len(key):
            return
        if key in self._entries:
            self._entries.move_to_end(key)
            return
        extra = cache.get_seq_length() - len(key)
        if extra:
            cache.crop(-extra)
        self._entries[key] = cache
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def lookup(self, ids: Sequence[int]) -> tuple[Any, int] | None:
        """(a private copy of the longest held cache whose ids open ``ids``, its length), or None.

        The copy leaves at least one id of ``ids`` to prefill, as ``generate`` needs; the caller's generation
        extends the copy, never the held entry.
        """
        ids = [int(i) for i in ids]
        best = None
        for key in self._entries:
            if len(key) < len(ids) and (best is None or len(key) > len(best)) and ids[:len(key)] == list(key):
                best = key
        if best is None:
            self.misses += 1
            return None
        self.hits += 1
        self.reused_tokens += len(best)
        self._entries.move_to_end(best)
        return copy.deepcopy(self._entries[best]), len(best)
