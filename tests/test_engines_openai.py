"""The openai engine against a real (local, stdlib) OpenAI-compatible streaming server backed by the torch engine."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

pytest.importorskip("openai")

from serving.engines import load_engine  # noqa: E402

TINY = "tiny-random-llama"
ASK = "Do you ship to Spain?"
KB = "We ship to every EU country; delivery to Spain takes 3-5 business days."
SAMPLED = {"temperature": 1.0, "seed": 11}


def _server(backend):
    """``/v1/chat/completions`` with ``stream=True`` only: enough to exercise the client path for real."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

        def _event(self, payload) -> None:
            data = payload if isinstance(payload, str) else json.dumps(payload)
            self.wfile.write(f"data: {data}\n\n".encode())
            self.wfile.flush()

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.end_headers()
            base = {"id": "c1", "object": "chat.completion.chunk", "created": 0, "model": body["model"]}
            params = {"max_tokens": body["max_tokens"], "temperature": body["temperature"], "top_p": body["top_p"],
                      "seed": body.get("seed")}
            try:
                for text in backend.stream(body["messages"], **params):
                    self._event(base | {"choices": [{"index": 0, "delta": {"content": text},
                                                     "finish_reason": None}]})
                stats = backend.last_stats
                self._event(base | {"choices": [{"index": 0, "delta": {}, "finish_reason": stats.finish_reason}]})
                self._event(base | {"choices": [], "usage": {"prompt_tokens": stats.prompt_tokens,
                                                             "completion_tokens": stats.completion_tokens,
                                                             "total_tokens": stats.prompt_tokens
                                                             + stats.completion_tokens}})
                self._event("[DONE]")
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client went away (cancellation): the engine stream was closed with it

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture(scope="module")
def pair():
    backend = load_engine("torch", TINY)
    server = _server(backend)
    remote = load_engine("openai", "tiny", base_url=f"http://127.0.0.1:{server.server_address[1]}/v1", timeout=30)
    yield backend, remote
    server.shutdown()
    server.server_close()


def test_openai_stream_matches_local_engine(pair):
    backend, remote = pair
    expected = backend.generate(ASK, KB, max_tokens=20, **SAMPLED)
    chunks = list(remote.stream(ASK, KB, max_tokens=20, **SAMPLED))
    assert "".join(chunks) == expected
    assert remote.last_stats.completion_tokens == backend.last_stats.completion_tokens
    assert remote.generate(ASK, KB, max_tokens=20, **SAMPLED) == expected


def test_openai_stop_and_cancel(pair):
    backend, remote = pair
    full = remote.generate(ASK, max_tokens=40, **SAMPLED)
    stop = full[len(full) // 2:len(full) // 2 + 3]
    assert remote.generate(ASK, max_tokens=40, stop=[stop], **SAMPLED) == full[:full.find(stop)]
    event, got = threading.Event(), []
    for chunk in remote.stream(ASK, cancel=event, max_tokens=200, **SAMPLED):
        got.append(chunk)
        if len(got) == 2:
            event.set()
    assert len(got) == 2 and remote.last_stats.finish_reason == "cancelled"
