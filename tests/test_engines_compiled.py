"""The torch engine's compiled decoding (static cache + torch.compile'd step) on tiny-random-llama.

It must be a faster way to get the same answer: the same greedy text as ``generate`` for fp32 and int8,
both in the first cache bucket and in a longer one (a second compiled shape), seeded sampling that
repeats, stop strings, cancellation, and an int8 step that compiles into one graph (no graph breaks at
the fbgemm GEMMs).
"""

from __future__ import annotations

import threading

import pytest
import torch

from serving.engines import load_engine
from serving.engines.compiled_decoding import CACHE_BUCKET, bucketed_cache_length, sample_token

TINY = "tiny-random-llama"
ASK = "Where is my order? It was due on Monday."
LONG_ASK = "Please check my order status. " * 60  # the prompt alone is longer than one cache bucket
SAMPLED = {"temperature": 1.0, "seed": 3}


@pytest.fixture(scope="module")
def adapter(tmp_path_factory):
    from serving.quantize import make_random_lora

    return str(make_random_lora(TINY, tmp_path_factory.mktemp("lora") / "a", r=4, scale=0.05))


@pytest.fixture(scope="module")
def eager(adapter):
    eng = load_engine("torch", TINY, adapter=adapter, threads=2)
    yield eng
    eng.close()


@pytest.fixture(scope="module")
def compiled(adapter):
    eng = load_engine("torch", TINY, adapter=adapter, threads=2, compile=True)
    yield eng
    eng.close()


def test_compiled_greedy_answers_equal_generate_in_two_cache_buckets(eager, compiled):
    long_prompt_tokens = len(eager.tokenizer(eager.render(LONG_ASK), add_special_tokens=False)["input_ids"])
    assert long_prompt_tokens > CACHE_BUCKET
    for ask in (ASK, LONG_ASK):
        want = eager.generate(ask, max_tokens=30)
        want_tokens = eager.last_stats.completion_tokens
        got = compiled.generate(ask, max_tokens=30)
        assert got == want
        assert compiled.last_stats.completion_tokens == want_tokens
        assert compiled.last_stats.prompt_tokens == eager.last_stats.prompt_tokens


def test_compiled_sampling_repeats_with_a_seed_and_honours_limits(compiled):
    first = compiled.generate(ASK, max_tokens=25, **SAMPLED)
    assert compiled.generate(ASK, max_tokens=25, **SAMPLED) == first
    assert compiled.generate(ASK, max_tokens=25, temperature=1.0, seed=4) != first
    compiled.generate(ASK, max_tokens=6, **SAMPLED)
    assert compiled.last_stats.completion_tokens <= 6
    assert "".join(compiled.stream(ASK, max_tokens=25, **SAMPLED)) == first


def test_compiled_stop_string_and_cancel(compiled):
    full = compiled.generate(ASK, max_tokens=40, **SAMPLED)
    stop = full[len(full) // 2:len(full) // 2 + 3]
    assert stop.strip(), f"sampled text too uniform for this test: {full!r}"
    assert compiled.generate(ASK, max_tokens=40, stop=[stop], **SAMPLED) == full[:full.find(stop)]
    assert compiled.last_stats.finish_reason == "stop"
    event = threading.Event()
    got = []
    for chunk in compiled.stream(ASK, cancel=event, max_tokens=200, **SAMPLED):
        got.append(chunk)
        if len(got) == 3:
            event.set()
    assert len(got) == 3
    assert compiled.last_stats.finish_reason == "cancelled"


def test_compiled_int8_step_is_one_graph_and_answers_like_eager_int8(eager, tmp_path):
    from torch._dynamo.utils import counters

    from serving.quantize import save_int8

    model = load_engine("torch", TINY, adapter=None).model
    save_int8(model, eager.tokenizer, tmp_path / "int8")
    eager_int8 = load_engine("torch", artifact=str(tmp_path / "int8"))
    compiled_int8 = load_engine("torch", artifact=str(tmp_path / "int8"), compile=True)
    counters.clear()
    for ask in (ASK, LONG_ASK):
        assert compiled_int8.generate(ask, max_tokens=20) == eager_int8.generate(ask, max_tokens=20)
    assert sum(counters["graph_break"].values()) == 0, dict(counters["graph_break"])
    assert counters["stats"]["unique_graphs"] >= 1


def test_sample_token_greedy_and_nucleus():
    logits = torch.tensor([[0.0, 5.0, 1.0, 4.0]])
    assert sample_token(logits, 0.0, 1.0) == 1
    # top_p 0.5: token 1 alone holds ~0.7 of the mass, so it is the whole nucleus
    assert {sample_token(logits, 1.0, 0.5, torch.Generator().manual_seed(s)) for s in range(20)} == {1}
    drawn = {sample_token(logits, 1.0, 1.0, torch.Generator().manual_seed(s)) for s in range(200)}
    assert {1, 3} <= drawn


def test_cache_length_is_bucketed_and_capped():
    assert bucketed_cache_length(1, None) == CACHE_BUCKET
    assert bucketed_cache_length(CACHE_BUCKET + 1, None) == 2 * CACHE_BUCKET
    assert bucketed_cache_length(5000, 1024) == 1024


@pytest.mark.parametrize("kind", ["eager", "compiled"])
def test_ignore_eos_never_samples_an_end_token(kind, eager, compiled):
    engine = eager if kind == "eager" else compiled
    first_ids = engine.tokenizer(engine.generate(ASK, max_tokens=1), add_special_tokens=False)["input_ids"]
    saved = engine.eos_token_ids
    engine.eos_token_ids = sorted({*saved, first_ids[0]})  # the greedy first token now ends the answer
    try:
        engine.generate(ASK, max_tokens=12)
        assert engine.last_stats.completion_tokens == 1 and engine.last_stats.finish_reason == "stop"
        text = engine.generate(ASK, max_tokens=12, ignore_eos=True)
        assert engine.last_stats.completion_tokens == 12
        assert engine.tokenizer(text, add_special_tokens=False)["input_ids"][0] != first_ids[0]
    finally:
        engine.eos_token_ids = saved


def test_a_suspended_decode_leaves_no_inference_mode_behind(compiled):
    """A caller holding a half-read token stream must not run its own code in inference mode (a cache made
    there and one made outside trip a compiled-graph guard: a recompile in the middle of an answer)."""
    from torch._dynamo.utils import counters

    ids = compiled.tokenizer(compiled.render(ASK), return_tensors="pt", add_special_tokens=False)["input_ids"]
    first = compiled.decoder.tokens(ids, 20, set())
    next(first), next(first)
    assert not torch.is_inference_mode_enabled()
    graphs = counters["stats"]["unique_graphs"]
    second = compiled.decoder.tokens(ids, 20, set())
    assert [next(second) for _ in range(5)]
    assert counters["stats"]["unique_graphs"] == graphs
    first.close(), second.close()


def test_compiled_decoding_runs_on_the_worker_that_compiled_it(compiled, monkeypatch):
    """Warm-up compiled the step on the engine's worker; requests decode there too, whoever calls."""
    seen = []
    tokens = compiled.decoder.tokens

    def recorded(*args, **kwargs):
        seen.append(threading.current_thread().name)
        yield from tokens(*args, **kwargs)

    monkeypatch.setattr(compiled.decoder, "tokens", recorded)
    answers = []
    caller = threading.Thread(target=lambda: answers.append(compiled.generate(ASK, max_tokens=5, **SAMPLED)))
    caller.start()
    caller.join(timeout=120)
    assert answers == [compiled.generate(ASK, max_tokens=5, **SAMPLED)]
    worker = compiled.worker.call(threading.current_thread)
    assert seen == [worker.name] * 2 and worker.name.startswith("parley-torch")
