"""Per-layer-group quantization plans: the file a plan describes, the measured search, ``quantize --plan``."""

from __future__ import annotations

import json

import numpy as np
import pytest
from quantize_fixtures import grid_base, merge_adapter

from serving.quantize import QuantizeError, QuantizeSettings, make_random_lora, quantize
from serving.quantize.plan import PlanWriter, QuantPlan, group_of
from serving.quantize.plan_search import PlanSearchSettings, make_bands, search_plan, token_agreement

TINY = "tiny-random-llama"
PROMPTS = [{"messages": [{"role": "user", "content": q}], "context": c} for q, c in [
    ("Can I cancel my order?", "Orders can be cancelled free of charge within 1 hour."),
    ("How long do I have to return an item?", "Items can be returned within 30 days."),
    ("Do you ship to Canada?", "We ship to the US, Canada and the EU."),
]]


@pytest.fixture(scope="module")
def grid(tmp_path_factory):
    """``(base-q4_1.gguf, tokenizer, merged model)``: a LoRA on layer 1 of 2 over a base on the Q4_1 grid."""
    from groundwork.models import load_tokenizer

    folder = tmp_path_factory.mktemp("plan-grid")
    base_path, base = grid_base(folder)
    adapter = make_random_lora(TINY, folder / "adapter", r=4, scale=0.05, layers_to_transform=(1,))
    return base_path, load_tokenizer(TINY), merge_adapter(base, adapter), adapter


def gguf_tensors(path) -> dict:
    import gguf

    return {t.name: t for t in gguf.GGUFReader(str(path)).tensors}


def test_groups_are_the_embedding_and_each_blocks_attention_and_ffn():
    assert group_of("token_embd.weight") == "token_embd"
    assert group_of("blk.12.attn_q.weight") == "blk.12.attn"
    assert group_of("blk.3.ffn_down.weight") == "blk.3.ffn"
    assert group_of("blk.3.attn_norm.weight") == "blk.3.attn"
    assert group_of("output_norm.weight") is None


def test_a_plan_round_trips_and_refuses_unknown_types():
    plan = QuantPlan({"blk.1.ffn": "q4_0", "token_embd": "base"}, default="q8_0")
    assert QuantPlan.from_dict(json.loads(json.dumps(plan.to_dict()))) == plan
    assert plan.type_of("blk.0.attn") == "q8_0" and plan.summary() == {"base": 1, "q4_0": 1}
    with pytest.raises(QuantizeError, match="unknown plan type"):
        QuantPlan({"blk.0.attn": "q3_k"})
    with pytest.raises(QuantizeError, match="plan is"):
        QuantPlan.from_dict({"types": ["q4_0"]})


def test_the_written_file_has_each_groups_type_and_copies_base_bytes_exactly(grid, tmp_path):
    base_path, tokenizer, merged, _ = grid
    writer = PlanWriter(merged, base_path, tokenizer)
    assert writer.unchanged_groups() == {"token_embd", "blk.0.attn", "blk.0.ffn"}
    plan = QuantPlan({"token_embd": "base", "blk.0.attn": "base", "blk.0.ffn": "q4_0", "blk.1.attn": "q8_0",
                      "blk.1.ffn": "f16"})
    summary = writer.write(plan, tmp_path / "plan.gguf")
    written, base = gguf_tensors(summary["path"]), gguf_tensors(base_path)
    assert set(written) == set(base)
    for name, tensor in written.items():
        if tensor.data.ndim == 1 or "norm" in name:
            assert tensor.tensor_type.name == "F32", name
            continue
        expected = {"base": base[name].tensor_type.name, "q4_0": "Q4_0", "q8_0": "Q8_0",
                    "f16": "F16"}[plan.type_of(group_of(name))]
        assert tensor.tensor_type.name == expected, name
        if plan.type_of(group_of(name)) == "base":
            assert np.array_equal(np.asarray(tensor.data), np.asarray(base[name].data)), name
    with pytest.raises(QuantizeError, match="adapter changed"):
        writer.write(QuantPlan({"blk.1.ffn": "base"}), tmp_path / "bad.gguf")


def test_bands_put_tuned_layers_on_the_float_ladder_and_unchanged_ones_on_base(grid):
    base_path, tokenizer, merged, _ = grid
    bands = {b.name: b for b in make_bands(PlanWriter(merged, base_path, tokenizer))}
    assert bands["tuned_ffn"].groups == ["blk.1.ffn"] and bands["tuned_ffn"].ladder[0] == "f16"
    assert bands["unchanged_attn"].groups == ["blk.0.attn"] and bands["unchanged_attn"].ladder[0] == "base"
    assert bands["embedding"].ladder[0] == "base"


def test_token_agreement_counts_the_shared_opening():
    from groundwork.models import load_tokenizer

    tokenizer = load_tokenizer(TINY)
    assert token_agreement(tokenizer, ["refunds take five days"], ["refunds take five days"]) == 1.0
    assert token_agreement(tokenizer, ["refunds take five days"], ["hello there"]) == 0.0
    half = token_agreement(tokenizer, ["refunds take five days"], ["refunds take ten weeks"])
    assert 0.0 < half < 1.0


def test_plan_auto_without_llama_cpp_is_skipped_with_the_reason(grid, tmp_path, monkeypatch):
    _, _, _, adapter = grid
    # as on a machine without parley[llamacpp]
    monkeypatch.setattr("serving.engines.llamacpp_engine.llama_cpp_available", lambda: False)
    manifest = quantize(TINY, str(adapter), tmp_path / "out", QuantizeSettings(
        formats=("gguf",), gguf_types=("q8_0",), verify=False, gguf_lora=False, plan="auto"), plan_prompts=PROMPTS)
    assert "parley[llamacpp]" in manifest["plan"]["skipped"]
    assert [a["format"] for a in manifest["artifacts"]] == ["gguf-q8_0"]
    assert not (tmp_path / "out" / "model-auto.gguf").exists()


llama_cpp = pytest.importorskip("llama_cpp", reason="llama-cpp-python not installed (pip install 'parley[llamacpp]')")


def small_search(**overrides) -> PlanSearchSettings:
    return PlanSearchSettings(**{"prompts": 3, "max_tokens": 8, "speed_prompts": 1} | overrides)


def test_an_unreachable_bar_keeps_the_most_faithful_plan_and_says_so(grid, tmp_path):
    base_path, tokenizer, merged, _ = grid
    writer = PlanWriter(merged, base_path, tokenizer)
    result = search_plan(writer, tokenizer, PROMPTS, small_search(min_agreement=1.01), workdir=tmp_path)
    bands = make_bands(writer)
    # the faithful start, then one measured downgrade per band; none passes the bar
    assert len(result.trials) == 1 + len(bands)
    assert not result.meets_constraints and result.chosen is result.trials[0]
    assert result.plan.types["blk.1.ffn"] == "f16" and result.plan.types["blk.0.ffn"] == "base"
    assert result.trials[0].agreement > 0.9  # F16 where tuned, exact bytes elsewhere: the reference's answers


def test_a_reachable_bar_takes_downgrades_and_every_step_is_feasible(grid, tmp_path):
    base_path, tokenizer, merged, _ = grid
    scores = []

    def scorer(rows, answers):  # answer length as a stand-in reward: the delta is computed and reported
        scores.append(len(answers))
        return [float(len(a)) / 100 for a in answers]

    result = search_plan(PlanWriter(merged, base_path, tokenizer), tokenizer, PROMPTS,
                         small_search(min_agreement=0.0, min_reward_delta=-1e9, max_slowdown=1.0, max_rounds=1),
                         scorer=scorer, workdir=tmp_path)
    assert result.meets_constraints and len(result.trials) == 1 + len(make_bands(
        PlanWriter(merged, base_path, tokenizer)))  # one round: the start and each band's first downgrade
    assert result.chosen.bands != result.trials[0].bands  # at least one band moved down its ladder
    assert any(t != "base" and t != "f16" for t in result.plan.types.values())
    assert all(t.reward_delta is not None and t.reward_delta_se is not None for t in result.trials)
    assert scores and result.to_dict()["chosen"]["feasible"]
    assert result.base_tokens_per_s is None and result.to_dict()["ratio_vs_base_gguf"] is None
    assert not list(tmp_path.glob("*.gguf"))  # candidates are removed once measured


def test_quantize_plan_auto_writes_model_auto_gguf_that_the_engine_serves(grid, tmp_path):
    from serving.engines import load_engine

    base_path, tokenizer, merged, adapter = grid
    # quantize merges the adapter into tiny-random-llama's own fp32 weights, which are not on base_path's grid:
    # every group is "changed" there, so the plan uses the float ladder throughout.
    out = tmp_path / "out"
    manifest = quantize(TINY, str(adapter), out, QuantizeSettings(
        formats=("gguf",), gguf_types=("q8_0",), verify=False, gguf_lora=False, plan="auto",
        plan_search=small_search(min_agreement=0.0, min_reward_delta=-1e9, max_rounds=1)), plan_prompts=PROMPTS)
    entry = {a["format"]: a for a in manifest["artifacts"]}["gguf-auto"]
    assert entry["path"] == "model-auto.gguf" and (out / "model-auto.gguf").stat().st_size == entry["size_bytes"]
    assert entry["search"]["meets_constraints"] and entry["search"]["trials"]
    assert QuantPlan.from_dict(entry["plan"]).types == entry["search"]["plan"]["types"]
    assert not list(out.glob(".plan-search-*"))
    engine = load_engine("llamacpp", artifact=str(out), gguf_type="auto", threads=1)
    try:
        assert engine.description.endswith("model-auto.gguf")
        assert engine.generate(PROMPTS[0]["messages"], PROMPTS[0]["context"], max_tokens=4)
    finally:
        engine.close()

    # the plan JSON (a manifest's entry) given back as quantize.plan writes the same types
    plan_file = tmp_path / "plan.json"
    plan_file.write_text(json.dumps(entry), encoding="utf-8")
    again = quantize(TINY, str(adapter), tmp_path / "again", QuantizeSettings(
        formats=("gguf",), gguf_types=("q8_0",), verify=False, gguf_lora=False, plan=str(plan_file)))
    second = {a["format"]: a for a in again["artifacts"]}["gguf-auto"]
    assert second["plan"] == entry["plan"] and "search" not in second
    assert second["tensor_types"] == entry["tensor_types"]


def test_plan_settings_refuse_a_missing_file_and_a_plan_without_gguf(tmp_path):
    with pytest.raises(QuantizeError, match="does not exist"):
        QuantizeSettings(plan=str(tmp_path / "nope.json")).validate()
    with pytest.raises(QuantizeError, match="add gguf"):
        QuantizeSettings(formats=("int8",), plan="auto").validate()
    with pytest.raises(QuantizeError, match="greedy or random"):
        QuantizeSettings(plan="auto", plan_search=PlanSearchSettings(method="annealing")).validate()


def test_the_served_default_is_the_plan_file_when_one_was_written(tmp_path):
    from groundwork.recipe import load_recipe
    from groundwork.runs import served_run_overrides

    recipe = load_recipe(None, [f"run.output_dir={tmp_path}"])
    layout = recipe.run.layout
    layout.int8_model.mkdir(parents=True)
    layout.quantize_manifest.write_text("{}", encoding="utf-8")
    assert f"serve.artifact={layout.quantize}" in served_run_overrides(recipe)
    assert "serve.engine=llamacpp" not in served_run_overrides(recipe)
    layout.auto_plan_gguf.write_bytes(b"GGUF")
    overrides = served_run_overrides(recipe)
    assert {"serve.engine=llamacpp", "serve.gguf_type=auto", f"serve.artifact={layout.quantize}"} <= set(overrides)
