"""Engine interface on tiny-random-llama: stream/generate, max_tokens, stop strings, cancellation, prompts."""

from __future__ import annotations

import threading

import pytest

from groundwork.chat_format import build_messages, render_prompt
from serving.engines import EngineError, StopMatcher, load_engine
from serving.engines.openai_engine import OpenAIEngine

TINY = "tiny-random-llama"
ASK = "Where is my order? It was due on Monday."
KB = "Orders ship within 2 business days. Tracking links are emailed at dispatch."
SAMPLED = {"temperature": 1.0, "seed": 3}  # a random tiny model is only varied when sampled


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    from serving.quantize import make_random_lora

    adapter = make_random_lora(TINY, tmp_path_factory.mktemp("lora") / "a", r=4, scale=0.05)
    eng = load_engine("torch", TINY, adapter=str(adapter), threads=2)
    yield eng
    eng.close()


def test_stop_matcher_holds_back_partial_stop_strings():
    matcher = StopMatcher(["</end>", "STOP"])
    assert matcher.feed("hello </e") == ("hello ", False)
    assert matcher.feed("nd> more") == ("", True)
    matcher = StopMatcher(["STOP"])
    assert matcher.feed("ST") == ("", False)
    assert matcher.feed("ay") == ("STay", False)
    assert matcher.flush() == ""


def test_generate_equals_concatenated_stream(engine):
    chunks = list(engine.stream(ASK, context=KB, max_tokens=24, **SAMPLED))
    assert len(chunks) > 1
    assert "".join(chunks) == engine.generate(ASK, context=KB, max_tokens=24, **SAMPLED)


def test_max_tokens_is_honoured(engine):
    engine.generate(ASK, max_tokens=7, **SAMPLED)
    assert engine.last_stats.completion_tokens <= 7
    assert engine.last_stats.prompt_tokens > 20


def test_stop_string_truncates_before_it(engine):
    full = engine.generate(ASK, max_tokens=40, **SAMPLED)
    stop = full[len(full) // 2:len(full) // 2 + 3]
    assert stop.strip(), f"sampled text too uniform for this test: {full!r}"
    cut = engine.generate(ASK, max_tokens=40, stop=[stop], **SAMPLED)
    assert cut == full[:full.find(stop)]
    assert engine.last_stats.finish_reason == "stop"
    assert engine.last_stats.completion_tokens < 40


def test_cancel_event_stops_stream_early(engine):
    event = threading.Event()
    got = []
    for chunk in engine.stream(ASK, cancel=event, max_tokens=200, **SAMPLED):
        got.append(chunk)
        if len(got) == 3:
            event.set()
    assert len(got) == 3
    assert engine.last_stats.finish_reason == "cancelled"
    assert engine.last_stats.completion_tokens < 200


def test_engine_cancel_from_another_thread(engine):
    stream = engine.stream(ASK, max_tokens=200, **SAMPLED)
    first = next(stream)
    threading.Thread(target=engine.cancel).start()
    rest = list(stream)
    assert first is not None
    assert engine.last_stats.finish_reason == "cancelled"
    assert len(rest) < 199


def test_int8_artifact_engine(engine, tmp_path):
    from serving.quantize import save_int8

    save_int8(engine.model, engine.tokenizer, tmp_path / "int8")  # note: quantizes ``engine.model`` in place
    engine.clear_prefix_cache()  # its cached openings came from the weights before
    int8 = load_engine("torch", artifact=str(tmp_path / "int8"))
    assert int8.generate(ASK, max_tokens=10) == engine.generate(ASK, max_tokens=10)
    assert int8.render(ASK, KB) == engine.render(ASK, KB)


def test_openai_engine_sends_parley_messages(engine):
    """The server renders; we send exactly build_messages(), whose rendering equals the local engines' prompt."""
    remote = OpenAIEngine("tiny", base_url="http://127.0.0.1:9/v1", tokenizer=engine.tokenizer)
    sent = remote.prepare(ASK, KB)
    assert sent == build_messages(ASK, KB)
    assert render_prompt(engine.tokenizer, sent) == engine.render(ASK, KB)
    with pytest.raises(EngineError, match="127.0.0.1:9"):
        remote.generate(ASK, KB, max_tokens=4)


def test_bad_requests_are_clear_errors(engine):
    with pytest.raises(EngineError, match="unknown generation parameter"):
        engine.generate(ASK, max_tokenz=3)
    with pytest.raises(EngineError, match="max_tokens"):
        engine.generate(ASK, max_tokens=0)
    with pytest.raises(EngineError, match="unknown engine"):
        load_engine("vllm-local", TINY)
    with pytest.raises(EngineError, match="parley quantize"):
        load_engine("llamacpp", TINY, adapter="x")
