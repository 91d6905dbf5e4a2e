"""The recipe: one dataclass per pipeline section, loaded from ``configs/*.yaml``.

Each stage reads only its own section plus ``run``/``policy``/``data``; any key can
be overridden on the command line with ``--set section.key=value``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from reward_models.config import RewardSection
from reward_models.risk_config import RiskSection
from serving.config import ServeSection
from serving.quantize.config import QuantizeSection

from .config_io import apply_override, from_dict, load_recipe_yaml
from .evaluate_config import EvaluateSection
from .lora_config import LoraSection
from .ppo.config import PPOSection
from .soup_config import SoupSection


@dataclass
class RunSection:
    """Where artifacts go and how randomness is seeded."""

    name: str = "demo"
    output_dir: str = "runs"
    seed: int = 42

    @property
    def root(self) -> Path:
        return Path(self.output_dir) / self.name


@dataclass
class PolicySection:
    """The policy model: a bundled name, a hub id or a local directory."""

    model: str = "smollm2-135m-instruct"
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    system_prompt: str | None = None


@dataclass
class SourceSection:
    """One extra dataset mixed into a stage (a local copy of a public set or a hub id)."""

    kind: Literal["hh-rlhf", "halueval", "bitext", "banking77", "tatoeba", "jsonl", "hub"]
    path: str
    split: str = "train"
    max_rows: int | None = None


@dataclass
class DataSection:
    """Project data location, public mix-ins, and what to do with malformed rows."""

    data_dir: str = "data"
    on_bad_row: Literal["skip", "error"] = "skip"
    sft_sources: list[SourceSection] = field(default_factory=list)


@dataclass
class SFTSection:
    """Supervised fine-tuning on support + translation conversations."""

    support_rows: int | None = None
    translation_rows: int | None = None
    safety_rows: int | None = 0
    # Share of the safety rows that are benign-but-risky requests answered helpfully (the rest are refusals).
    # None samples the data as it is, one benign-but-risky pair in five, which teaches "scary word -> refuse".
    benign_risky_share: float | None = None
    eval_rows: int = 64
    epochs: float = 1.0
    max_steps: int = -1
    learning_rate: float = 2e-4
    batch_size: int = 8
    grad_accum: int = 1
    max_length: int = 512
    warmup_ratio: float = 0.05
    gradient_checkpointing: bool = False
    logging_steps: int = 5
    save_steps: int = 200
    lora: LoraSection = field(default_factory=LoraSection)

    def __post_init__(self) -> None:
        share = self.benign_risky_share
        if share is not None and not 0.0 <= share <= 1.0:
            raise ValueError(f"benign_risky_share must be in [0, 1], got {share}")
        if share is not None and not self.safety_rows:
            raise ValueError("benign_risky_share needs a number of safety_rows to split")


@dataclass
class GenerateSection:
    """Defaults for batch generation and the terminal chat."""

    max_new_tokens: int = 128
    batch_size: int = 8
    temperature: float = 0.0
    top_p: float = 1.0


@dataclass
class PipelineSection:
    """How ``parley pipeline`` schedules its stages (never changes what a stage computes)."""

    # Train SFT and the three reward models (which do not depend on each other) at the same time in two child
    # processes, the cores split between them. On 2 cores one thread runs these at 0.62x the speed of two, so the
    # two lanes finish ~1.25x sooner than running the stages one after the other.
    parallel_lanes: bool = False


@dataclass
class Recipe:
    """All sections of a recipe."""

    run: RunSection = field(default_factory=RunSection)
    policy: PolicySection = field(default_factory=PolicySection)
    data: DataSection = field(default_factory=DataSection)
    sft: SFTSection = field(default_factory=SFTSection)
    generate: GenerateSection = field(default_factory=GenerateSection)
    ppo: PPOSection = field(default_factory=PPOSection)
    soup: SoupSection = field(default_factory=SoupSection)
    quantize: QuantizeSection = field(default_factory=QuantizeSection)
    evaluate: EvaluateSection = field(default_factory=EvaluateSection)
    reward: RewardSection = field(default_factory=RewardSection)
    risk: RiskSection = field(default_factory=RiskSection)
    serve: ServeSection = field(default_factory=ServeSection)
    pipeline: PipelineSection = field(default_factory=PipelineSection)


def load_recipe(path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = ()) -> Recipe:
    """Load a YAML recipe (or the defaults) and apply ``section.key=value`` overrides."""
    data = load_recipe_yaml(path) if path is not None else {}
    for assignment in overrides:
        apply_override(data, assignment)
    return from_dict(Recipe, data)
