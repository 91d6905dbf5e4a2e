"""Run the policy's frozen lower layers once per PPO rollout instead of once per pass.

The PPO adapter sits on the top layers only (``ppo.lora.top_layers``), and the embeddings and the layers
below it never change during PPO. TRL 1.12's loop still runs every layer over the same prompt + response in
each pass: the rollout generation, the reference pass (adapter disabled) and every training minibatch. This
module keeps TRL's loop and its PPO arithmetic and changes only how those passes are computed:

- while TRL generates a rollout, the output of the last frozen layer is recorded (the prefill plus one
  position per decoding step), per row of the generated batch;
- the reference pass and the training passes look their rows up and run only the layers above it, with
  the lower layers' calls turned into a hand-over of the recorded rows;
- both passes compute the LM head on the response positions only (TRL reads no other logits).

The result is the same up to float rounding (incremental decoding vs one full pass); gradients are
unchanged because nothing below the adapter has any. Rows that were not recorded (another caller, a
resumed batch) run the full model. Under DDP the training pass goes through the wrapper untouched.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import torch

from groundwork.architectures import decoder_layers


def frozen_depth(policy) -> int:
    """How many lower decoder layers have nothing trainable (0 when the embeddings train, or no layer is frozen)."""
    base = policy.get_base_model() if hasattr(policy, "get_base_model") else policy
    if base.get_input_embeddings().weight.requires_grad:
        return 0
    for index, layer in enumerate(decoder_layers(base)):
        if any(p.requires_grad for p in layer.parameters()) or any("lora_" in n for n, _ in layer.named_modules()):
            return index
    return 0


class _ShiftedLogits:
    """Logits computed for the last positions only, indexed as if they covered the whole sequence.

    TRL reads ``output.logits[:, context_length - 1 : -1]``; this maps that slice onto the kept positions,
    so no logits are computed (or allocated) for the prompt.
    """

    def __init__(self, kept: torch.Tensor, total_length: int) -> None:
        self.kept, self.offset = kept, total_length - kept.shape[1]

    def __getitem__(self, index):
        rows, positions = index
        start = (positions.start or 0) - self.offset
        stop = positions.stop
        if start < 0:
            raise IndexError(f"position {positions.start} was not kept (kept from {self.offset})")
        if stop is not None and stop > 0:
            stop -= self.offset
        return self.kept[rows, start:stop]


class FrozenPrefixCache:
    """Records the frozen prefix's output during rollout generation and replays it in later passes."""

    def __init__(self, policy, depth: int | None = None) -> None:
        self.policy = policy
        base = policy.get_base_model() if hasattr(policy, "get_base_model") else policy
        self.layers = decoder_layers(base)
        self.depth = frozen_depth(policy) if depth is None else depth
        self.rows: dict[bytes, torch.Tensor] = {}
        self.context_length: int | None = None
        # Per generate() call (one per rollout chunk): the prefill's states, then one per decoding step.
        self._recording: list[list[torch.Tensor]] | None = None
        self._replay: torch.Tensor | None = None
        self.stats = {"replayed_rows": 0, "full_rows": 0}

    @property
    def enabled(self) -> bool:
        return self.depth > 0

    # -- layer hooks ---------------------------------------------------------------------------------------------
    def _lower_forward(self, index: int, original):
        def forward(hidden_states, *args, **kwargs):
            if self._replay is not None:
                # The first frozen layer hands over the recorded output; the others pass it on untouched.
                return self._replay if index == 0 else hidden_states
            out = original(hidden_states, *args, **kwargs)
            if index == self.depth - 1 and self._recording is not None:
                state = (out[0] if isinstance(out, tuple) else out).detach()
                if state.shape[1] > 1 or not self._recording:  # a prefill: the next generate() call began
                    self._recording.append([])
                self._recording[-1].append(state)
            return out
        return forward

    @contextlib.contextmanager
    def installed(self) -> Iterator[FrozenPrefixCache]:
        """Patch the frozen layers and TRL's rollout/forward helpers for the duration of training."""
        if not self.enabled:
            yield self
            return
        import trl.experimental.ppo.ppo_trainer as trl_ppo

        originals = {"batch_generation": trl_ppo.batch_generation, "forward": trl_ppo.forward}
        for index in range(self.depth):
            layer = self.layers[index]
            layer.forward = self._lower_forward(index, layer.forward)
        trl_ppo.batch_generation = self._batch_generation(originals["batch_generation"])
        trl_ppo.forward = self._forward(originals["forward"])
        try:
            yield self
        finally:
            trl_ppo.batch_generation, trl_ppo.forward = originals["batch_generation"], originals["forward"]
            for index in range(self.depth):
                del self.layers[index].forward
            self.rows.clear()

    # -- rollout -------------------------------------------------------------------------------------------------
    def _batch_generation(self, original):
        def batch_generation(model, queries, local_rollout_forward_batch_size, pad_token_id, generation_config):
            self.rows.clear()
            self.context_length = queries.shape[1]
            self._recording = chunks = []
            try:
                query_responses, logits = original(model, queries, local_rollout_forward_batch_size, pad_token_id,
                                                   generation_config)
            finally:
                self._recording = None
            self._store(query_responses, chunks, pad_token_id)
            return query_responses, logits
        return batch_generation

    def _store(self, query_responses: torch.Tensor, chunks: list[list[torch.Tensor]], pad_token_id: int) -> None:
        start = 0
        width = query_responses.shape[1]
        for steps in chunks:
            hidden = torch.cat(steps, dim=1)
            size = hidden.shape[0]
            rows = query_responses[start:start + size]
            if hidden.shape[1] < width:  # the last generated token is never fed back: nothing reads its state
                hidden = torch.nn.functional.pad(hidden, (0, 0, 0, width - hidden.shape[1]))
            hidden = hidden[:, :width] * (rows != pad_token_id).unsqueeze(-1).to(hidden.dtype)
            for key, state in zip(_row_keys(rows), hidden, strict=True):
                self.rows[key] = state
            start += size

    # -- passes --------------------------------------------------------------------------------------------------
    def _forward(self, original):
        def forward(model, query_responses, pad_token_id):
            from trl.experimental.ppo.ppo_trainer import PolicyAndValueWrapper

            if isinstance(model, PolicyAndValueWrapper):
                return self._training_pass(model, query_responses, pad_token_id, original)
            if model is self.policy:  # TRL's only direct call on the policy: the reference pass (adapter off)
                return self._policy_pass(model, query_responses, pad_token_id, original)
            return original(model, query_responses, pad_token_id)
        return forward

    def _training_pass(self, model, query_responses, pad_token_id, original):
        """The policy-and-value wrapper's pass (what ``PolicyAndValueWrapper.forward`` computes)."""
        critic = model.critic_backbone(**_inputs(query_responses, pad_token_id), return_dict=True,
                                       output_hidden_states=True)
        return (self._policy_pass(model.policy, query_responses, pad_token_id, original),
                model.value_model.score(critic.hidden_states[-1]))

    def _policy_pass(self, policy, query_responses, pad_token_id, original):
        if self.context_length is None or self.context_length > query_responses.shape[1]:
            return original(policy, query_responses, pad_token_id)
        keys = _row_keys(query_responses)
        recorded = [self.rows.get(key) for key in keys]
        keep = query_responses.shape[1] - self.context_length + 1
        if all(state is not None for state in recorded):
            self._replay = torch.stack(recorded)  # type: ignore[arg-type]
            self.stats["replayed_rows"] += len(keys)
        else:
            self.stats["full_rows"] += len(keys)
        try:
            output = policy(**_inputs(query_responses, pad_token_id), logits_to_keep=keep, return_dict=True)
        finally:
            self._replay = None
        return SimpleNamespace(logits=_ShiftedLogits(output.logits, query_responses.shape[1]))


def _row_keys(token_rows: torch.Tensor) -> list[bytes]:
    """One key per row of token ids (copied to the CPU once per batch, so rollouts on a GPU work too)."""
    return [row.tobytes() for row in token_rows.detach().cpu().numpy()]


def _inputs(query_responses: torch.Tensor, pad_token_id: int) -> dict[str, Any]:
    """The same inputs TRL's ``forward`` builds: pads masked, positions counted from the first real token."""
    attention_mask = query_responses != pad_token_id
    return {"input_ids": torch.masked_fill(query_responses, ~attention_mask, 0), "attention_mask": attention_mask,
            "position_ids": attention_mask.cumsum(1) - attention_mask.long()}
