"""The torch engine's one long-lived worker thread: every request's prefill and decode run on it, at the engine's
thread count, while the caller's torch threads stay as they were; streaming, cancellation and errors still reach
the caller."""

from __future__ import annotations

import threading
import time

import pytest
import torch

from serving.engines import EngineError, load_engine

TINY = "tiny-random-llama"
ASK = "Where is my order? It was due on Monday."
SAMPLED = {"temperature": 1.0, "seed": 3}


@pytest.fixture(scope="module")
def engine():
    caller = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        eng = load_engine("torch", TINY, threads=2)
        assert torch.get_num_threads() == 1  # the constructing thread keeps its own count
    finally:
        torch.set_num_threads(caller)
    yield eng
    eng.close()


@pytest.fixture
def forward_threads(engine):
    """Names of the threads the model's forward ran on, while the test runs."""
    seen: list[str] = []
    hook = engine.model.register_forward_pre_hook(lambda *_: seen.append(threading.current_thread().name))
    yield seen
    hook.remove()


def test_every_request_runs_on_one_long_lived_worker_at_the_engine_thread_count(engine, forward_threads):
    assert engine.worker.call(torch.get_num_threads) == 2
    worker = engine.worker.call(threading.current_thread)
    engine.generate(ASK, max_tokens=4, **SAMPLED)
    assert "".join(engine.stream(ASK, max_tokens=4, **SAMPLED))
    engine.generate(ASK, context="Orders ship within 2 business days.", max_tokens=4, **SAMPLED)
    assert forward_threads and set(forward_threads) == {worker.name}
    assert worker.name.startswith("parley-torch") and worker is not threading.current_thread()
    assert worker.is_alive()


def test_a_stream_left_half_read_frees_the_worker_for_the_next_request(engine):
    stream = engine.stream(ASK, max_tokens=200, **SAMPLED)
    assert next(stream) is not None
    stream.close()  # the caller stopped reading: the generation is told to stop and waited for
    assert engine.last_stats.completion_tokens < 200
    assert engine.generate(ASK, max_tokens=5, **SAMPLED) is not None
    assert engine.last_stats.completion_tokens <= 5


def test_requests_from_several_threads_are_served_one_after_another(engine):
    expected = engine.generate(ASK, max_tokens=6, **SAMPLED)
    answers: list[str] = []
    threads = [threading.Thread(target=lambda: answers.append(engine.generate(ASK, max_tokens=6, **SAMPLED)))
               for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert answers == [expected] * 3


def test_a_generation_error_reaches_the_caller_and_the_worker_survives(engine, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("out of memory")

    monkeypatch.setattr(engine.model, "generate", broken)
    with pytest.raises(EngineError, match="out of memory"):
        engine.generate(ASK, max_tokens=4)
    monkeypatch.undo()
    assert engine.generate(ASK, max_tokens=4, **SAMPLED) is not None


def test_a_request_cancelled_while_queued_never_runs(engine, forward_threads):
    release = threading.Event()
    blocker = engine.worker.submit(release.wait)  # the worker is busy with another request
    cancel = threading.Event()
    answers: list[str] = []
    caller = threading.Thread(target=lambda: answers.append(engine.generate(ASK, cancel=cancel, max_tokens=50)))
    caller.start()
    time.sleep(0.2)
    cancel.set()
    release.set()
    blocker.result(timeout=30)
    caller.join(timeout=30)
    assert answers == [""] and forward_threads == []
    assert engine.last_stats.finish_reason == "cancelled"
