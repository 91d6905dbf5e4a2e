"""How ``parley pipeline`` schedules its stages."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class PipelineSection:
    """How ``parley pipeline`` schedules its stages (never changes what a stage computes)."""

    # Train SFT and the three reward models (which do not depend on each other) at the same time in two child
    # processes, the cores split between them. On 2 cores one thread runs these at 0.62x the speed of two, so the
    # two lanes finish ~1.25x sooner than running the stages one after the other.
    parallel_lanes: bool = False

