"""Decoding with a static KV cache and a ``torch.compile``d one-token step (the torch engine's ``compile``).

At batch 1 on a CPU a small model's decode step is mostly per-operator overhead, not arithmetic:
SmolLM2-135M in eager int8 spends well under half of a step in its GEMMs and the rest in hundreds of
small ops (norms, rotary, cache appends) and in ``generate``'s own per-token work. Compiling the step
fuses the small ops into a few C++ loops (the int8 GEMMs stay fbgemm calls, see
:mod:`serving.quantize.int8_ops`), and this loop replaces ``generate`` for the decode phase: the
prompt runs eagerly once into a :class:`~transformers.StaticCache`, then each token is one compiled
call plus the sampling. The same path serves fp32, bf16 and int8 models, so their speeds compare.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch

# Cache lengths are rounded up to this, so the number of distinct shapes the compiled step sees stays small
# (a static cache as long as the context window would make every step read the whole window).
CACHE_BUCKET = 256


def bucketed_cache_length(needed: int, limit: int | None) -> int:
    length = -(-needed // CACHE_BUCKET) * CACHE_BUCKET
    return min(length, limit) if limit else length


class CompiledDecoder:
    """Prefill eagerly, then one compiled forward per generated token; yields token ids."""

    def __init__(self, model: Any) -> None:
        self.model = model
        # dynamic=True: one graph for every cache length, compiled once (the default would compile a static graph
        # and then a generic one, a longer warm-up); its steps are no slower.
        self._step = torch.compile(self._forward_last, dynamic=True)

    def _forward_last(self, input_ids: torch.Tensor, cache: Any, cache_position: torch.Tensor) -> torch.Tensor:
        out = self.model(input_ids=input_ids, cache=cache, use_cache=True, cache_position=cache_position,
                         position_ids=cache_position.unsqueeze(0))
        return out.logits[:, -1, :].float()

    def tokens(self, input_ids: torch.Tensor, max_new_tokens: int, eos_token_ids: set[int],
               temperature: float = 0.0, top_p: float = 1.0, generator: torch.Generator | None = None,
               suppress: set[int] | frozenset[int] = frozenset()) -> Iterator[int]:
        """Yield up to ``max_new_tokens`` ids, stopping after an EOS id; ids in ``suppress`` are never
        sampled. The caller may stop reading early."""
        from transformers import StaticCache

        prompt_len = int(input_ids.shape[1])
        limit = getattr(self.model.config, "max_position_embeddings", None)
        # Inference mode is entered per call and never held across a ``yield``: a suspended generator would
        # leave it on for the caller's thread, and a cache made under it on one request but not the next
        # fails a compiled-graph guard (a recompile mid-answer).
        with torch.inference_mode():
            cache = StaticCache(config=self.model.config, max_cache_len=bucketed_cache_length(
                prompt_len + max_new_tokens, limit))
            logits = self._forward_last(input_ids, cache, torch.arange(prompt_len))
        for step in range(max_new_tokens):
            if suppress:
                logits = logits.index_fill(-1, torch.tensor(sorted(suppress)), float("-inf"))
            token = sample_token(logits, temperature, top_p, generator)
            yield token
            if token in eos_token_ids or step == max_new_tokens - 1:
                return
            with torch.inference_mode():
                logits = self._step(torch.tensor([[token]]), cache, torch.tensor([prompt_len + step]))


def sample_token(logits: torch.Tensor, temperature: float, top_p: float,
                 generator: torch.Generator | None = None) -> int:
    """Greedy at temperature 0; else nucleus sampling over ``logits`` (shape ``[1, vocab]``)."""
    if temperature <= 0:
        return int(logits.argmax(dim=-1))
    probs = torch.softmax(logits / temperature, dim=-1)
    if top_p < 1.0:
        sorted_probs, order = probs.sort(dim=-1, descending=True)
        outside = sorted_probs.cumsum(dim=-1) - sorted_probs > top_p  # keep the smallest set reaching top_p
        sorted_probs = sorted_probs.masked_fill(outside, 0.0)
        choice = torch.multinomial(sorted_probs, 1, generator=generator)
        return int(order.gather(-1, choice))
    return int(torch.multinomial(probs, 1, generator=generator))
