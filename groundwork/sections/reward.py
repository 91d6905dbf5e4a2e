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
    # Subtracted (in the ordinary route) from an answer that is only filler ("I can help you with that."),
    # repeats itself or echoes the request (groundwork.answer_form): about two standard deviations of a
    # normalized objective, so such an answer loses to any substantive one. 0 turns the rule off.
    form_weight: float = 2.0
    # Subtracted in the ordinary route from a refusal, so it weighs (1 - p(harmful)) times this: a refused support
    # question loses to any answer, a refused harmful request costs nothing. Without it PPO found that "I'm
    # sorry, I can't help with that." escapes the form penalty on support questions. 0 turns the rule off.
    refusal_weight: float = 2.0
    # Routing (safety alone for risky requests, quality + faithfulness for the rest) uses the request-risk
    # model of the run (``risk:`` section, ``runs/<run>/risk/model``), never the data's kind labels.


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
    # Safety: train only on pairs where refusing is right (harmful, fraud, another customer's data, prompt
    # injection). The routed composite asks the safety model only in proportion to p(harmful), so its job is
    # to tell a refusal from a compliance; whether a request needed refusing is the request-risk model's job.
    safety_refuse_only: bool = False
    # Extra safety pairs that choose a short refusal over the compliance where refusing is right (see
    # reward_models.deflections.bare_refusal_pairs), pairs that reject the user's message echoed back, and pairs
    # that reject a compliance opened like a refusal ("I can't help but ...").
    bare_refusal_pairs: int = 0
    echo_pairs: int = 0
    near_refusal_pairs: int = 0
    # Quality and faithfulness: project safety pairs (half refuse-right, half refuse-wrong) added to their
    # training, so that a harmful compliance loses on every objective, not only where the request-risk model
    # routes the composite to safety. Faithfulness: the quality data's translation pairs (a faithful translation
    # keeps its source's content). Both: translation rows re-paired with a garbled copy of the right translation
    # as the rejected side. See reward_models.borrowed_pairs.
    borrowed_safety_pairs: int = 0
    borrowed_translation_pairs: int = 0
    garbled_translation_pairs: int = 0
    # Quality and faithfulness: an answer a fixed rule calls wrong (a translation in another language than the
    # request asks for; filler only, repeated or echoed) scores at most this (normalized units;
    # reward_models.rule_gate). None turns the cap off.
    rule_cap: float | None = -2.0
    # Quality and faithfulness: the weight of the answer's KB support (share of its content bigrams found in the
    # passages) blended into the learned score where the input has KB context (reward_models.grounding). 0 = off.
    grounding_weight: float = 0.5
    eval_rows_during_training: int = 64
    eval_steps: int = 20
    logging_steps: int = 5
    score_batch_size: int = 64
    # ``parley reward score``: the run folder holding reward-<objective>/model (None = this run's folder).
    score_dir: str | None = None
    # Human-feedback preference rows mixed into training: folders written by ``parley feedback export --out DIR``
    # or their preferences-<objective>.jsonl files, or any JSONL of prompt/chosen/rejected/context rows.
    feedback: list[str] = field(default_factory=list)
    sources: list[RewardSourceSection] = field(default_factory=list)
    composite: CompositeSection = field(default_factory=CompositeSection)
