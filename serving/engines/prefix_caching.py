"""What the torch and llama.cpp engines share about their prefix caches: which openings to prefill and when.

Each engine brings its own store (:class:`~.prefix_cache.PrefixKVCache` for torch's key/value tensors,
:class:`~.llamacpp_prefix.LlamaPrefixStore` for llama.cpp's sequence states); both answer ``add(ids)`` and
``estimated_bytes(length, held)``. The framing every prompt opens with is always pinned; the framing followed by
each KB article as the first passage is pinned in KB order while the budget (``serve.passage_cache_mb``) lasts.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from typing import Any

log = logging.getLogger(__name__)


class PrefixCaching:
    """Mixin for an :class:`~.base.Engine`: the store, its passage budget, and the lock that guards the model."""

    def _init_prefix_caching(self, enabled: bool) -> None:
        self._generate_lock = threading.Lock()  # one request at a time holds the model (and the store)
        self.use_prefix_cache = enabled
        self.prefix_cache: Any = None  # built at warm_up or on the first request
        self.cached_passages: tuple[str, ...] = ()  # KB passages whose opening is prefilled (cache_passages)
        self.passage_cache_bytes = 0  # the memory they may take

    def _empty_prefix_store(self) -> Any:
        """A store for this engine's model, holding nothing yet."""
        raise NotImplementedError

    def cache_passages(self, passages: Sequence[str], budget_mb: float) -> None:
        """Prefill the framing followed by each of ``passages`` as the first KB passage (at warm-up), in order,
        while their cached state fits ``budget_mb``; a request whose first retrieved passage is one of them
        prefills only its other passages and the question."""
        self.cached_passages = tuple(passages)
        self.passage_cache_bytes = int(budget_mb * 2**20)
        if self.prefix_cache is not None:
            with self._generate_lock:
                self._add_passage_openings(self.prefix_cache)

    def clear_prefix_cache(self) -> None:
        """Drop the cached openings: needed after the model's weights change under the engine."""
        with self._generate_lock:
            self.prefix_cache = None

    def new_prefix_cache(self, passages: bool = True) -> Any:
        """A store with the framings prefilled and, with ``passages``, the KB passage openings."""
        store = self._empty_prefix_store()
        for opening in self.framing_openings():
            store.add(opening)
        if passages:
            self._add_passage_openings(store)
        return store

    def _prefix_cache(self) -> Any:
        if self.prefix_cache is None:
            self.prefix_cache = self.new_prefix_cache()
        return self.prefix_cache

    def _add_passage_openings(self, store: Any) -> None:
        """Pin the passage openings into ``store`` in order while the next still fits the budget."""
        if not self.passage_cache_bytes:
            return
        framing = max(len(o) for o in self.framing_openings())
        used = added = 0
        for passage in self.cached_passages:
            opening = self.passage_opening(passage)
            if used + store.estimated_bytes(len(opening), framing) > self.passage_cache_bytes:
                log.info("KB passage cache full (%.0f MB) after %d of %d passages", used / 2**20, added,
                         len(self.cached_passages))
                break
            grown = store.add(opening)
            used += grown
            added += grown > 0
