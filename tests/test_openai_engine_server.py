"""The ``openai`` engine against a real OpenAI-compatible server: ``parley serve`` itself, started as a subprocess.

Greedy (and seeded) generation through the openai engine must equal the local torch engine's on the same
prompt, and ``parley serve --engine openai --engine-url`` must work as a front end for such a server (the
vLLM deployment, with Parley's own API standing in for vLLM).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

pytest.importorskip("openai")

from serve_fixtures import free_port, server_process  # noqa: E402  (tests/ is on sys.path)

from serving.engines import load_engine  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
TINY = "tiny-random-llama"
ASK = "Do you ship to Spain?"
GREEDY = {"temperature": 0.0, "max_tokens": 16}
SEEDED = {"temperature": 1.0, "seed": 11, "max_tokens": 16}  # the random model prints visible tokens when sampling


@contextmanager
def parley_serve(tmp: Path, *flags: str) -> Iterator[str]:
    """``parley serve`` on a free port (no KB: the client's messages reach the engine unchanged); yields its URL."""
    port = free_port()
    args = [sys.executable, "-m", "parley.cli", "serve", "--port", str(port), "--kb", "",
            "--db", f"sqlite:///{tmp / f'feedback-{port}.db'}", *flags]
    url = f"http://127.0.0.1:{port}"
    with server_process(args, url, tmp / f"serve-{port}.log", env={**os.environ, "HF_HUB_OFFLINE": "1"}):
        yield url


def _served_name(url: str) -> str:
    return httpx.get(f"{url}/v1/models", timeout=10).json()["data"][0]["id"]


@pytest.fixture(scope="module")
def local():
    engine = load_engine("torch", TINY)
    yield engine
    engine.close()


@pytest.fixture(scope="module")
def upstream(tmp_path_factory) -> Iterator[str]:
    with parley_serve(tmp_path_factory.mktemp("upstream"), "--model", TINY) as url:
        yield url


@pytest.mark.parametrize("params", [GREEDY, SEEDED], ids=["greedy", "seeded"])
def test_openai_engine_matches_the_torch_engine_through_parley_serve(local, upstream: str, params: dict) -> None:
    remote = load_engine("openai", _served_name(upstream), base_url=f"{upstream}/v1", timeout=60)
    expected = local.generate(ASK, **params)
    assert expected, "the local engine produced nothing to compare"
    chunks = list(remote.stream(ASK, **params))
    assert len(chunks) > 1  # really streamed, not one final blob
    assert "".join(chunks) == expected
    assert remote.generate(ASK, **params) == expected
    conversation = [{"role": "user", "content": "Hello"}, {"role": "assistant", "content": "Hi, how can I help?"},
                    {"role": "user", "content": ASK}]
    assert remote.generate(conversation, **params) == local.generate(conversation, **params)


def test_parley_serve_engine_openai_fronts_another_server(local, upstream: str, tmp_path: Path) -> None:
    name = _served_name(upstream)
    with parley_serve(tmp_path, "--engine", "openai", "--engine-url", f"{upstream}/v1", "--model", name) as front:
        health = httpx.get(f"{front}/healthz", timeout=10).json()
        assert health["status"] == "ok"
        via_front = load_engine("openai", _served_name(front), base_url=f"{front}/v1", timeout=60)
        assert via_front.generate(ASK, **SEEDED) == local.generate(ASK, **SEEDED)
