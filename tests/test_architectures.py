"""Every architecture in ``groundwork.architectures`` through every stage, on tiny random models built offline.

Per model type: the table's module names exist; LoRA (Llama-style recipe names, ``top_layers``) and the PPO value
model; int8 (smoothing keeps the fp32 function); an f32 GGUF written with no base GGUF that llama.cpp loads,
tokenizes like transformers and decodes greedily to the same 32 tokens as torch; and the stages at smoke size
(SFT -> one reward model on the same backbone -> PPO -> quantize with verification -> evaluate -> serve with the
torch and llama.cpp engines). Plus: a model type outside the table still quantizes to int8 with the GGUF skip
recorded, and the GPU recipe's stage list runs on the tiny Qwen2 on CPU.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from arch_fixtures import ARCH_TYPES, build_tiny_model

from groundwork.architectures import (
    ARCHITECTURES,
    MODEL_TYPES,
    architecture,
    decoder_layers,
    final_norm,
    lora_target_modules,
)
from groundwork.models import load_causal_lm, load_tokenizer

ROOT = Path(__file__).resolve().parent.parent
GREEDY_TOKENS = 32
PROMPT = "Where is my order? It was due last Tuesday."


@pytest.fixture(scope="module")
def tiny_dirs(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("tiny-archs")
    return {model_type: build_tiny_model(model_type, root / model_type) for model_type in ARCH_TYPES}


def test_the_table_lists_exactly_the_tested_types_and_their_modules_exist(tiny_dirs):
    assert set(MODEL_TYPES) == set(ARCH_TYPES)
    for model_type, folder in tiny_dirs.items():
        model = load_causal_lm(str(folder))
        entry = architecture(model)
        assert entry.model_type == model.config.model_type == model_type
        names = {name.rpartition(".")[2] for name, _ in model.named_modules()}
        assert set(entry.lora_targets) <= names, model_type
        assert set(lora_target_modules(["q_proj", "v_proj", "down_proj"], model.config)) <= names, model_type
        assert len(decoder_layers(model)) == model.config.num_hidden_layers
        assert final_norm(model).weight.shape == (model.config.hidden_size,)
        if entry.smoothing:
            layer = decoder_layers(model)[0]
            layer.get_submodule(entry.smoothing.attention_norm)
            layer.get_submodule(entry.smoothing.mlp_norm)
        assert entry.gguf_supported, model_type  # every listed type exports; the skip path is tested below


@pytest.mark.parametrize("model_type", ARCH_TYPES)
def test_lora_top_layers_and_value_model(tiny_dirs, model_type):
    from peft import get_peft_model

    from dialogue.ppo.models import build_value_model
    from groundwork.sections.lora import LoraSection, peft_lora_config

    model = load_causal_lm(str(tiny_dirs[model_type]))
    top = model.config.num_hidden_layers - 1
    adapted = get_peft_model(copy.deepcopy(model), peft_lora_config(LoraSection(r=2, alpha=4, top_layers=1),
                                                                       model.config))
    lora = [name for name, _ in adapted.named_parameters() if "lora_A" in name]
    assert {int(n.split(".layers.")[1].split(".")[0]) for n in lora} == {top}
    # The recipe's Llama-style names cover every projection of the architecture (fused ones included).
    assert {n.split(".lora_A")[0].rpartition(".")[2] for n in lora} == set(architecture(model).lora_targets)

    value = build_value_model(model, 1, load_tokenizer(str(tiny_dirs[model_type])).pad_token_id)
    assert len(decoder_layers(value)) == 1
    policy_layer = decoder_layers(model)[0].state_dict()
    for key, tensor in decoder_layers(value)[0].state_dict().items():
        assert torch.equal(tensor, policy_layer[key]), key
    ids = torch.tensor([[5, 17, 42, 99, 7]])
    with torch.no_grad():
        assert value(input_ids=ids).logits.shape == (1, 1)


@pytest.mark.parametrize("model_type", ARCH_TYPES)
def test_int8_smoothing_keeps_the_function_and_the_artifact_reloads(tiny_dirs, model_type, tmp_path):
    from serving.quantize import load_int8, save_int8
    from serving.quantize.smooth import calibration_inputs, smooth_decoder, smoothable
    from serving.quantize.verify import compare_logits, prompt_ids

    folder = str(tiny_dirs[model_type])
    model, tokenizer = load_causal_lm(folder), load_tokenizer(folder)
    ids = prompt_ids(tokenizer)
    assert smoothable(model) == (architecture(model).smoothing is not None)
    if smoothable(model):
        smoothed = copy.deepcopy(model)
        smooth_decoder(smoothed, calibration_inputs(tokenizer), alpha=0.7)
        assert compare_logits(model, smoothed, ids)["max_abs_logit_diff"] < 1e-3
    save_int8(copy.deepcopy(model), tokenizer, tmp_path / "int8")
    meta = json.loads((tmp_path / "int8" / "parley_int8.json").read_text())
    assert (meta["smoothing"] is not None) == smoothable(model)
    result = compare_logits(model, load_int8(tmp_path / "int8"), ids)
    assert result["top1_agreement"] > 0.8, result  # a lost embedding scale or norm offset gives ~0


def _torch_greedy(model, ids: list[int], steps: int) -> list[int]:
    seq, out = list(ids), []
    with torch.inference_mode():
        for _ in range(steps):
            token = int(model(torch.tensor([seq])).logits[0, -1].argmax())
            out.append(token)
            seq.append(token)
    return out


def _llama_cpp_greedy(path: Path, ids: list[int], steps: int) -> tuple[list[int], object]:
    from llama_cpp import Llama

    # fp32 KV cache: the default f16 cache moves logits by ~1e-2, enough to flip a near-tie of a random model.
    llm = Llama(str(path), n_ctx=256, n_threads=1, logits_all=True, type_k=0, type_v=0, verbose=False)
    llm.eval(ids)
    out = []
    for _ in range(steps):
        token = int(np.argmax(llm.scores[llm.n_tokens - 1]))
        out.append(token)
        llm.eval([token])
    return out, llm


@pytest.mark.parametrize("model_type", ARCH_TYPES)
def test_gguf_without_a_base_file_decodes_like_torch_in_llama_cpp(tiny_dirs, model_type, tmp_path):
    pytest.importorskip("llama_cpp", reason="llama-cpp-python not installed")
    import gguf

    from groundwork.chat_format import build_messages, render_prompt
    from serving.quantize import export_gguf

    folder = str(tiny_dirs[model_type])
    model, tokenizer = load_causal_lm(folder), load_tokenizer(folder)
    summary = export_gguf(model, tmp_path / "model-f32.gguf", "f32")  # tokenizer read from the model folder
    assert summary["base_gguf"] is None
    fields = gguf.GGUFReader(summary["path"]).fields
    assert fields["general.architecture"].contents() == gguf.MODEL_ARCH_NAMES[
        gguf.MODEL_ARCH[ARCHITECTURES[model_type].gguf_arch]]
    assert fields["tokenizer.ggml.model"].contents() == "gpt2"
    # transformers 5 loads the saved tokenizer with the model type's own class (Qwen2's split regex for qwen2)
    assert fields["tokenizer.ggml.pre"].contents() in ("gpt-2", "qwen2")
    assert "<|im_start|>" in fields["tokenizer.chat_template"].contents()
    assert fields["tokenizer.ggml.eos_token_id"].contents() == tokenizer.eos_token_id

    text = render_prompt(tokenizer, build_messages(PROMPT))
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    expected = _torch_greedy(model, ids, GREEDY_TOKENS)
    got, llm = _llama_cpp_greedy(Path(summary["path"]), ids, GREEDY_TOKENS)
    try:
        assert llm.tokenize(text.encode(), add_bos=False, special=True) == ids  # same vocabulary, merges, specials
        assert got == expected
        assert len(set(expected)) > 1  # a model stuck on one token would make the comparison vacuous
    finally:
        llm.close()


@pytest.fixture(scope="module")
def stage_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("arch-stages")


def _arch_recipe(folder: Path, output_dir: Path, run_name: str):
    from groundwork.recipe import load_recipe

    return load_recipe(ROOT / "configs" / "smoke.yaml", [
        f"run.output_dir={output_dir}", f"run.name={run_name}", f"data.data_dir={ROOT / 'data'}",
        f"policy.model={folder}", f"reward.model={folder}", "reward.train_top_layers=1", "reward.max_steps=2",
        "reward.train_rows=8", "reward.eval_rows_during_training=0", "sft.max_steps=2", "sft.eval_rows=4",
        "ppo.steps=2", "ppo.checkpoint_every=2", "ppo.judge_every=0", "ppo.lora.top_layers=1",
        "evaluate.max_prompts_per_kind=1", "evaluate.include_base=false", "evaluate.system=false",
    ])


@pytest.mark.parametrize("model_type", ARCH_TYPES)
def test_stages_run_on_every_architecture(tiny_dirs, stage_root, model_type):
    from dialogue.evaluation import run_evaluation
    from dialogue.ppo.trainer import run_ppo
    from dialogue.sft import run_sft
    from reward_models.scorer import RewardScorer
    from reward_models.train import run_reward_training
    from serving.engines import load_engine
    from serving.quantize import QuantizeSettings, quantize

    recipe = _arch_recipe(tiny_dirs[model_type], stage_root, model_type)
    assert run_sft(recipe)["steps"] == 2
    reward = run_reward_training(recipe, "quality")  # a reward model on this architecture's backbone
    assert reward["steps"] == 2
    scorer = RewardScorer.from_pretrained(recipe.run.root)
    scores = scorer.score([(PROMPT, "It ships today.", None), (PROMPT, "No.", "Orders ship in 2 days.")])["quality"]
    assert np.isfinite(scores).all() and scores[0] != scores[1]
    ppo = run_ppo(recipe)  # policy + value model of this architecture; the quality reward alone
    log = [json.loads(line) for line in recipe.run.layout.ppo_log.read_text().splitlines()]
    assert [e["step"] for e in log] == [1, 2] and all(np.isfinite(e["objective/kl"]) for e in log)

    out = recipe.run.root / "quantize"
    manifest = quantize(str(tiny_dirs[model_type]), ppo["policy_adapter_dir"], out,
                        QuantizeSettings(formats=("int8", "gguf"), gguf_types=("q8_0",), verify=True))
    formats = {a["format"]: a for a in manifest["artifacts"]}
    assert set(formats) == {"int8", "gguf-q8_0"} and "gguf" not in manifest
    # transformers or llama.cpp (where the table says transformers cannot) read the Q8_0 file back close to the
    # merged model
    check = formats["gguf-q8_0"]["verify_vs_merged_fp32"]
    has_llama_cpp = importlib.util.find_spec("llama_cpp") is not None
    if ARCHITECTURES[model_type].transformers_reads_gguf or has_llama_cpp:
        assert check["engine"] == ("transformers" if ARCHITECTURES[model_type].transformers_reads_gguf
                                   else "llama.cpp")
        assert check["top1_agreement"] > 0.8, check

    report = run_evaluation(recipe, out_dir=recipe.run.root / "evaluate")
    assert {"sft", "ppo"} <= set(report)

    engines = [load_engine("torch", artifact=str(out / "int8"))]
    if has_llama_cpp:
        engines.append(load_engine("llamacpp", artifact=str(out), gguf_type="q8_0", n_ctx=512, threads=1))
    try:
        for engine in engines:
            engine.generate(PROMPT, max_tokens=6, ignore_eos=True)
            # (the llama.cpp engine counts stream chunks, which random byte tokens split or merge)
            assert engine.last_stats.finish_reason == "length" and engine.last_stats.completion_tokens, engine.kind
    finally:
        for engine in engines:
            engine.close()


def test_a_type_outside_the_table_quantizes_to_int8_and_records_the_gguf_skip(tmp_path, capsys):
    """The quantize stage says why in one line, writes the skip into the manifest and makes the other formats."""
    from arch_fixtures import build_tokenizer
    from transformers import GPT2Config, GPT2LMHeadModel

    from serving.quantize import QuantizeSettings, quantize

    tokenizer = build_tokenizer()
    config = GPT2Config(vocab_size=len(tokenizer), n_positions=256, n_embd=32, n_layer=1, n_head=2,
                        pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)
    torch.manual_seed(0)
    folder = tmp_path / "gpt2"
    GPT2LMHeadModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    manifest = quantize(str(folder), None, tmp_path / "out", QuantizeSettings(formats=("int8", "gguf"), verify=False))
    lines = [line for line in capsys.readouterr().err.splitlines() if "GGUF skipped" in line]
    assert len(lines) == 1 and "gpt2" in lines[0]
    assert "does not know model_type 'gpt2'" in manifest["gguf"]["skipped"]
    assert [a["format"] for a in manifest["artifacts"]] == ["int8"]
    assert (tmp_path / "out" / "int8" / "model.int8.safetensors").is_file()
    assert not list((tmp_path / "out").glob("*.gguf"))


def test_mixed_gguf_without_a_base_of_this_model_is_skipped_and_the_rest_written(tiny_dirs, tmp_path):
    from serving.quantize import QuantizeSettings, quantize

    manifest = quantize(str(tiny_dirs["qwen2"]), None, tmp_path / "out",
                        QuantizeSettings(formats=("gguf",), gguf_types=("q8_0", "mixed-q8_0"), verify=False))
    assert [a["format"] for a in manifest["artifacts"]] == ["gguf-q8_0"]
    assert "base GGUF" in manifest["gguf"]["skipped_types"]["mixed-q8_0"]


def test_gpu_recipe_stage_list_runs_on_the_tiny_qwen2_on_cpu(tiny_dirs, tmp_path):
    """configs/gpu.yaml's stages (its Qwen2.5 policy replaced by the tiny Qwen2) with smoke-size overrides."""
    qwen2 = tiny_dirs["qwen2"]
    sizes = {
        "policy.model": qwen2, "policy.dtype": "float32", "run.output_dir": tmp_path, "data.data_dir": ROOT / "data",
        "sft.epochs": 1, "sft.max_steps": 2, "sft.batch_size": 4, "sft.max_length": 256, "sft.support_rows": 8,
        "sft.translation_rows": 8, "sft.safety_rows": 4, "sft.eval_rows": 4, "sft.gradient_checkpointing": "false",
        "sft.lora.r": 4, "sft.lora.alpha": 8,
        "generate.max_new_tokens": 8, "generate.batch_size": 4,
        "reward.model": "tiny-random-bert", "reward.sources": "[]", "reward.max_steps": 2, "reward.batch_size": 4,
        "reward.train_rows": 8, "reward.eval_rows_during_training": 0, "reward.max_length": 128,
        "reward.eval_batch_size": 16, "reward.train_top_layers": 1,
        "risk.model": "tiny-random-bert", "risk.max_length": 64, "risk.epochs": 0.05, "risk.batch_size": 16,
        "risk.project_rows": 100, "risk.eval_rows_per_source": 20, "risk.char_ngram_features": 4096,
        "ppo.steps": 2, "ppo.batch_size": 4, "ppo.num_mini_batches": 2, "ppo.num_ppo_epochs": 1,
        "ppo.response_length": 8, "ppo.value_layers": 1, "ppo.max_prompts": 32, "ppo.checkpoint_every": 2,
        "ppo.judge_every": 0, "ppo.lora.r": 4, "ppo.lora.alpha": 8,
        "quantize.verify": "false",  # the default GGUF types: q8_0, q4_0, q4_1 (+ LoRA GGUF), mixed-q8_0 (skipped)
        "evaluate.max_prompts_per_kind": 1, "evaluate.max_new_tokens": 8, "evaluate.batch_size": 4,
        "evaluate.include_base": "false", "evaluate.system": "false",
    }
    command = [sys.executable, "-m", "parley.cli", "pipeline", "-c", str(ROOT / "configs" / "gpu.yaml")]
    for key, value in sizes.items():
        command += ["--set", f"{key}={value}"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    run = tmp_path / "gpu"
    for stage in ("sft", "reward-quality", "reward-safety", "reward-faithfulness", "ppo", "quantize", "evaluate"):
        assert (run / stage / "stage.json").is_file(), stage
    manifest = json.loads((run / "quantize" / "manifest.json").read_text())
    assert {a["format"] for a in manifest["artifacts"]} == {"int8", "gguf-q8_0", "gguf-q4_0", "gguf-q4_1",
                                                           "gguf-q4_0+lora", "gguf-q4_1+lora"}
    # The bundled SmolLM2 GGUF is not this model's base: mixed-q8_0 is skipped with the reason, the rest written.
    metrics = json.loads((run / "quantize" / "stage.json").read_text())["metrics"]
    assert "mixed-q8_0" in manifest["gguf"]["skipped_types"]
    assert metrics["gguf"] == manifest["gguf"]
