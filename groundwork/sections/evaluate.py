"""The ``evaluate:`` section of a recipe."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class EvalModelSection:
    """One policy to evaluate: a base model plus adapters applied (and merged) in order."""

    name: str
    model: str | None = None
    adapters: list[str] = field(default_factory=list)


@dataclass
class EvaluateSection:
    """Which models, on how many held-out prompts, with how many new tokens."""

    models: list[EvalModelSection] = field(default_factory=list)
    # With ``models`` empty: this run's sft and ppo, and the untuned base model unless this is false.
    include_base: bool = True
    max_prompts_per_kind: int | None = None
    max_new_tokens: int = 96
    batch_size: int = 8
    reference: str = "sft"
    compare: list[str] = field(default_factory=lambda: ["ppo", "sft"])
    # The extractive baseline beside the policies (``dialogue.extractive``): no generation, the most relevant
    # sentence of the top retrieved KB passage, scored like the others (and through the served path in the system
    # table's support sets). Cheap: one KB embedding and one query embedding per prompt.
    include_extractive: bool = True
    # System mode: the served code path (retrieval, guard, limits, engine) on public dev prompts from the
    # request-risk stage's dev split, per set: blocked, refused, non-answer, degenerate, substantive.
    system: bool = True
    system_prompts_per_set: int = 200
    system_max_new_tokens: int = 64
