"""Stages take their own recipe sections (``@takes``); the pipeline fingerprints exactly those."""

from __future__ import annotations

from pathlib import Path

import pytest

from groundwork.config_io import to_dict
from groundwork.errors import ConfigError
from groundwork.recipe import load_recipe, narrow, takes
from parley.pipeline import fingerprint, stages

ROOT = Path(__file__).resolve().parent.parent
SMOKE = ROOT / "configs" / "smoke.yaml"


def _prints(overrides: list[str]) -> dict[str, str]:
    recipe = load_recipe(SMOKE, overrides)
    prints: dict[str, str] = {}
    for stage in stages():
        prints[stage.name] = fingerprint(stage, recipe, "data", prints)
    return prints


def test_a_stage_sees_only_the_sections_it_takes():
    @takes("run", "sft")
    def stage(recipe):
        return recipe.sft.epochs, recipe.serve.port

    with pytest.raises(ConfigError, match=r"reads recipe.serve.port but does not take the 'serve' section"):
        stage(load_recipe(SMOKE))
    with pytest.raises(ValueError, match="unknown recipe section"):
        takes("sft", "nonsense")


def test_saved_recipe_of_a_stage_holds_its_sections_only():
    view = narrow(load_recipe(SMOKE), ("run", "sft"), "sft")
    assert list(to_dict(view)) == ["run", "sft"]


def test_each_section_change_reruns_the_stages_that_take_it_and_their_downstream():
    base = _prints([])
    # The system table drives the served path, so a serve setting must re-run evaluate (the old hand-kept list
    # missed it) and nothing upstream.
    served = _prints(["serve.max_new_tokens=7"])
    assert [name for name in base if base[name] != served[name]] == ["evaluate"]
    # A reward setting reaches the reward models, PPO and everything after PPO, not SFT or the risk model.
    reward = _prints(["reward.epochs=3"])
    changed = {name for name in base if base[name] != reward[name]}
    assert changed == {"reward-quality", "reward-safety", "reward-faithfulness", "ppo", "soup", "quantize",
                       "evaluate"}
    # Where the run's files go changes nothing a stage computes.
    assert _prints(["run.name=elsewhere"]) == base
    assert _prints(["run.seed=12345"])["sft"] != base["sft"]
