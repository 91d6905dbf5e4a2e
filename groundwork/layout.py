"""``RunLayout``: the one place that names the files and folders of a run (``runs/<run>/``).

Stages, the pipeline, the server and the benchmarks ask the layout for a path instead of spelling
``root / "risk" / "model"`` themselves, so a renamed artifact changes in one line.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

MARKER = "stage.json"
METRICS = "metrics.json"
RECIPE = "recipe.yaml"
ADAPTER = "adapter"
POLICY_ADAPTER = "policy_adapter"


def seed_run_name(name: str, seed: int) -> str:
    """The run of one seed of a multi-seed recipe (``pipeline.seeds``): ``<run.name>-s<seed>``."""
    return f"{name}-s{seed}"


def seeds_run_name(name: str) -> str:
    """Where a multi-seed recipe's aggregate goes: ``<run.name>-seeds`` (its ``evaluate/report.json``)."""
    return f"{name}-seeds"


@dataclass(frozen=True)
class RunLayout:
    """Paths inside one run folder; nothing is created until a stage asks for its folder with ``stage_dir``."""

    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))

    def stage(self, name: str) -> Path:
        """The folder of one stage (``sft``, ``reward-quality``, ``risk``, ``ppo``, ``soup``, ``quantize`` ...)."""
        return self.root / name

    def stage_dir(self, name: str) -> Path:
        """The stage folder, created (with the run folder) if missing."""
        path = self.stage(name)
        path.mkdir(parents=True, exist_ok=True)
        return path

    def marker(self, name: str) -> Path:
        """``stage.json``: written by the pipeline when a stage finishes, with its fingerprint."""
        return self.stage(name) / MARKER

    def metrics(self, name: str) -> Path:
        return self.stage(name) / METRICS

    def recipe(self, name: str) -> Path:
        """``recipe.yaml``: the resolved recipe a stage ran with (``groundwork.runs.save_recipe`` writes it)."""
        return self.stage(name) / RECIPE

    def tensorboard(self, name: str) -> Path:
        return self.stage(name) / "tensorboard"

    # SFT
    @property
    def sft_adapter(self) -> Path:
        return self.stage("sft") / ADAPTER

    # reward models and the request-risk model
    def reward_stage(self, objective: str) -> str:
        return f"reward-{objective}"

    def reward_model(self, objective: str) -> Path:
        return self.stage(self.reward_stage(objective)) / "model"

    @property
    def risk_model(self) -> Path:
        return self.stage("risk") / "model"

    @property
    def risk_dev(self) -> Path:
        """The request-risk dev split: never trained on, never used for a threshold; the system table's prompts."""
        return self.stage("risk") / "dev.jsonl"

    # PPO and the weight soup
    @property
    def ppo(self) -> Path:
        return self.stage("ppo")

    @property
    def ppo_log(self) -> Path:
        return self.ppo / "log.jsonl"

    @property
    def ppo_recipe(self) -> Path:
        return self.recipe("ppo")

    @property
    def ppo_checkpoints(self) -> Path:
        return self.ppo / "checkpoints"

    def ppo_adapter(self, ppo_dir: Path | None = None) -> Path:
        """The last PPO adapter of this run (or of another run's ``ppo`` folder)."""
        return (ppo_dir or self.ppo) / ADAPTER

    def ppo_best(self, ppo_dir: Path | None = None) -> Path:
        """The judge watch's folder: the best adapter and its ``judge.json``."""
        return (ppo_dir or self.ppo) / "best"

    def ppo_best_adapter(self, ppo_dir: Path | None = None) -> Path:
        """The adapter the judge watch kept as best, when it kept one."""
        return self.ppo_best(ppo_dir) / ADAPTER

    def policy_adapter(self, stage: str) -> Path:
        """SFT + PPO (or the soup's mix) as one adapter on the base model, what downstream stages load."""
        return self.stage(stage) / POLICY_ADAPTER

    # quantized export, evaluation, pipeline bookkeeping
    @property
    def quantize(self) -> Path:
        return self.stage("quantize")

    @property
    def quantize_manifest(self) -> Path:
        return self.quantize / "manifest.json"

    @property
    def int8_model(self) -> Path:
        return self.quantize / "int8"

    @property
    def auto_plan_gguf(self) -> Path:
        """The GGUF of ``quantize.plan`` (serving.quantize.export.PLAN_GGUF)."""
        return self.quantize / "model-auto.gguf"

    @property
    def evaluate(self) -> Path:
        return self.stage("evaluate")

    @property
    def summary(self) -> Path:
        return self.root / "summary.md"

    @property
    def pipeline_recipe(self) -> Path:
        return self.root / "pipeline-recipe.yaml"

    def lane_log(self, number: int | str) -> Path:
        return self.root / f"lane-{number}.log"
