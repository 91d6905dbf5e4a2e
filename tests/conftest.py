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
