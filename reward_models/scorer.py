"""Text-level scoring with the three reward models: ``RewardScorer.from_pretrained(reward_dir)``.

``reward_dir`` is a run folder holding ``reward-quality/``, ``reward-safety/`` and ``reward-faithfulness/``,
each with a ``model/`` folder (``save_pretrained`` model + tokenizer, ``normalization.json``,
``parley_reward.json``). Objectives whose folder is missing are simply not scored.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from groundwork.data_loading import OBJECTIVES
from groundwork.errors import ModelNotFoundError
from groundwork.layout import RunLayout
from groundwork.precision import native_bf16_cpu
from reward_models.grounding import META_KEY as GROUNDING_KEY
from reward_models.grounding import blend_grounding
from reward_models.normalization import Normalization
from reward_models.rule_gate import META_KEY as RULE_CAP_KEY
from reward_models.rule_gate import cap_rule_failures
from reward_models.text import encode_reward_input
from reward_models.trunk import SeparateModels, SharedTrunk, supports_sharing

META_FILE = "parley_reward.json"
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}
Item = tuple[Any, str, str | None]  # (prompt as str or messages, response, context)


def bf16_keeps_scores(norms: dict[str, Normalization]) -> bool:
    """Whether bfloat16 (8 mantissa bits, ~0.4% relative error per value) leaves normalized scores readable:
    every model's spread must be at least a tenth of its scores' size. Trained MiniLM reward models spread
    about as wide as they sit from zero (within 0.05 std of float32); a barely trained model whose scores all
    sit near one value (std 7e-5 at mean 0.03) would see its ranking drowned by rounding."""
    return all(n.std > 0 and (abs(n.mean) + n.std) / n.std <= 10 for n in norms.values())


def scoring_dtype(name: str, norms: dict[str, Normalization] | None = None) -> torch.dtype:
    """``auto``: bfloat16 where the CPU multiplies it natively (about half the time of float32 for MiniLM) and
    the models' score spread allows it (:func:`bf16_keeps_scores`), float32 elsewhere; or an explicit
    ``float32`` / ``bfloat16``."""
    if name == "auto":
        fits = norms is None or bf16_keeps_scores(norms)
        return torch.bfloat16 if native_bf16_cpu() and fits else torch.float32
    if name not in DTYPES:
        raise ValueError(f"unknown scoring dtype {name!r}: use auto, {', '.join(DTYPES)}")
    return DTYPES[name]


def objective_model_dir(reward_dir: str | Path, objective: str) -> Path:
    return RunLayout(Path(reward_dir)).reward_model(objective)


@dataclass
class _Group:
    """Objectives that read the same token ids (one tokenizer) and run as one module."""

    tokenizer: Any
    max_length: int
    module: nn.Module


def _pad(batch: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(ids) for ids in batch)
    input_ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for i, ids in enumerate(batch):
        input_ids[i, : len(ids)] = torch.tensor(ids, dtype=torch.long)
        mask[i, : len(ids)] = 1
    return input_ids, mask


class RewardScorer(nn.Module):
    """Normalized quality / safety / faithfulness scores for (conversation, response, context) triples."""

    def __init__(self, groups: list[_Group], norms: dict[str, Normalization], shared_layers: int = 0,
                 rule_caps: dict[str, float] | None = None,
                 grounding_weights: dict[str, float] | None = None) -> None:
        super().__init__()
        # Objective -> the most an answer a fixed rule calls wrong may score (reward_models.rule_gate).
        self.rule_caps = dict(rule_caps or {})
        # Objective -> the weight of the answer's KB support in its score (reward_models.grounding).
        self.grounding_weights = dict(grounding_weights or {})
        self.groups = groups
        self.group_modules = nn.ModuleList(g.module for g in groups)
        self.norms = norms
        self.objectives = [o for o in OBJECTIVES if o in norms]
        self.shared_layers = shared_layers

    @classmethod
    def from_models(cls, models: dict[str, nn.Module], tokenizers: dict[str, Any], metas: dict[str, dict],
                    norms: dict[str, Normalization]) -> RewardScorer:
        """Group models that share a frozen trunk into one :class:`SharedTrunk`; the rest run separately."""
        for model in models.values():
            model.eval()
        caps = {o: float(m[RULE_CAP_KEY]) for o, m in metas.items() if m.get(RULE_CAP_KEY) is not None}
        grounding = {o: float(m[GROUNDING_KEY]) for o, m in metas.items() if m.get(GROUNDING_KEY)}
        objectives = list(models)
        fingerprints = {metas[o].get("trunk_fingerprint", "") for o in objectives}
        frozen = {metas[o].get("frozen_layers", 0) for o in objectives}
        first = objectives[0]
        shareable = (len(fingerprints) == 1 and "" not in fingerprints and len(frozen) == 1
                     and all(supports_sharing(models[o]) for o in objectives))
        if shareable:
            n = frozen.pop()
            group = _Group(tokenizers[first], metas[first]["max_length"], SharedTrunk(models, n))
            return cls([group], norms, shared_layers=n, rule_caps=caps, grounding_weights=grounding)
        groups = [_Group(tokenizers[o], metas[o]["max_length"], SeparateModels({o: models[o]})) for o in objectives]
        return cls(groups, norms, rule_caps=caps, grounding_weights=grounding)

    @classmethod
    def from_pretrained(cls, reward_dir: str | Path, objectives: Sequence[str] = OBJECTIVES,
                        dtype: str = "float32") -> RewardScorer:
        """Load the objectives found under ``reward_dir``; ``dtype`` as in :func:`scoring_dtype`."""
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        models, tokenizers, metas, norms = {}, {}, {}, {}
        for objective in objectives:
            path = objective_model_dir(reward_dir, objective)
            if not (path / META_FILE).is_file():
                continue
            metas[objective] = json.loads((path / META_FILE).read_text(encoding="utf-8"))
            models[objective] = AutoModelForSequenceClassification.from_pretrained(path)
            tokenizers[objective] = AutoTokenizer.from_pretrained(path)
            norms[objective] = Normalization.load(path)
        if not models:
            raise ModelNotFoundError(
                f"no reward models under {reward_dir}: expected reward-<objective>/model/ folders "
                f"(run `parley reward train --objective ...` first)"
            )
        return cls.from_models(models, tokenizers, metas, norms).to(scoring_dtype(dtype, norms))

    @torch.no_grad()
    def raw_scores(self, items: Sequence[Item], batch_size: int = 64, progress: bool = False) -> dict[str, list[float]]:
        """Unnormalized scores; batches are length-sorted so padding stays small."""
        out: dict[str, list[float]] = {o: [0.0] * len(items) for o in self.objectives}
        for group in self.groups:
            device = next(group.module.parameters()).device
            encoded = [encode_reward_input(group.tokenizer, p, r, c, group.max_length) for p, r, c in items]
            order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
            starts = range(0, len(order), batch_size)
            if progress:
                from tqdm.auto import tqdm

                starts = tqdm(starts, desc="reward scoring", unit="batch")
            for start in starts:
                index = order[start:start + batch_size]
                input_ids, mask = _pad([encoded[i] for i in index], group.tokenizer.pad_token_id)
                scores = group.module(input_ids.to(device), mask.to(device))
                for objective, values in scores.items():
                    for i, value in zip(index, values.float().cpu().tolist(), strict=True):
                        out[objective][i] = value
        return out

    def score(self, items: Sequence[Item], batch_size: int = 64, progress: bool = False) -> dict[str, list[float]]:
        """Normalized scores (mean 0, std 1 on each model's reference set) per objective; objectives trained
        with a grounding weight blend in the answer's KB support, and objectives trained with a rule cap score
        an answer a fixed rule calls wrong (wrong language, bad form) at most that cap."""
        raw = self.raw_scores(items, batch_size, progress)
        scores = {o: [self.norms[o].apply(v) for v in values] for o, values in raw.items()}
        if self.grounding_weights:
            scores = blend_grounding(scores, items, self.grounding_weights)
        if self.rule_caps:
            scores = cap_rule_failures(scores, items, self.rule_caps)
        return scores

    def score_one(self, prompt: Any, response: str, context: str | None = None) -> dict[str, float]:
        return {o: v[0] for o, v in self.score([(prompt, response, context)]).items()}
