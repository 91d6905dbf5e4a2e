"""How ``parley pipeline`` schedules its stages."""

from __future__ import annotations

from dataclasses import dataclass, field


def parse_seeds(text: str) -> list[int]:
    """``"42,43,44"`` -> ``[42, 43, 44]``; raises ValueError naming what is wrong (not an integer, negative, twice)."""
    parts = [p.strip() for p in str(text).split(",")]
    if not any(parts):
        raise ValueError(f"{text!r} names no seeds: give a comma list of integers such as 42,43,44")
    seeds = []
    for part in parts:
        try:
            seeds.append(int(part))
        except ValueError:
            raise ValueError(f"{text!r}: {part!r} is not an integer seed (give a comma list such as 42,43,44)"
                             ) from None
    check_seeds(seeds)
    return seeds


def check_seeds(seeds: list[int]) -> None:
    """Seeds are non-negative integers, each once (each names a run ``<run.name>-s<seed>``)."""
    negative = [s for s in seeds if s < 0]
    if negative:
        raise ValueError(f"seeds must be >= 0, got {negative}")
    twice = sorted({s for s in seeds if seeds.count(s) > 1})
    if twice:
        raise ValueError(f"seeds must differ, got {twice} more than once")


@dataclass
class PipelineSection:
    """How ``parley pipeline`` schedules its stages (never changes what a stage computes)."""

    # Train SFT and the three reward models (which do not depend on each other) at the same time in two child
    # processes, the cores split between them. On 2 cores one thread runs these at 0.62x the speed of two, so the
    # two lanes finish ~1.25x sooner than running the stages one after the other.
    parallel_lanes: bool = False
    # Run the recipe once per seed (``run.seed``), each a normal run named ``<run.name>-s<seed>`` (resumed and
    # skipped like any run), then aggregate their evaluation reports in ``<run.name>-seeds/evaluate``: each
    # metric's median and range over seeds, and which PPO-vs-SFT differences exceed the seed spread. Empty: one
    # run, ``run.name`` with ``run.seed``.
    seeds: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        check_seeds(self.seeds)
