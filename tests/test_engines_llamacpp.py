"""llama.cpp engine on an exported tiny GGUF; skipped unless ``parley[llamacpp]`` is installed."""

from __future__ import annotations

import threading

import pytest

pytest.importorskip("llama_cpp", reason="llama-cpp-python not installed (pip install 'parley[llamacpp]')")

from serving.engines import load_engine  # noqa: E402
from serving.quantize import QuantizeSettings, make_random_lora, quantize  # noqa: E402

TINY = "tiny-random-llama"
ASK = "Can I return shoes I already wore?"
KB = "Returns are accepted within 30 days for unworn items."
SAMPLED = {"temperature": 1.0, "seed": 5}


@pytest.fixture(scope="module")
def engines(tmp_path_factory):
    adapter = make_random_lora(TINY, tmp_path_factory.mktemp("lora") / "a", r=4, scale=0.05)
    out = tmp_path_factory.mktemp("export") / "out"
    quantize(TINY, str(adapter), out, QuantizeSettings(formats=("gguf",), gguf_types=("q8_0",), verify=False))
    torch_engine = load_engine("torch", TINY, adapter=str(adapter))
    cpp = load_engine("llamacpp", artifact=str(out), gguf_type="q8_0", n_ctx=1024, threads=1)
    yield torch_engine, cpp
    cpp.close()
    torch_engine.close()


def test_same_prompt_text_and_tokens_as_torch(engines):
    torch_engine, cpp = engines
    for conversation, context in [(ASK, KB), ([{"role": "user", "content": "Hola"},
                                               {"role": "assistant", "content": "¡Hola! ¿En qué puedo ayudar?"},
                                               {"role": "user", "content": "Translate to German: thank you"}], None)]:
        text = cpp.render(conversation, context)
        assert text == torch_engine.render(conversation, context)
        hf_ids = torch_engine.tokenizer(text, add_special_tokens=False)["input_ids"]
        assert cpp.tokenize(text) == hf_ids  # llama.cpp sees exactly the tokens transformers sees


def test_generate_equals_stream_and_max_tokens(engines):
    _, cpp = engines
    chunks = list(cpp.stream(ASK, KB, max_tokens=16, **SAMPLED))
    assert "".join(chunks) == cpp.generate(ASK, KB, max_tokens=16, **SAMPLED)
    assert cpp.last_stats.completion_tokens <= 16


def test_stop_and_cancel(engines):
    _, cpp = engines
    full = cpp.generate(ASK, max_tokens=40, **SAMPLED)
    stop = full[len(full) // 2:len(full) // 2 + 3]
    assert cpp.generate(ASK, max_tokens=40, stop=[stop], **SAMPLED) == full[:full.find(stop)]
    event, got = threading.Event(), []
    for chunk in cpp.stream(ASK, cancel=event, max_tokens=200, **SAMPLED):
        got.append(chunk)
        if len(got) == 2:
            event.set()
    assert len(got) == 2 and cpp.last_stats.finish_reason == "cancelled"


def test_base_plus_lora_gguf_answers_like_the_merged_model(tmp_path):
    """llama.cpp applying the exported LoRA to the unmerged base = the merged export (F32, so exact math)."""
    from groundwork.models import load_causal_lm
    from serving.quantize import export_gguf
    from serving.quantize.gguf_lora import export_gguf_lora

    adapter = make_random_lora(TINY, tmp_path / "lora", r=4, scale=0.3)
    out = tmp_path / "out"
    quantize(TINY, str(adapter), out, QuantizeSettings(formats=("gguf",), gguf_types=("f32",), verify=False))
    base = load_causal_lm(TINY)
    export_gguf(base, out / "base-f32.gguf", "f32")
    export_gguf_lora(adapter, base.config, out / "adapter-lora.gguf", dtype="f32")
    opts = {"n_ctx": 512, "threads": 1}
    answers = {}
    for name, kwargs in {"merged": {"gguf_type": "f32"}, "lora": {"gguf_type": "f32+lora"},
                         "base": {"artifact": str(out / "base-f32.gguf")}}.items():
        engine = load_engine("llamacpp", **({"artifact": str(out)} | kwargs), **opts)
        answers[name] = engine.generate([{"role": "user", "content": ASK}], KB, max_tokens=24, temperature=0.0)
        if name == "lora":
            assert engine.description.endswith("+adapter-lora.gguf")
        engine.close()
    assert answers["lora"] == answers["merged"]
    assert answers["base"] != answers["merged"]  # the adapter changes the answer, so the equality means something


def test_ignore_eos_masks_end_tokens_and_fills_max_tokens(engines):
    torch_engine, cpp = engines
    assert torch_engine.tokenizer.eos_token_id in cpp._end_tokens()
    cpp.generate(ASK, max_tokens=24, ignore_eos=True)
    assert cpp.last_stats.completion_tokens == 24
    first = cpp.generate(ASK, max_tokens=1)
    first_id = cpp.tokenize(first)[-1] if first else None
    cpp._end_token_ids = [*cpp._end_tokens(), first_id]  # pretend the greedy first token ends generation
    try:
        assert cpp.generate(ASK, max_tokens=1, ignore_eos=True) != first  # so it can no longer be sampled
    finally:
        cpp._end_token_ids = None


def test_mixed_gguf_runs_by_gguf_type_with_the_merged_models_logits(tmp_path):
    """``gguf_type="mixed-q8_0"`` picks ``model-mixed-q8_0.gguf`` beside ``model-q8_0.gguf``, and llama.cpp
    reads its per-tensor types (base Q4_1 bytes for layer 0, Q8_0 for the adapter's layer 1) right: its logits
    match the merged fp32 model's within Q8_0 error."""
    import numpy as np
    import torch
    from quantize_fixtures import grid_base, merge_adapter

    from serving.quantize import export_gguf, export_gguf_mixed

    adapter = make_random_lora(TINY, tmp_path / "lora", r=4, scale=0.05, layers_to_transform=(1,))
    base_path, base = grid_base(tmp_path)
    merged = merge_adapter(base, adapter)
    out = tmp_path / "out"
    export_gguf(merged, out / "model-q8_0.gguf", "q8_0", base_path)
    summary = export_gguf_mixed(merged, out / "model-mixed-q8_0.gguf", "q8_0", base_path)
    assert summary["tensor_types"]["q4_1"] == 7 and summary["requantized_tensors"] == 7
    engine = load_engine("llamacpp", TINY, artifact=str(out), gguf_type="mixed-q8_0", n_ctx=512, threads=1,
                         logits_all=True)
    try:
        assert engine.path.name == "model-mixed-q8_0.gguf"
        ids = engine.tokenize(engine.render(ASK, KB))
        engine.llm.eval(ids)
        cpp_logits = np.array(engine.llm.scores[:len(ids)])
        with torch.inference_mode():
            reference = merged(input_ids=torch.tensor([ids])).logits[0].numpy()
            base_logits = base(input_ids=torch.tensor([ids])).logits[0].numpy()
        scale = np.abs(reference).max()
        error = np.abs(cpp_logits - reference)
        assert error.max() < 0.05 * scale and error.mean() < 0.01 * scale
        assert np.abs(base_logits - reference).mean() > 3 * error.mean()  # the adapter's change is there
        assert engine.generate(ASK, KB, max_tokens=8, temperature=0.0)
    finally:
        engine.close()


PASSAGES = ["Returns are accepted within 30 days for unworn items. Start a return from the Orders page.",
            "Parcels ship within 2 business days; tracking appears under Orders once the carrier scans them.",
            "Gift cards never expire and can be combined with one other payment method."]
QUESTIONS = ["Can I return shoes I already wore?", "Where is my parcel?", "Do gift cards expire?"]


@pytest.fixture(scope="module")
def f32_export(tmp_path_factory):
    """A merged F32 GGUF: llama.cpp's arithmetic is then the only difference between two runs of a prompt."""
    adapter = make_random_lora(TINY, tmp_path_factory.mktemp("lora32") / "a", r=4, scale=0.3)
    out = tmp_path_factory.mktemp("export32") / "out"
    quantize(TINY, str(adapter), out, QuantizeSettings(formats=("gguf",), gguf_types=("f32",), verify=False))
    return out


def _llama(export, **opts):
    return load_engine("llamacpp", artifact=str(export), gguf_type="f32", n_ctx=1024, threads=1,
                       system_prompt="You are the support assistant of a shop.", **opts)


def test_prefix_cache_restores_passage_openings_and_answers_stay_the_same(f32_export):
    """Warm-up pins the framings and each passage opening; a request whose first passage is pinned has it
    written back instead of prefilled (also after a request about another article, which llama-cpp-python's
    own reuse of the previous prompt cannot cover), and every answer equals the one prefilled in full."""
    cached, plain = _llama(f32_export), _llama(f32_export, prefix_cache=False)
    try:
        cached.cache_passages(PASSAGES, budget_mb=64)
        cached.warm_up()
        store = cached.prefix_cache
        assert len(store) == 2 + len(PASSAGES) and store.pinned_bytes > 0
        order = [0, 1, 2, 0, 2, 1]
        for i in order:
            context = [PASSAGES[i], PASSAGES[(i + 1) % 3]]
            hits, reused = store.hits, store.reused_tokens
            answer = cached.generate(QUESTIONS[i], context, max_tokens=16, temperature=0.0)
            assert store.hits == hits + 1
            assert store.reused_tokens - reused >= len(cached.passage_opening(PASSAGES[i]))
            assert answer == plain.generate(QUESTIONS[i], context, max_tokens=16, temperature=0.0)
        sampled = {"temperature": 1.0, "seed": 3, "max_tokens": 12}
        assert cached.generate(QUESTIONS[1], PASSAGES[:2], **sampled) == plain.generate(QUESTIONS[1], PASSAGES[:2],
                                                                                        **sampled)
        assert plain.prefix_cache is None
    finally:
        cached.close()
        plain.close()


def test_prefix_cache_budget_caps_the_pinned_passages(f32_export):
    engine = _llama(f32_export)
    try:
        engine.warm_up()
        per_token = engine.prefix_cache.bytes_per_token
        assert len(engine.prefix_cache) == 2 and per_token > 0  # the two framings, no passages given
        one_opening_mb = per_token * len(engine.passage_opening(PASSAGES[0])) / 2**20
        engine.cache_passages(PASSAGES, budget_mb=1.5 * one_opening_mb)
        assert len(engine.prefix_cache) == 3  # the first passage fits the budget, the second does not
        engine.clear_prefix_cache()
        assert engine.prefix_cache is None
        engine.generate(QUESTIONS[0], PASSAGES[:2], max_tokens=4, temperature=0.0)
        assert len(engine.prefix_cache) == 3  # rebuilt on the request, with the budget's passages
        assert engine.prefix_cache.hits == 1  # and the request's first passage was restored from it
    finally:
        engine.close()
