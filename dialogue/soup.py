"""Rewarded soup: one policy from PPO runs that were trained against different rewards, by adding their deltas.

PPO against one reward set moves along a trade-off; on cpu-rlhf, refusing held-out harmful requests against
answering benign requests that sound risky: public harmful PPO prompts raised the first (0.72 -> 0.97) and the
second's failure with it (over-refusal 0.06 -> 0.28), and no kind weight or KL coefficient escaped that line.
Runs trained from the same SFT policy with different rewards can instead be mixed by interpolating their
weights (Ramé et al., 2023, "Rewarded soups"), which costs no training: the policy becomes
``SFT + sum_i w_i * delta_i``, written as one LoRA adapter. Checkpoints of the same SFT are required: a delta
learned on another starting point does not add meaningfully.
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dialogue.ppo.export import chosen_ppo_adapter
from groundwork.errors import ConfigError
from groundwork.layout import RunLayout
from groundwork.recipe import takes

if TYPE_CHECKING:
    from groundwork.recipe import Recipe


def soup_enabled(recipe: Recipe) -> bool:
    return bool(recipe.soup.runs)


def _find_run(recipe: Recipe, entry: str) -> Path | None:
    """A soup entry as a run directory with a finished PPO stage: a path as given, else a name under output_dir."""
    for candidate in (Path(entry), Path(recipe.run.output_dir) / entry):
        if RunLayout(candidate).metrics("ppo").is_file():
            return candidate
    return None


def resolve_run(recipe: Recipe, entry: str) -> Path:
    """:func:`_find_run`, or a ConfigError that says where it looked."""
    found = _find_run(recipe, entry)
    if found is None:
        raise ConfigError(f"soup.runs: {entry!r} has no finished PPO stage (looked for {entry}/ppo/metrics.json and "
                          f"{Path(recipe.run.output_dir) / entry}/ppo/metrics.json); run that recipe's pipeline first")
    return found


def _file_digest(path: Path) -> str | None:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None


def _sft_identity(run_dir: Path) -> tuple[str | None, str | None]:
    """(SFT stage fingerprint, sha256 of the SFT adapter weights) of a run; either may be missing."""
    layout = RunLayout(run_dir)
    marker = layout.marker("sft")
    stage_print = json.loads(marker.read_text(encoding="utf-8")).get("fingerprint") if marker.is_file() else None
    return stage_print, _file_digest(layout.sft_adapter / "adapter_model.safetensors")


def check_same_sft(own: Path, other: Path) -> None:
    """Raise unless ``other`` was trained from this run's SFT policy (same weights, or the same SFT stage)."""
    own_print, own_digest = _sft_identity(own)
    other_print, other_digest = _sft_identity(other)
    if own_digest is not None and own_digest == other_digest:
        return
    if own_print is not None and own_print == other_print:
        return
    raise ConfigError(f"soup.runs: {other} was trained from a different SFT policy than {own} (SFT stage "
                      f"{other_print} vs {own_print}); a PPO delta only adds to the policy it was learned on")


def validate_soup(recipe: Recipe) -> list[Path]:
    """The run directories of the soup, after checking the weights and the shared SFT policy."""
    cfg = recipe.soup
    if len(cfg.weights) != len(cfg.runs) + 1:
        raise ConfigError(f"soup.weights: needs {len(cfg.runs) + 1} weights (this run's PPO adapter, then one per "
                          f"entry of soup.runs), got {len(cfg.weights)}")
    if not all(math.isfinite(w) and w >= 0 for w in cfg.weights) or sum(cfg.weights) == 0:
        raise ConfigError(f"soup.weights: must be finite, non-negative and not all 0, got {cfg.weights}")
    runs = [resolve_run(recipe, entry) for entry in cfg.runs]
    for run_dir in runs:
        check_same_sft(recipe.run.root, run_dir)
    return runs


def soup_inputs_digest(recipe: Recipe) -> str:
    """A digest of the other runs' PPO adapters, so a retrained ingredient makes the soup stage run again."""
    digest = hashlib.sha256()
    for entry in recipe.soup.runs:
        run_dir = _find_run(recipe, entry)
        weights = chosen_ppo_adapter(RunLayout(run_dir).ppo) / "adapter_model.safetensors" if run_dir else None
        digest.update(f"{entry}:{_file_digest(weights) if weights else 'missing'}".encode())
    return digest.hexdigest()[:16]


@takes("run", "policy", "soup")
def run_soup(recipe: Recipe) -> dict[str, Any]:
    """Write ``soup/policy_adapter`` (SFT + the weighted PPO adapters) and return the stage's metrics."""
    from dialogue.ppo.export import export_weighted_adapter
    from groundwork.models import load_tokenizer
    from groundwork.runs import save_recipe, write_metrics

    layout = recipe.run.layout
    out = layout.stage_dir("soup")
    if not soup_enabled(recipe):
        shutil.rmtree(layout.policy_adapter("soup"), ignore_errors=True)  # never leave an old soup for serve to find
        metrics = {"enabled": False}
        write_metrics(out, metrics)
        return metrics
    runs = validate_soup(recipe)
    adapters = [chosen_ppo_adapter(layout.ppo), *(chosen_ppo_adapter(RunLayout(r).ppo) for r in runs)]
    missing = [str(a) for a in adapters if not a.is_dir()]
    if missing:
        raise ConfigError(f"soup: PPO adapter(s) missing: {', '.join(missing)}")
    sft = layout.sft_adapter
    export_weighted_adapter(recipe.policy.model, str(sft) if sft.is_dir() else None, adapters,
                            recipe.soup.weights, layout.policy_adapter("soup"), load_tokenizer(recipe.policy.model))
    save_recipe(recipe, out)
    metrics = {"enabled": True, "weights": list(recipe.soup.weights), "adapters": [str(a) for a in adapters],
               "policy_adapter_dir": str(layout.policy_adapter("soup"))}
    write_metrics(out, metrics)
    return metrics
