"""Shared test set-up: offline hub, a per-session model cache, the smoke recipe."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Tiny random models are cheap to build but the bundled conversions are not: share one cache across runs.
os.environ.setdefault("PARLEY_CACHE", str(ROOT / ".cache" / "parley"))


@pytest.fixture
def smoke_overrides(tmp_path: Path) -> list[str]:
    """Overrides that send a smoke-recipe run's artifacts to a temp folder."""
    return [f"run.output_dir={tmp_path / 'runs'}", "run.name=test"]


@pytest.fixture
def smoke_config() -> str:
    return str(ROOT / "configs" / "smoke.yaml")


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory) -> Path:
    """Smoke-recipe SFT adapter and three reward models, trained once per test session."""
    from dialogue.sft import run_sft
    from groundwork.recipe import load_recipe
    from reward_models.train import run_reward_training

    output_dir = tmp_path_factory.mktemp("smoke-runs")
    recipe = load_recipe(ROOT / "configs" / "smoke.yaml",
                         [f"run.output_dir={output_dir}", f"data.data_dir={ROOT / 'data'}"])
    run_sft(recipe)
    for objective in ("quality", "safety", "faithfulness"):
        run_reward_training(recipe, objective)
    return output_dir
