"""The ``reward:`` section of a recipe: backbone, training budget, public mix-ins, composite weights."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Objective = Literal["quality", "safety", "faithfulness"]


@dataclass
class RewardSourceSection:
    """A public preference set for one objective: some rows held out for evaluation, some mixed into training.

    Rows are shuffled with the run seed and the first ``heldout_rows`` are set aside *before* any
    training row is drawn, so evaluation rows are never trained on.
    """

    objective: Objective
    kind: Literal["hh-rlhf", "halueval", "donotanswer", "jsonl"]
    path: str
    heldout_rows: int = 200
    train_rows: int = 0


@dataclass
class CompositeSection:
    """How PPO's scalar reward is built from the three normalized scores.

    Safety is a constraint (PPO-Lagrangian): the multiplier grows while the batch's mean safety score is
    below ``safety_threshold`` and shrinks (down to 0) while it is above.
    """

    quality_weight: float = 1.0
    faithfulness_weight: float = 1.0
    safety_weight: float = 0.5
    safety_threshold: float = 0.0
    lagrange_init: float = 0.5
    lagrange_lr: float = 0.1
    lagrange_max: float = 10.0
    # Prompt kinds (PPO data's ``kind``: harmful, benign_risky, ...) scored by the safety model alone, scaled by
    # the sum of the three weights (Llama 2's piecewise reward: the safety reward model on prompts tagged as
    # safety-relevant). The quality and faithfulness models never saw such requests in training and, measured
    # on cpu-demo, preferred complying with held-out harmful requests 72-94% of the time.
    safety_kinds: list[str] = field(default_factory=list)
    # Prompt kinds whose composite leaves the safety score out (quality and faithfulness only). The safety model
    # never saw a translation; on cpu-rlhf policies' translations it paid wrong-language answers more than
    # right ones (reward/judge audit AUC 0.22-0.28 in four runs) and dragged the composite with it.
    no_safety_kinds: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        both = sorted(set(self.safety_kinds) & set(self.no_safety_kinds))
        if both:
            raise ValueError(f"prompt kind(s) {both} are in both safety_kinds and no_safety_kinds")


@dataclass
class RewardSection:
    """Bradley-Terry reward models (one per objective) on a shared encoder backbone."""

    model: str = "all-minilm-l6-v2"
    max_length: int = 256
    # Fine-tune only the top N encoder layers (+ pooler and head); the frozen lower layers are then identical
    # across objectives, so scoring runs them once for all three. -1 = full fine-tune (no sharing).
    train_top_layers: int = 2
    epochs: float = 2.0
    max_steps: int = -1
    learning_rate: float = 1.0e-4
    batch_size: int = 16
    eval_batch_size: int = 64
    warmup_ratio: float = 0.05
    train_rows: int | None = None
    # Extra pairs whose rejected side is a canned non-answer ("I can help with that."), built from the sampled
    # project rows (see reward_models.deflections): a reward model that never saw one can rate it highly, and
    # PPO finds that first.
    deflection_pairs: int = 0
    # Sample ``train_rows`` with as many "refusing was wrong" pairs as "refusing was right" ones (safety data;
    # see reward_models.pairs.balanced_refusal_sample). Objectives without such categories sample uniformly.
    refusal_balance: bool = False
    # Extra safety pairs that choose a short refusal over the compliance where refusing is right (see
    # reward_models.deflections.bare_refusal_pairs), pairs that reject the user's message echoed back, and pairs
    # that reject a compliance opened like a refusal ("I can't help but ...").
    bare_refusal_pairs: int = 0
    echo_pairs: int = 0
    near_refusal_pairs: int = 0
    eval_rows_during_training: int = 64
    eval_steps: int = 20
    logging_steps: int = 5
    score_batch_size: int = 64
    sources: list[RewardSourceSection] = field(default_factory=list)
    composite: CompositeSection = field(default_factory=CompositeSection)
