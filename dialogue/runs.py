"""Stage output folders under ``runs/<run>/<stage>/`` and their ``metrics.json``."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import yaml

from .config_io import to_dict
from .recipe import Recipe


def stage_dir(recipe: Recipe, stage: str) -> Path:
    """Create and return the output folder of one stage of this recipe's run."""
    path = recipe.run.root / stage
    path.mkdir(parents=True, exist_ok=True)
    return path


def recipe_yaml(recipe: Recipe) -> str:
    """The fully resolved recipe as YAML text (stable, so it can be compared between runs)."""
    return yaml.safe_dump(to_dict(recipe), sort_keys=False, allow_unicode=True)


def save_recipe(recipe: Recipe, directory: Path) -> Path:
    """Store the fully resolved recipe next to the artifacts it produced."""
    path = directory / "recipe.yaml"
    path.write_text(recipe_yaml(recipe), encoding="utf-8")
    return path


def write_metrics(directory: Path, metrics: dict[str, Any]) -> Path:
    """Write ``metrics.json`` (with a timestamp) atomically."""
    path = directory / "metrics.json"
    tmp = path.with_suffix(".json.tmp")
    payload = {"finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **metrics}
    tmp.write_text(json.dumps(payload, indent=2, sort_keys=True, default=float) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path


def read_metrics(directory: Path) -> dict[str, Any]:
    path = directory / "metrics.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
