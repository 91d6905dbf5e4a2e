"""Recipes: every shipped recipe loads, overrides apply, bad keys and types are named."""

from __future__ import annotations

from pathlib import Path

import pytest

from groundwork.errors import ConfigError
from groundwork.recipe import load_recipe
from parley.pipeline import fingerprint, stages

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("name", ["smoke", "cpu-demo", "cpu-rlhf", "cpu-rlhf-strict", "gpu"])
def test_shipped_recipes_load(name: str) -> None:
    recipe = load_recipe(ROOT / "configs" / f"{name}.yaml")
    assert recipe.policy.model
    assert recipe.sft.lora.r > 0


def test_overrides_apply_and_parse_types() -> None:
    recipe = load_recipe(ROOT / "configs" / "smoke.yaml",
                         ["sft.learning_rate=1e-5", "sft.lora.r=3", "sft.lora.target_modules=[q_proj]",
                          "policy.dtype=bfloat16", "sft.support_rows=null"])
    assert recipe.sft.learning_rate == pytest.approx(1e-5)
    assert recipe.sft.lora.r == 3
    assert recipe.sft.lora.target_modules == ["q_proj"]
    assert recipe.policy.dtype == "bfloat16"
    assert recipe.sft.support_rows is None


def test_mixed_precision_modes_pick_bf16_training() -> None:
    from groundwork.precision import native_bf16, native_bf16_cpu, train_in_bf16, trainer_precision

    assert load_recipe(None, ["run.mixed_precision=fp32"]).run.mixed_precision == "fp32"
    assert train_in_bf16("auto") is native_bf16()
    assert train_in_bf16("bf16") and not train_in_bf16("fp32")
    assert train_in_bf16("auto", "cpu") is native_bf16_cpu()
    assert trainer_precision("fp32") == {"bf16": False, "use_cpu": False}
    assert trainer_precision("fp32", "bfloat16")["bf16"]
    assert not trainer_precision("bf16", "float16")["bf16"]  # fp16 weights: no bf16 on top
    with pytest.raises(ValueError, match="unknown mixed precision 'half'"):
        train_in_bf16("half")


def test_forced_bf16_training_arguments_are_accepted_without_a_gpu(tmp_path: Path) -> None:
    """transformers refuses bf16 on a machine without a GPU unless ``use_cpu`` says training runs on the CPU."""
    from trl import RewardConfig, SFTConfig

    from groundwork.precision import trainer_precision

    for config in (SFTConfig, RewardConfig):
        args = config(output_dir=str(tmp_path / config.__name__), report_to="none", **trainer_precision("bf16"))
        assert args.bf16


def test_int_widens_to_float() -> None:
    assert load_recipe(None, ["sft.epochs=2"]).sft.epochs == 2.0


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("sft.learning_rat=1e-4", "unknown config key 'sft.learning_rat'"),
        ("nonsense.key=1", "unknown config key 'nonsense'"),
        ("sft.batch_size=eight", "sft.batch_size: expected an integer"),
        ("sft.batch_size=true", "sft.batch_size: expected an integer"),
        ("sft.learning_rate=fast", "sft.learning_rate: expected a number"),
        ("policy.dtype=int3", "policy.dtype: 'int3' is not one of"),
        ("sft.lora=5", "sft.lora: expected a mapping"),
        ("sft.lora.target_modules=q_proj", "sft.lora.target_modules: expected a list"),
        ("novalue", "must look like section.key=value"),
        ("run.mixed_precision=no", "run.mixed_precision: False is not one of"),
    ],
)
def test_bad_overrides_are_named(override: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace("[", r"\[")):
        load_recipe(ROOT / "configs" / "smoke.yaml", [override])


def test_malformed_yaml_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("sft: [unclosed\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_recipe(bad)
    scalar = tmp_path / "scalar.yaml"
    scalar.write_text("just a string\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_recipe(scalar)
    with pytest.raises(ConfigError, match="config file not found"):
        load_recipe(tmp_path / "missing.yaml")


def test_extends_merges_sections_over_the_parent(tmp_path: Path) -> None:
    child = load_recipe(ROOT / "configs" / "cpu-rlhf.yaml")
    parent = load_recipe(ROOT / "configs" / "cpu-demo.yaml")
    assert (child.ppo.steps, child.reward.epochs, child.run.name) == (16, 3, "rlhf")
    assert (parent.ppo.steps, parent.reward.epochs) == (8, 1)
    # Everything the child does not name is the parent's, including keys inside the sections it does name.
    assert child.ppo.response_length == parent.ppo.response_length
    assert (child.sft.epochs, parent.sft.epochs) == (2, 1)
    assert child.sft.safety_rows == parent.sft.safety_rows and child.sft.lora == parent.sft.lora
    # Nested sections merge key by key too: reward keeps the parent's composite and sources beside its epochs.
    assert child.reward.sources == parent.reward.sources
    assert child.reward.composite.quality_weight == parent.reward.composite.quality_weight
    assert child.reward.composite.lagrange_lr == parent.reward.composite.lagrange_lr
    # The strict run cpu-rlhf mixes into its policy must come from the same SFT stage, and must not soup itself.
    strict = load_recipe(ROOT / "configs" / "cpu-rlhf-strict.yaml")
    assert child.soup.runs == [strict.run.name] and strict.soup.runs == []
    sft = next(stage for stage in stages() if stage.name == "sft")
    assert fingerprint(sft, strict, "data", {"data": "d"}) == fingerprint(sft, child, "data", {"data": "d"})
    assert strict.ppo.prompt_sources and not child.ppo.prompt_sources
    (tmp_path / "a.yaml").write_text("extends: b.yaml\n", encoding="utf-8")
    (tmp_path / "b.yaml").write_text("extends: a.yaml\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="loops back"):
        load_recipe(tmp_path / "a.yaml")
    (tmp_path / "c.yaml").write_text("extends: missing.yaml\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="config file not found"):
        load_recipe(tmp_path / "c.yaml")
    (tmp_path / "d.yaml").write_text("extends: [a.yaml]\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="must be the path"):
        load_recipe(tmp_path / "d.yaml")
