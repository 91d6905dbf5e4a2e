"""Where a run's artifacts go, how it is seeded, and which policy model it tunes."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from groundwork.layout import RunLayout
from groundwork.precision import MixedPrecision


@dataclass
class RunSection:
    """Where artifacts go and how randomness is seeded."""

    name: str = "demo"
    output_dir: str = "runs"
    seed: int = 42
    # Training precision of SFT, the reward models and the request-risk model (``groundwork.precision``): "auto"
    # = bf16 mixed precision (float32 weights, bf16 matrix products) where the hardware multiplies bf16 natively,
    # "bf16" = always, "fp32" = float32 throughout (not "no": YAML reads that as false).
    mixed_precision: MixedPrecision = "auto"

    @property
    def root(self) -> Path:
        return Path(self.output_dir) / self.name

    @property
    def layout(self) -> RunLayout:
        """Every artifact path of this run (``groundwork.layout``)."""
        return RunLayout(self.root)


@dataclass
class PolicySection:
    """The policy model: a bundled name, a hub id or a local directory."""

    model: str = "smollm2-135m-instruct"
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    system_prompt: str | None = None

