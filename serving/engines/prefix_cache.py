"""Reuse the key/value cache of a prompt's opening across requests (prefix caching).

Every support prompt opens with the same ~110 tokens (the system prompt and the knowledge-base instructions)
before the retrieved passages and the customer's question. Those are prefilled once. So are, within a memory
budget, the framing followed by each KB article as the first passage: whatever a question retrieves first is
then already prefilled, and the request prefills only the rest (the other passages and the question). Each
request's own opening (everything before its last user message) is kept too, cut from the cache its generation
filled anyway, so a follow-up that retrieves the same passages prefills only itself.

Entries are stored as segments: an entry holds the key/value positions past the longest *pinned* entry it
extends (its parent), so a hundred passage openings do not each hold another copy of the framing (models with
sliding-window layers, which keep only the window, store each opening whole instead). Pinned
entries (framings, passage openings) stay; the rest are dropped least recently used first. An entry is used
only when its token ids are exactly the request's first ids, so a prompt that tokenizes differently simply gets
no hit (and is computed in full).
"""

from __future__ import annotations

import copy
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
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


@dataclass
class _Segment:
    parent: tuple[int, ...] | None  # the pinned entry these positions follow (None: they start the prompt)
    layers: list[tuple[Any, Any]]  # per layer (keys, values) of this entry's own positions
    pinned: bool
    positions: int  # prompt positions this entry holds beyond its parent
    whole: Any = None  # instead of ``layers``: the entry's own model cache (models with sliding-window layers)

    @property
    def nbytes(self) -> int:
        pairs = self.layers if self.whole is None else [(layer.keys, layer.values) for layer in self.whole.layers
                                                         if getattr(layer, "is_initialized", False)]
        return sum(k.numel() * k.element_size() + v.numel() * v.element_size() for k, v in pairs)


class PrefixKVCache:
    """Prefilled openings (token ids -> their model cache); unpinned ones are dropped least recently used first."""

    def __init__(self, model: Any, max_entries: int = 8) -> None:
        self.model = model
        self.max_entries = max_entries  # unpinned entries (request openings) kept
        self._entries: OrderedDict[tuple[int, ...], _Segment] = OrderedDict()
        self.hits = 0
        self.misses = 0
        self.reused_tokens = 0  # summed over hits: prompt positions not prefilled again
        # Segments need every layer to keep every position; a sliding-window layer keeps only its window, so such
        # models (Gemma 2/3, ...) store each opening as a whole cache, copied on use.
        from transformers import DynamicCache

        self.segmented = all(type(layer).__name__ == "DynamicLayer"
                             for layer in DynamicCache(config=model.config).layers)

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def pinned_entries(self) -> int:
        return sum(s.pinned for s in self._entries.values())

    @property
    def pinned_bytes(self) -> int:
        """Memory held by the pinned entries' key/value tensors."""
        return sum(s.nbytes for s in self._entries.values() if s.pinned)

    @property
    def bytes_per_token(self) -> float:
        """Key/value memory per prompt position (0 while nothing is held)."""
        for segment in self._entries.values():
            if segment.positions:
                return segment.nbytes / segment.positions
        return 0.0

    def estimated_bytes(self, length: int, held: int) -> float:
        """What pinning an opening of ``length`` ids that extends a held one of ``held`` ids would take."""
        return self.bytes_per_token * (length - held if self.segmented else length)

    def add(self, ids: Sequence[int]) -> int:
        """Prefill ``ids`` once and pin their cache; returns the bytes it added (0: too short or already held).

        Only the positions past the longest pinned opening of ``ids`` are computed and stored.
        """
        import torch

        key = tuple(int(i) for i in ids)
        if len(key) < MIN_PREFIX_TOKENS or key in self._entries:
            return 0
        parent = self._longest(key, pinned_only=True) if self.segmented else None
        cache = self._assemble(parent)
        start = len(parent) if parent else 0
        with torch.inference_mode():
            self.model(input_ids=torch.tensor([key[start:]]), cache=cache, use_cache=True, logits_to_keep=1)
        self._entries[key] = self._segment(parent, cache, start, len(key), pinned=True)
        return self._entries[key].nbytes

    def put(self, ids: Sequence[int], cache: Any) -> None:
        """Keep ``cache``'s first ``len(ids)`` positions (a generation's cache, no longer needed by it)."""
        key = tuple(int(i) for i in ids)
        if len(key) < MIN_PREFIX_TOKENS or cache.get_seq_length() < len(key):
            return
        if key in self._entries:
            self._entries.move_to_end(key)
            return
        parent = self._longest(key, pinned_only=True) if self.segmented else None
        start = len(parent) if parent else 0
        self._entries[key] = self._segment(parent, cache, start, len(key), pinned=False)
        unpinned = [k for k, s in self._entries.items() if not s.pinned]
        for old in unpinned[:max(0, len(unpinned) - self.max_entries)]:
            del self._entries[old]

    def lookup(self, ids: Sequence[int]) -> tuple[Any, int] | None:
        """(a fresh cache of the longest held opening of ``ids``, its length), or None.

        The opening leaves at least one id of ``ids`` to prefill, as ``generate`` needs; the caller's generation
        extends its own cache, never a held entry.
        """
        key = tuple(int(i) for i in ids)
        best = self._longest(key, pinned_only=False)
        if best is None:
            self.misses += 1
            return None
        self.hits += 1
        self.reused_tokens += len(best)
        self._entries.move_to_end(best)
        return self._assemble(best), len(best)

    def _longest(self, ids: tuple[int, ...], pinned_only: bool) -> tuple[int, ...] | None:
        """The longest held entry that is a strict prefix of ``ids``."""
        best = None
        for key, segment in self._entries.items():
            if pinned_only and not segment.pinned:
                continue
            if len(key) < len(ids) and (best is None or len(key) > len(best)) and ids[:len(key)] == key:
                best = key
        return best

    def _assemble(self, key: tuple[int, ...] | None) -> Any:
        """A new model cache holding ``key``'s positions (its segments joined), or an empty one."""
        import torch
        from transformers import DynamicCache

        if key is None:
            return DynamicCache(config=self.model.config)
        if self._entries[key].whole is not None:
            return copy.deepcopy(self._entries[key].whole)
        chain = []
        while key is not None:
            chain.append(self._entries[key])
            key = self._entries[key].parent
        chain.reverse()
        cache = DynamicCache(config=self.model.config)
        for i, layer in enumerate(cache.layers):
            keys = torch.cat([s.layers[i][0] for s in chain], dim=-2)
            values = torch.cat([s.layers[i][1] for s in chain], dim=-2)
            layer.lazy_initialization(keys, values)
            layer.keys, layer.values = keys, values  # the joined copies themselves (an update would copy again)
        return cache

    def _segment(self, parent: tuple[int, ...] | None, cache: Any, start: int, end: int, pinned: bool) -> _Segment:
        """An entry for positions ``start:end`` of ``cache``: copies of them (the source's storage can then be
        freed), or, unsegmented, the cache itself cut to ``end``."""
        if not self.segmented:
            extra = cache.get_seq_length() - end
            if extra:
                cache.crop(-extra)
            return _Segment(None, [], pinned, end, whole=cache)
        layers = [(layer.keys[..., start:end, :].clone(), layer.values[..., start:end, :].clone())
                  for layer in cache.layers]
        return _Segment(parent, layers, pinned, end - start)
