"""The reward PPO optimizes: three reward models behind the interface TRL's ``get_reward`` expects.

``trl.experimental.utils.get_reward`` does ``getattr(model, model.base_model_prefix)(input_ids=...,
attention_mask=..., ...)``, then ``model.score(hidden_states[-1])`` and reads the value at each row's
last real token. :class:`CompositeReward` decodes the policy tokens to text, scores them with the
:class:`~reward_models.scorer.RewardScorer` (own tokenizer, one shared trunk), combines the normalized
scores routed by the request-risk model (p(harmful | prompt) weighs safety alone against quality +
faithfulness, :func:`~reward_models.lagrange.combine_routed`; without a risk model, the Lagrangian composite),
and returns that scalar broadcast along the sequence so whatever position ``get_reward`` gathers holds it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import SimpleNamespace
from typing import Any

import torch
from torch import nn

from groundwork.chat_format import last_user_text
from groundwork.sections.reward import CompositeSection
from reward_models.lagrange import LagrangeMultiplier, combine_routed, form_flags, refusal_flags
from reward_models.policy_text import PolicyTextDecoder
from reward_models.scorer import RewardScorer


class _TextRewardBackbone(nn.Module):
    """What ``get_reward`` calls as the backbone: tokens in, composite reward as a 1-wide "hidden state" out."""

    def __init__(self, owner: CompositeReward) -> None:
        super().__init__()
        self._owner = [owner]  # a list, so the owner is not registered as a submodule (no cycle)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, **_: Any):
        owner = self._owner[0]
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        rewards = owner.reward_from_tokens(input_ids, attention_mask)
        hidden = rewards.to(torch.float32)[:, None, None].expand(-1, input_ids.shape[1], 1)
        return SimpleNamespace(hidden_states=(hidden,), last_hidden_state=hidden)


class _Identity(nn.Module):
    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return hidden


class CompositeReward(nn.Module):
    """Weighted, normalized quality + faithfulness + Lagrangian safety, usable as PPOTrainer's ``reward_model``."""

    base_model_prefix = "backbone"

    def __init__(self, scorer: RewardScorer, policy_tokenizer, cfg: CompositeSection | None = None,
                 batch_size: int = 64, risk: Any | None = None) -> None:
        super().__init__()
        self.scorer = scorer
        self.risk = risk  # a RequestRiskModel, or None: then the Lagrangian composite of all three objectives
        self._risk_cache: dict[str, float] = {}
        self.decoder = PolicyTextDecoder(policy_tokenizer)
        self.cfg = cfg or CompositeSection()
        self.lagrange = LagrangeMultiplier(self.cfg)
        self.batch_size = batch_size
        self.context_length: int | None = None  # set it to skip finding the prompt/response split
        self.backbone = _TextRewardBackbone(self)
        self.score = _Identity()
        self._pending: dict[str, list[float]] = {}
        self.last_stats: dict[str, float] = {}
        self._kinds: dict[tuple[int, ...], str] = {}
        self._pad_token_id: int | None = None
        self._momentum = 0.0
        self._center_kinds = False
        self.kind_baselines: dict[str, float] = {}

    def set_prompt_kinds(self, kinds: Mapping[tuple[int, ...], str], pad_token_id: int | None) -> None:
        """Tell the reward each training prompt's kind (its token ids, pads dropped -> kind).

        Needed for ``safety_kinds`` routing and for per-kind baselines; prompts not in the map have no kind.
        """
        self._kinds = dict(kinds)
        self._pad_token_id = pad_token_id

    def use_kind_baselines(self, kinds: Mapping[tuple[int, ...], str], pad_token_id: int | None, momentum: float,
                           baselines: Mapping[str, float] | None = None) -> None:
        """Subtract from each reward a running mean of the rewards of its prompt's kind.

        The kinds score far apart (cpu-demo SFT on held-out prompts: translation -1.7, harmful -1.3, support
        +0.1), so in a mixed batch most of a reward's deviation says which kind the prompt was, not how good
        the answer was, until the value model has learned the difference. A baseline that depends only on the
        prompt leaves the policy gradient unbiased and removes that part of its variance. ``kinds`` maps a
        prompt's token ids (pads dropped) to its kind; the means move by ``momentum`` after each PPO step.
        """
        self.set_prompt_kinds(kinds, pad_token_id)
        self._momentum = momentum
        self._center_kinds = True
        self.kind_baselines = dict(baselines or {})

    @classmethod
    def from_pretrained(cls, reward_dir, policy_tokenizer, cfg: CompositeSection | None = None,
                        risk_dir: str | None = None) -> CompositeReward:
        """Reward models under ``reward_dir``; the request-risk model from ``risk_dir`` when given."""
        risk = None
        if risk_dir is not None:
            from reward_models.risk_model import RequestRiskModel

            risk = RequestRiskModel.from_pretrained(risk_dir)
        return cls(RewardScorer.from_pretrained(reward_dir), policy_tokenizer, cfg, risk=risk)

    def prompt_risks(self, prompts: list[Any]) -> list[float] | None:
        """p(harmful) of each prompt (cached: PPO sees the same prompts again), or None without a risk model."""
        if self.risk is None:
            return None
        from reward_models.risk_model import request_text

        texts = [request_text(p) for p in prompts]
        missing = sorted({t for t in texts if t not in self._risk_cache})
        for text, p in zip(missing, self.risk.probabilities(missing), strict=True):
            self._risk_cache[text] = p
        return [self._risk_cache[t] for t in texts]

    @torch.no_grad()
    def reward_from_tokens(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """One composite reward per row of policy tokens; per-objective batch means are kept for logging."""
        device = input_ids.device  # the reward goes back where the policy's tokens are
        input_ids, attention_mask = input_ids.cpu(), attention_mask.cpu()
        context_length = self.context_length or self.decoder.find_context_length(input_ids, attention_mask)
        rows = self.decoder.decode(input_ids, attention_mask, context_length)
        scores = self.scorer.score(rows, batch_size=self.batch_size)
        tensors = {o: torch.tensor(v, dtype=torch.float32) for o, v in scores.items()}
        for objective, values in scores.items():
            self._pending.setdefault(objective, []).extend(values)
        risks = self.prompt_risks([row[0] for row in rows])
        risk = torch.tensor(risks, dtype=torch.float32) if risks is not None else None
        if risks is not None:
            self._pending.setdefault("risk", []).extend(risks)
        responses = [row[1] for row in rows]
        flags = torch.tensor(form_flags([last_user_text(row[0]) for row in rows], responses))
        refused = torch.tensor(refusal_flags(responses))
        reward = combine_routed(tensors, risk, self.cfg, self.lagrange.value, flags, refused)
        if not isinstance(reward, torch.Tensor):
            reward = torch.zeros(input_ids.shape[0])
        kinds = self._row_kinds(input_ids, context_length) if self._kinds and context_length is not None else None
        self._pending.setdefault("composite", []).extend(reward.tolist())
        if kinds is not None and self._center_kinds:
            reward = self._center_by_kind(kinds, reward)
        return reward.to(device)

    def _row_kinds(self, input_ids: torch.Tensor, context_length: int) -> list[str | None]:
        return [self._kinds.get(tuple(t for t in row[:context_length].tolist() if t != self._pad_token_id))
                for row in input_ids]

    def _center_by_kind(self, kinds: list[str | None], reward: torch.Tensor) -> torch.Tensor:
        """``reward`` minus its kind's baseline (the kind's mean in this batch until a step has set one)."""
        centered = reward.clone()
        for kind in sorted({k for k in kinds if k is not None}):
            rows = [i for i, k in enumerate(kinds) if k == kind]
            self._pending.setdefault(f"kind/{kind}", []).extend(reward[rows].tolist())
            centered[rows] = reward[rows] - self.kind_baselines.get(kind, float(reward[rows].mean()))
        return centered

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Composite reward per row (for callers other than ``get_reward``)."""
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        return self.reward_from_tokens(input_ids, attention_mask)

    def step(self, gather: Callable[[list[Any]], list[Any]] | None = None) -> dict[str, float]:
        """End of a PPO step: log per-objective means of the step's rewards, then update the multiplier.

        In a multi-process run pass ``gather`` (e.g. accelerate's ``gather_object``): every rank then pools all
        ranks' rewards in rank order, so the means, and therefore the multiplier, are identical everywhere.
        """
        pending = self._pending
        if gather is not None:
            pending = {}
            for part in gather([self._pending]):
                for objective, values in part.items():
                    pending.setdefault(objective, []).extend(values)
        stats = {f"reward/{o}_mean": sum(v) / len(v) for o, v in pending.items() if v and "/" not in o}
        stats["reward/lagrange_multiplier"] = self.lagrange.value
        if pending.get("safety"):
            stats["reward/lagrange_multiplier_next"] = self.lagrange.update(stats["reward/safety_mean"])
        for key, values in sorted(pending.items()):
            if key.startswith("kind/") and values:
                kind, mean = key.removeprefix("kind/"), sum(values) / len(values)
                previous = self.kind_baselines.get(kind)
                self.kind_baselines[kind] = mean if previous is None else (
                    self._momentum * previous + (1.0 - self._momentum) * mean)
                stats[f"reward/baseline_{kind}"] = self.kind_baselines[kind]
        self._pending = {}
        self.last_stats = stats
        return stats
