"""Stage outputs of a run: folders (via ``RunLayout``), ``metrics.json``, the resolved recipe, and which of the
run's artifacts the server should load."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import yaml

from groundwork.config_io import to_dict
from groundwork.recipe import Recipe


def tuned_policy_adapter(recipe: Recipe) -> Path:
    """The adapter the downstream stages (quantize, evaluate, serve) use: the soup's when one is set up."""
    return recipe.run.layout.policy_adapter("soup" if recipe.soup.runs else "ppo")


def _llama_cpp_installed() -> bool:
    import importlib.util

    return importlib.util.find_spec("llama_cpp") is not None


def served_run_overrides(recipe: Recipe) -> list[str]:
    """``serve.*`` settings that point the server at this run's results: the tuned policy, reward models, guard."""
    layout = recipe.run.layout
    overrides = []
    if recipe.serve.engine == "torch" and layout.auto_plan_gguf.is_file() and _llama_cpp_installed():
        # the quantization plan the run chose by measured agreement, reward and speed (quantize.plan)
        overrides += ["serve.engine=llamacpp", f"serve.artifact={layout.quantize}", "serve.gguf_type=auto"]
    elif recipe.serve.engine == "torch" and layout.int8_model.is_dir() and layout.quantize_manifest.is_file():
        overrides.append(f"serve.artifact={layout.quantize}")  # int8: ~2x faster decoding than fp32 on CPU
    else:
        for adapter in (tuned_policy_adapter(recipe), layout.sft_adapter):
            if adapter.is_dir():
                overrides.append(f"serve.adapter={adapter}")
                break
    if layout.reward_model("safety").is_dir():
        overrides.append(f"serve.reward_dir={layout.root}")
    if layout.risk_model.is_dir():
        overrides.append(f"serve.risk_model={layout.risk_model}")
    return overrides


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
