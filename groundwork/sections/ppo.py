"""The ``ppo:`` section of a recipe."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from groundwork.sections.lora import LoraSection


@dataclass
class PromptSourceSection:
    """Public requests added to PPO's training pool under one prompt kind (skipped with a message if absent).

    The project's PPO pool has 48 harmful requests from ~20 templates; the policy learned to refuse those and
    complied with held-out ones. Requests from a public list (Do-Not-Answer) widen what "harmful" covers.
    """

    path: str
    kind: Literal["donotanswer"] = "donotanswer"
    prompt_kind: str = "harmful"
    rows: int = 100


@dataclass
class PPOSection:
    """PPO settings; the rollout batch is ``batch_size`` prompts per update."""

    steps: int = 24
    batch_size: int = 8
    num_mini_batches: int = 2
    num_ppo_epochs: int = 2
    response_length: int = 48
    temperature: float = 0.7
    learning_rate: float = 3.0e-5
    lr_scheduler: Literal["constant", "linear", "cosine"] = "linear"
    kl_coef: float = 0.05
    kl_estimator: Literal["k1", "k3"] = "k1"
    cliprange: float = 0.2
    cliprange_value: float = 0.2
    vf_coef: float = 0.1
    gamma: float = 1.0
    lam: float = 0.95
    whiten_rewards: bool = False
    missing_eos_penalty: float | None = 1.0
    # Center each reward on a running mean of its prompt kind's rewards (support, translation, harmful, ...),
    # moved by this momentum after every update; None = off. See CompositeReward.use_kind_baselines.
    kind_baseline_momentum: float | None = None
    # Prompts longer than this (in policy tokens, chat template included) are left out of PPO.
    max_prompt_tokens: int = 384
    max_prompts: int | None = None
    # Oversample prompt kinds in the training pool: each row of a kind appears floor(w) times, plus once more
    # with probability w - floor(w) (e.g. {harmful: 3.0}); unlisted kinds keep 1.0. The data has 12% harmful
    # prompts, about one per batch of 8, too few for the safety reward to move the policy (Llama 2 and Safe
    # RLHF likewise set the share of safety prompts rather than take the corpus mix).
    kind_weights: dict[str, float] = field(default_factory=dict)
    # Extra training prompts from public sets (never in the judge slice or the evaluation prompts).
    prompt_sources: list[PromptSourceSection] = field(default_factory=list)
    # Value model: the SFT policy's first ``value_layers`` decoder layers + a scalar head (None = all layers).
    value_layers: int | None = 6
    # Run the layers below the PPO adapter (frozen) once per rollout, during generation, and replay their
    # output in the reference and training passes, which then also compute logits for the response only
    # (dialogue/ppo/frozen_prefix.py). Same results up to float rounding; false runs TRL's passes unchanged.
    reuse_frozen_layers: bool = True
    # Where the SFT adapter and the reward models come from (defaults: this run's sft/ and reward-*/ folders).
    sft_adapter: str | None = None
    reward_dir: str | None = None
    checkpoint_every: int = 4
    keep_checkpoints: int = 2
    # Guards: stop (keeping the last good checkpoint) when any is violated.
    kl_budget: float = 25.0
    ratio_band: list[float] = field(default_factory=lambda: [0.5, 2.0])
    ratio_patience: int = 3
    # Over-optimization watch: every ``judge_every`` steps, greedy answers to ``judge_prompts`` held-out prompts
    # are scored by the rule-based judge and the best checkpoint by that score is kept (0 disables).
    judge_every: int = 8
    judge_prompts: int = 24
    judge_max_new_tokens: int = 48
    lora: LoraSection = field(default_factory=LoraSection)

    def __post_init__(self) -> None:
        bad = {kind: w for kind, w in self.kind_weights.items() if not w >= 0}
        if bad:
            raise ValueError(f"kind_weights must be >= 0, got {bad}")
