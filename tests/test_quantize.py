"""Merge + export: int8 artifact round-trip, GGUF export through transformers, q/k permutation, manifest."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from quantize_fixtures import grid_base, layer_matrices, merge_adapter

from parley.cli import main
from serving.quantize import (
    QuantizeError,
    QuantizeSettings,
    UnsupportedArchitectureError,
    export_gguf,
    export_gguf_mixed,
    load_int8,
    load_merged,
    make_random_lora,
    permute_qk,
    quantize,
    save_int8,
    unpermute_qk,
)
from serving.quantize.verify import compare_logits, load_gguf_transformers, prompt_ids

TINY = "tiny-random-llama"


@pytest.fixture(scope="module")
def tiny_adapter(tmp_path_factory) -> Path:
    return make_random_lora(TINY, tmp_path_factory.mktemp("lora") / "adapter", r=4, scale=0.05)


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory, tiny_adapter) -> Path:
    """One export shared by the tests below: int8 + Q8_0 + F32 GGUF (verification done by the tests)."""
    out = tmp_path_factory.mktemp("export") / "out"
    quantize(TINY, str(tiny_adapter), out, QuantizeSettings(gguf_types=("q8_0", "f32"), verify=False))
    return out


@pytest.fixture(scope="module")
def merged(tiny_adapter):
    return load_merged(TINY, str(tiny_adapter))


def test_permutation_matches_llama_cpp_rotary_layout():
    """HF pairs row i with i + d/2 (rotate_half); GGML pairs rows 2i and 2i+1 of each head."""
    n_head, head_dim, cols = 3, 8, 5
    w = np.arange(n_head * head_dim * cols, dtype=np.float32).reshape(n_head * head_dim, cols)
    p = permute_qk(w, n_head)
    for h in range(n_head):
        for i in range(head_dim // 2):
            np.testing.assert_array_equal(p[h * head_dim + 2 * i], w[h * head_dim + i])
            np.testing.assert_array_equal(p[h * head_dim + 2 * i + 1], w[h * head_dim + i + head_dim // 2])
    np.testing.assert_array_equal(unpermute_qk(p, n_head), w)


def test_merge_changes_the_model(merged, tiny_adapter):
    from groundwork.models import load_causal_lm

    model, tokenizer = merged
    base = load_causal_lm(TINY)
    ids = prompt_ids(tokenizer)[:1]
    assert compare_logits(base, model, ids)["max_abs_logit_diff"] > 1e-3  # a zero LoRA would hide merge bugs


def test_gguf_f32_roundtrip_is_exact(export_dir, merged):
    """F32 export -> transformers (which un-permutes q/k): identical logits prove names, permutation, metadata."""
    model, tokenizer = merged
    result = compare_logits(model, load_gguf_transformers(export_dir / "model-f32.gguf"), prompt_ids(tokenizer))
    assert result["max_abs_logit_diff"] < 1e-5
    assert result["top1_agreement"] == 1.0


def test_gguf_q8_0_roundtrip_is_close(export_dir, merged):
    """Q8_0 rounds each weight to 1/254 of its 32-block's max|w|; through this model that moves logits by ~1%.

    We allow 5% of the logit range (and 1% on average): a wrong permutation or tensor name moves them by ~100%.
    """
    model, tokenizer = merged
    ids = prompt_ids(tokenizer)
    scale = max(model(input_ids=i).logits.abs().max().item() for i in ids)
    result = compare_logits(model, load_gguf_transformers(export_dir / "model-q8_0.gguf"), ids)
    assert result["max_abs_logit_diff"] < 0.05 * scale
    assert result["mean_abs_logit_diff"] < 0.01 * scale


def test_gguf_keeps_base_tokenizer_and_norms_f32(export_dir):
    import gguf

    reader = gguf.GGUFReader(str(export_dir / "model-q8_0.gguf"))
    types = {t.name: t.tensor_type.name for t in reader.tensors}
    assert types["blk.0.attn_norm.weight"] == "F32" and types["output_norm.weight"] == "F32"
    assert types["blk.0.attn_q.weight"] == "Q8_0" and types["token_embd.weight"] == "Q8_0"
    assert "output.weight" not in types  # tied embedding: llama.cpp reuses token_embd
    assert reader.fields["llama.embedding_length"].contents() == 32
    assert reader.fields["llama.attention.head_count_kv"].contents() == 2
    assert "<|im_start|>" in reader.fields["tokenizer.chat_template"].contents()
    assert len(reader.fields["tokenizer.ggml.tokens"].data) == 49152


def test_int8_reload_is_identical_without_calibration(merged, tmp_path):
    from groundwork.models import load_causal_lm

    model, tokenizer = merged
    fresh = load_causal_lm(TINY)  # save_int8 quantizes in place: work on a copy of the merged weights
    fresh.load_state_dict(model.state_dict())
    save_int8(fresh, tokenizer, tmp_path / "int8")
    reloaded = load_int8(tmp_path / "int8")
    ids = prompt_ids(tokenizer)
    assert compare_logits(fresh, reloaded, ids)["max_abs_logit_diff"] == 0.0
    assert compare_logits(model, reloaded, ids)["top1_agreement"] > 0.9
    kwargs = {"max_new_tokens": 12, "do_sample": False, "pad_token_id": tokenizer.pad_token_id}
    with torch.inference_mode():
        assert torch.equal(fresh.generate(ids[0], **kwargs), reloaded.generate(ids[0], **kwargs))
    from safetensors import safe_open

    with safe_open(str(tmp_path / "int8" / "model.int8.safetensors"), "pt") as handle:
        assert handle.get_tensor("model.embed_tokens.weight_int8").dtype == torch.int8
        assert handle.get_tensor("model.layers.0.mlp.down_proj.weight_int8").dtype == torch.int8
        assert "lm_head.weight_int8" not in handle.keys()  # tied: rebuilt from the int8 embedding


def test_manifest_records_inputs_and_files(export_dir, tiny_adapter, merged):
    manifest = json.loads((export_dir / "manifest.json").read_text())
    expected = hashlib.sha256((tiny_adapter / "adapter_model.safetensors").read_bytes()).hexdigest()
    assert manifest["base"] == TINY and manifest["adapter_sha256"] == expected
    formats = {a["format"]: a for a in manifest["artifacts"]}
    assert set(formats) == {"int8", "gguf-q8_0", "gguf-f32"}
    assert formats["gguf-q8_0"]["size_bytes"] == (export_dir / "model-q8_0.gguf").stat().st_size
    int8_size = sum(p.stat().st_size for p in (export_dir / "int8").rglob("*") if p.is_file())
    assert formats["int8"]["size_bytes"] == int8_size
    assert all(a["method"] for a in manifest["artifacts"])
    assert manifest["settings"]["gguf_types"] == ["q8_0", "f32"] and manifest["versions"]["gguf"]
    fp32_bytes = sum(p.numel() * 4 for p in merged[0].parameters())  # tied embedding counted once
    assert (export_dir / "int8" / "model.int8.safetensors").stat().st_size < 0.3 * fp32_bytes


def test_missing_adapter_is_one_line_error(tmp_path, capsys):
    code = main(["quantize", "--model", TINY, "--adapter", str(tmp_path / "nope"), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.count("\n") == 0 and "adapter" in err and "Traceback" not in err


def test_architecture_outside_the_table_refused_for_gguf(tmp_path):
    from transformers import GPT2Config, GPT2LMHeadModel

    config = GPT2Config(vocab_size=64, n_positions=32, n_embd=32, n_layer=1, n_head=2)
    with pytest.raises(UnsupportedArchitectureError, match="does not know model_type 'gpt2'"):
        export_gguf(GPT2LMHeadModel(config), tmp_path / "x.gguf", "q8_0")
    with pytest.raises(QuantizeError, match="unknown GGUF type"):
        QuantizeSettings(gguf_types=("q3_k",)).validate()


def test_smoothing_preserves_the_fp32_function(merged):
    """SmoothQuant scaling is folded into norms / up_proj / v_proj: same logits before quantization."""
    from groundwork.models import load_causal_lm
    from serving.quantize.smooth import calibration_inputs, smooth_llama

    model, tokenizer = merged
    copy = load_causal_lm(TINY)
    copy.load_state_dict(model.state_dict())
    largest = smooth_llama(copy, calibration_inputs(tokenizer), alpha=0.7)
    assert any(v != 1.0 for v in largest.values())
    assert not torch.equal(copy.model.layers[0].input_layernorm.weight, model.model.layers[0].input_layernorm.weight)
    assert compare_logits(model, copy, prompt_ids(tokenizer))["max_abs_logit_diff"] < 1e-4


def test_int8_fused_sibling_projections_give_the_same_logits_with_fewer_gemms(merged, tmp_path):
    from serving.quantize.int8 import DynamicInt8Linear
    from serving.quantize.int8_fusion import SharedInputMember

    model, tokenizer = merged
    fresh = load_causal_lm_copy(model)
    save_int8(fresh, tokenizer, tmp_path / "int8")
    separate, fused = load_int8(tmp_path / "int8", fuse=False), load_int8(tmp_path / "int8")
    layers = len(fused.model.layers)
    assert isinstance(fused.model.layers[0].self_attn.k_proj, SharedInputMember)

    calls = {"n": 0}

    def count(module, args, output):
        calls["n"] += 1

    def gemms(lm) -> int:
        hooks = [m.register_forward_hook(count) for m in lm.modules() if isinstance(m, DynamicInt8Linear)]
        calls["n"] = 0
        with torch.inference_mode():
            logits = lm(ids).logits
        for hook in hooks:
            hook.remove()
        outputs.append(logits)
        return calls["n"]

    ids, outputs = prompt_ids(tokenizer)[0], []
    assert gemms(separate) == 7 * layers  # q, k, v, o, gate, up, down per layer (the head is Int8RowsHead)
    assert gemms(fused) == 4 * layers  # qkv, o, gate_up, down per layer
    assert torch.equal(outputs[0], outputs[1])

    # Members called out of order, or one alone on a new input, still return their own projection.
    attn_fused, attn_separate = fused.model.layers[0].self_attn, separate.model.layers[0].self_attn
    x = torch.randn(1, 3, attn_fused.q_proj.in_features)
    with torch.inference_mode():
        assert torch.equal(attn_fused.v_proj(x), attn_separate.v_proj(x))
        assert torch.equal(attn_fused.k_proj(x.clone()), attn_separate.k_proj(x))
        assert torch.equal(attn_fused.q_proj(x), attn_separate.q_proj(x))


def load_causal_lm_copy(model):
    """save_int8 quantizes in place: a fresh copy of the merged weights to quantize."""
    from groundwork.models import load_causal_lm

    fresh = load_causal_lm(TINY)
    fresh.load_state_dict(model.state_dict())
    return fresh


def test_low_bit_gguf_also_exports_the_unmerged_base_and_the_lora_as_a_llama_cpp_adapter(tiny_adapter, tmp_path):
    import gguf
    from safetensors.numpy import load_file

    out = tmp_path / "out"
    manifest = quantize(TINY, str(tiny_adapter), out, QuantizeSettings(formats=("gguf",), gguf_types=("q4_1",),
                                                                      verify=False))
    entry = next(a for a in manifest["artifacts"] if a["format"] == "gguf-q4_1+lora")
    assert (out / entry["path"]).is_file() and entry["lora_path"] == "adapter-lora.gguf"
    reader = gguf.GGUFReader(out / "adapter-lora.gguf")
    assert reader.fields["general.type"].contents() == "adapter"
    assert reader.fields["adapter.type"].contents() == "lora"
    config = json.loads((tiny_adapter / "adapter_config.json").read_text())
    assert reader.fields["adapter.lora.alpha"].contents() == pytest.approx(config["lora_alpha"])  # scale alpha / r
    tensors = {t.name: np.array(t.data).reshape([int(d) for d in reversed(t.shape)]) for t in reader.tensors}
    peft = load_file(str(tiny_adapter / "adapter_model.safetensors"))
    a_key = next(k for k in peft if k.endswith("layers.0.self_attn.q_proj.lora_A.weight"))
    rank = peft[a_key].shape[0]
    assert len(tensors) == len(peft)
    q_a, q_b = tensors["blk.0.attn_q.weight.lora_a"], tensors["blk.0.attn_q.weight.lora_b"]
    assert q_a.dtype == np.float16  # the default: half the size of F32, as llama.cpp's own converter writes
    assert q_a.shape == (rank, 32) and np.array_equal(q_a, peft[a_key].astype(np.float16))
    heads = load_merged(TINY, None)[0].config.num_attention_heads
    assert np.array_equal(q_b, permute_qk(peft[a_key.replace("lora_A", "lora_B")], heads).astype(np.float16))
    # The base file holds the base weights, not the merged ones.
    base_q = next(t for t in gguf.GGUFReader(out / "base-q4_1.gguf").tensors if t.name == "blk.0.attn_q.weight")
    merged_q = next(t for t in gguf.GGUFReader(out / "model-q4_1.gguf").tensors if t.name == "blk.0.attn_q.weight")
    assert not np.array_equal(np.array(base_q.data), np.array(merged_q.data))


def test_int8_head_uses_unquantized_activations():
    """The head's error is fp16 rounding of the int8 rows, far below what per-token int8 activations cost."""
    from serving.quantize.int8 import DynamicInt8Linear, Int8RowsHead, quantize_rows

    torch.manual_seed(0)
    q, scales = quantize_rows(torch.randn(512, 64))
    x = torch.randn(4, 64)
    x[:, 3] *= 40.0  # one outlier channel, as final hidden states have
    exact = x @ (q.float() * scales[:, None]).T
    head_error = (Int8RowsHead(q, scales, None)(x) - exact).abs().max().item()
    dynamic_error = (DynamicInt8Linear(q, scales, None)(x) - exact).abs().max().item()
    assert head_error < 1e-3 * exact.abs().max().item()
    assert head_error * 20 < dynamic_error


def test_int8_linear_quantizes_a_prompt_per_token():
    """One huge token (like a prompt's first) must not flatten the others to a few int8 levels."""
    from serving.quantize.int8 import DynamicInt8Linear, quantize_rows

    torch.manual_seed(0)
    q, scales = quantize_rows(torch.randn(96, 64))
    linear = DynamicInt8Linear(q, scales, torch.randn(96))
    x = torch.randn(1, 6, 64)
    x[0, 0] *= 300.0
    exact = x @ (q.float() * scales[:, None]).T + linear.bias
    out = linear(x)
    for t in range(1, 6):  # each ordinary token as accurate as when it is decoded alone
        alone = linear(x[:, t:t + 1])[0, 0]
        error = (out[0, t] - exact[0, t]).abs().max().item()
        assert error <= 2 * (alone - exact[0, t]).abs().max().item() + 1e-4
        assert error < 0.05 * exact[0, t].abs().max().item()


# ---------------------------------------------------------------- mixed GGUF: base bytes for unchanged tensors

@pytest.fixture(scope="module")
def top_layer_adapter(tmp_path_factory) -> Path:
    """A LoRA on layer 1 of 2 only, as PPO's top-layer adapters: layer 0 keeps the base weights."""
    return make_random_lora(TINY, tmp_path_factory.mktemp("lora-top") / "adapter", r=4, scale=0.05,
                            layers_to_transform=(1,))


@pytest.fixture(scope="module")
def grid(tmp_path_factory, top_layer_adapter):
    """``(base-q4_1.gguf, base dequantized from it, base + adapter merged, mixed export summary)``."""
    folder = tmp_path_factory.mktemp("grid")
    base_path, base = grid_base(folder)
    merged_model = merge_adapter(base, top_layer_adapter)
    summary = export_gguf_mixed(merged_model, folder / "model-mixed-q8_0.gguf", "q8_0", base_path)
    return base_path, base, merged_model, summary


def gguf_tensors(path) -> dict:
    import gguf

    return {t.name: t for t in gguf.GGUFReader(str(path)).tensors}


def test_mixed_gguf_copies_the_base_bytes_of_unchanged_tensors_and_requantizes_the_rest(grid, tmp_path):
    import gguf

    base_path, _, merged_model, summary = grid
    base, mixed = gguf_tensors(base_path), gguf_tensors(summary["path"])
    q8 = gguf_tensors(export_gguf(merged_model, tmp_path / "q8.gguf", "q8_0", base_path)["path"])
    assert set(mixed) == set(base)
    changed = layer_matrices(1)
    for name, tensor in mixed.items():
        if name in changed:  # the merged weights at Q8_0, byte for byte what the plain Q8_0 export writes
            assert tensor.tensor_type.name == "Q8_0" and base[name].tensor_type.name == "Q4_1"
            assert tensor.data.tobytes() == q8[name].data.tobytes()
        else:  # the base file's own bytes and type: Q4_1 layer 0 (q/k in llama.cpp's layout), Q8_0 token_embd
            assert tensor.tensor_type == base[name].tensor_type, name
            assert tensor.data.tobytes() == base[name].data.tobytes(), name
    assert mixed["blk.0.attn_q.weight"].data.tobytes() != q8["blk.0.attn_q.weight"].data.tobytes()
    assert summary["copied_tensors"] == len(mixed) - 7 and summary["requantized_tensors"] == 7
    assert summary["requantized_blocks"] == [1]
    assert summary["tensor_types"] == {"q8_0": 8, "q4_1": 7, "f32": 5}
    fields = gguf.GGUFReader(summary["path"]).fields
    assert fields["general.file_type"].contents() == gguf.LlamaFileType.MOSTLY_Q8_0  # most weights are Q8_0
    assert len(fields["tokenizer.ggml.tokens"].data) == 49152


def test_mixed_gguf_loads_back_close_to_the_merged_model(grid, merged):
    """Through transformers (dequantize + un-permute q/k): Q8_0's error on layer 1 only, as the Q8_0 round trip.

    The base model is much further off, so the adapter's change survived the export.
    """
    _, base, merged_model, summary = grid
    ids = prompt_ids(merged[1])
    scale = max(merged_model(input_ids=i).logits.abs().max().item() for i in ids)
    result = compare_logits(merged_model, load_gguf_transformers(summary["path"]), ids)
    assert result["max_abs_logit_diff"] < 0.05 * scale
    assert result["mean_abs_logit_diff"] < 0.01 * scale
    assert compare_logits(merged_model, base, ids)["mean_abs_logit_diff"] > 5 * result["mean_abs_logit_diff"]


def test_mixed_gguf_never_copies_a_changed_tensor(grid, tmp_path):
    """Per tensor, by value: a change far below one Q4_1 step (re-rounding would give the same bytes) in one
    matrix or norm of a layer is written from the model; the layer's other tensors are still copied."""
    base_path, base, _, _ = grid
    edited = load_causal_lm_copy(base)
    with torch.no_grad():
        edited.model.layers[0].mlp.down_proj.weight[3, 5] += 1e-3
        edited.model.layers[0].self_attn.k_proj.weight[0, 0] += 1e-3
        edited.model.layers[1].post_attention_layernorm.weight[7] += 1e-3
    summary = export_gguf_mixed(edited, tmp_path / "edited.gguf", "q8_0", base_path)
    original, mixed = gguf_tensors(base_path), gguf_tensors(summary["path"])
    rewritten = {n for n, t in mixed.items() if t.tensor_type != original[n].tensor_type
                 or t.data.tobytes() != original[n].data.tobytes()}
    assert rewritten == {"blk.0.ffn_down.weight", "blk.0.attn_k.weight", "blk.1.ffn_norm.weight"}
    assert mixed["blk.0.ffn_down.weight"].tensor_type.name == "Q8_0"
    assert mixed["blk.1.ffn_norm.weight"].tensor_type.name == "F32"
    assert np.array_equal(mixed["blk.1.ffn_norm.weight"].data, edited.model.layers[1].post_attention_layernorm
                          .weight.detach().numpy())
    assert summary["requantized_tensors"] == 3 and summary["requantized_blocks"] == [0, 1]


def test_quantize_writes_the_mixed_gguf_with_counts_and_verification(top_layer_adapter, tmp_path):
    """``parley quantize --gguf-types mixed-q8_0``: manifest entry, verification, and the engine finds the file.

    The base GGUF is tiny-random-llama at F32, so the unmerged fp32 weights equal it exactly.
    """
    from groundwork.models import load_causal_lm
    from serving.engines.llamacpp_engine import find_gguf

    base_path = export_gguf(load_causal_lm(TINY), tmp_path / "base-f32.gguf", "f32")["path"]
    out = tmp_path / "out"
    manifest = quantize(TINY, str(top_layer_adapter), out, QuantizeSettings(
        formats=("gguf",), gguf_types=("q8_0", "mixed-q8_0"), base_gguf=base_path, verify=True))
    entry = {a["format"]: a for a in manifest["artifacts"]}["gguf-mixed-q8_0"]
    assert entry["path"] == "model-mixed-q8_0.gguf"
    assert entry["size_bytes"] == (out / "model-mixed-q8_0.gguf").stat().st_size
    assert (entry["copied_tensors"], entry["requantized_tensors"], entry["requantized_blocks"]) == (13, 7, [1])
    assert entry["tensor_types"] == {"f32": 13, "q8_0": 7}
    assert "13 tensors the adapter left unchanged" in entry["method"] and "Q8_0" in entry["method"]
    assert entry["verify_vs_merged_fp32"]["top1_agreement"] > 0.9
    assert find_gguf(out, "mixed-q8_0") == out / "model-mixed-q8_0.gguf"  # not model-q8_0.gguf beside it
    with pytest.raises(QuantizeError, match="mixed-<type>"):
        QuantizeSettings(gguf_types=("mixed-q3_k",)).validate()
