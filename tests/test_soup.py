"""Rewarded soup: PPO adapters of runs on one SFT policy mixed by weight into one adapter."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from peft import PeftModel, get_peft_model

from dialogue.evaluation import _evaluates_soup, render_markdown
from dialogue.ppo.export import export_policy_adapter, export_weighted_adapter
from dialogue.soup import run_soup
from groundwork.errors import ConfigError
from groundwork.models import TINY_POLICY, load_causal_lm
from groundwork.recipe import load_recipe
from groundwork.runs import tuned_policy_adapter
from groundwork.sections.evaluate import EvalModelSection
from groundwork.sections.lora import LoraSection, peft_lora_config
from parley.pipeline import fingerprint, stages

IDS = torch.tensor([[1, 5, 9, 13, 2]])


def _random_adapter(path: Path, seed: int) -> Path:
    torch.manual_seed(seed)
    base = load_causal_lm(TINY_POLICY)
    model = get_peft_model(base, peft_lora_config(LoraSection(r=4, alpha=8), base.config))
    for name, param in model.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(param, std=0.5)
    model.save_pretrained(path)
    return path


def _merged_weights(adapters: list[Path]) -> dict[str, torch.Tensor]:
    model = load_causal_lm(TINY_POLICY)
    for adapter in adapters:
        model = PeftModel.from_pretrained(model, str(adapter)).merge_and_unload()
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_weighted_export_is_sft_plus_the_weighted_ppo_deltas(tmp_path):
    sft, first, second = (_random_adapter(tmp_path / n, s) for n, s in (("sft", 1), ("a", 2), ("b", 3)))
    soup = export_weighted_adapter(TINY_POLICY, str(sft), [first, second], [0.3, 0.7], tmp_path / "soup")
    base = _merged_weights([])
    with_sft = _merged_weights([sft])
    delta_a = {k: v - with_sft[k] for k, v in _merged_weights([sft, first]).items()}
    delta_b = {k: v - with_sft[k] for k, v in _merged_weights([sft, second]).items()}
    got = _merged_weights([soup])
    changed = [k for k in base if not torch.equal(got[k], base[k])]
    assert changed, "the soup adapter changed no weight"
    for key in changed:
        torch.testing.assert_close(got[key], with_sft[key] + 0.3 * delta_a[key] + 0.7 * delta_b[key],
                                   atol=1e-5, rtol=1e-4)


def test_weights_one_and_zero_give_the_single_run_policy(tmp_path):
    sft, first, second = (_random_adapter(tmp_path / n, s) for n, s in (("sft", 1), ("a", 2), ("b", 3)))
    soup = export_weighted_adapter(TINY_POLICY, str(sft), [first, second], [1.0, 0.0], tmp_path / "soup")
    single = export_policy_adapter(TINY_POLICY, str(sft), first, tmp_path / "single")
    soup_model = PeftModel.from_pretrained(load_causal_lm(TINY_POLICY), str(soup)).merge_and_unload()
    single_model = PeftModel.from_pretrained(load_causal_lm(TINY_POLICY), str(single)).merge_and_unload()
    with torch.no_grad():
        torch.testing.assert_close(soup_model(IDS).logits, single_model(IDS).logits, atol=1e-5, rtol=1e-5)


def _fake_run(root: Path, name: str, sft: Path, ppo_seed: int) -> Path:
    """A run directory as the pipeline leaves it: the SFT adapter and a finished PPO stage."""
    run = root / name
    shutil.copytree(sft, run / "sft" / "adapter")
    _random_adapter(run / "ppo" / "adapter", ppo_seed)
    (run / "ppo" / "metrics.json").write_text("{}", encoding="utf-8")
    return run


def _recipe(root: Path, runs: list[str], weights: list[float]):
    return load_recipe(None, [f"run.output_dir={root}", "run.name=main", f"policy.model={TINY_POLICY}",
                              f"soup.runs={runs}", f"soup.weights={weights}"])


def test_soup_stage_writes_the_policy_downstream_stages_use(tmp_path):
    sft = _random_adapter(tmp_path / "sft", 1)
    _fake_run(tmp_path, "main", sft, 2)
    other = _fake_run(tmp_path, "other", sft, 3)
    recipe = _recipe(tmp_path, [str(other)], [0.6, 0.4])
    metrics = run_soup(recipe)
    assert metrics["enabled"] and metrics["weights"] == [0.6, 0.4]
    assert tuned_policy_adapter(recipe) == tmp_path / "main" / "soup" / "policy_adapter"
    expected = export_weighted_adapter(TINY_POLICY, str(sft), [tmp_path / "main" / "ppo" / "adapter",
                                                                 other / "ppo" / "adapter"],
                                       [0.6, 0.4], tmp_path / "expected")
    got = PeftModel.from_pretrained(load_causal_lm(TINY_POLICY), str(tuned_policy_adapter(recipe)))
    want = PeftModel.from_pretrained(load_causal_lm(TINY_POLICY), str(expected))
    with torch.no_grad():
        torch.testing.assert_close(got(IDS).logits, want(IDS).logits)

    # Without soup.runs the stage removes an old soup and downstream stages use the PPO policy again.
    plain = _recipe(tmp_path, [], [])
    assert run_soup(plain) == {"enabled": False}
    assert not (tmp_path / "main" / "soup" / "policy_adapter").exists()
    assert tuned_policy_adapter(plain) == tmp_path / "main" / "ppo" / "policy_adapter"


def test_soup_refuses_bad_weights_missing_runs_and_other_sft_policies(tmp_path):
    sft = _random_adapter(tmp_path / "sft", 1)
    _fake_run(tmp_path, "main", sft, 2)
    _fake_run(tmp_path, "same", sft, 3)
    _fake_run(tmp_path, "foreign", _random_adapter(tmp_path / "other-sft", 4), 5)
    with pytest.raises(ConfigError, match="needs 2 weights"):
        run_soup(_recipe(tmp_path, ["same"], [1.0]))
    with pytest.raises(ConfigError, match="non-negative"):
        run_soup(_recipe(tmp_path, ["same"], [1.0, -1.0]))
    with pytest.raises(ConfigError, match="no finished PPO stage"):
        run_soup(_recipe(tmp_path, ["absent"], [0.5, 0.5]))
    with pytest.raises(ConfigError, match="different SFT policy"):
        run_soup(_recipe(tmp_path, ["foreign"], [0.5, 0.5]))
    assert not (tmp_path / "main" / "soup" / "policy_adapter").exists()


def test_the_report_says_when_ppo_is_a_soup():
    report = {"sft": {"composite_mean": 0.1}, "ppo": {"composite_mean": 0.5},
              "_settings": {"prompts": 2, "soup": {"runs": ["strict"], "weights": [0.6, 1.0]}}}
    assert "SFT + 0.6 x this run's PPO delta + 1.0 x strict's" in render_markdown(report, [])
    del report["_settings"]["soup"]
    assert "soup" not in render_markdown(report, [])


def test_the_report_names_the_soup_only_when_the_soup_was_evaluated(tmp_path):
    recipe = _recipe(tmp_path, ["strict"], [0.6, 1.0])
    sft = str(tmp_path / "main" / "sft" / "adapter")
    plain_ppo = [EvalModelSection("sft", adapters=[sft]),
                 EvalModelSection("ppo", adapters=[sft, str(tmp_path / "main" / "ppo" / "best" / "adapter")])]
    assert not _evaluates_soup(recipe, plain_ppo)
    with_soup = [*plain_ppo, EvalModelSection("soup", adapters=[str(tuned_policy_adapter(recipe))])]
    assert _evaluates_soup(recipe, with_soup)
    assert not _evaluates_soup(_recipe(tmp_path, [], []), with_soup)


def test_a_retrained_ingredient_makes_the_soup_stage_stale(tmp_path):
    sft = _random_adapter(tmp_path / "sft", 1)
    _fake_run(tmp_path, "main", sft, 2)
    other = _fake_run(tmp_path, "other", sft, 3)
    recipe = _recipe(tmp_path, ["other"], [0.5, 0.5])
    soup = next(stage for stage in stages() if stage.name == "soup")
    before = fingerprint(soup, recipe, "data", {"ppo": "p"})
    assert fingerprint(soup, recipe, "data", {"ppo": "p"}) == before
    shutil.rmtree(other / "ppo" / "adapter")
    _random_adapter(other / "ppo" / "adapter", 4)  # the other run's PPO trained again
    assert fingerprint(soup, recipe, "data", {"ppo": "p"}) != before
