"""A real ``parley serve`` server for the serving tests: tiny-random-llama on the torch engine, the project KB,
SQLite in a temp folder, uvicorn in a background thread on a free localhost port.

Modules with the default settings use :func:`shared_server` (one server per pytest process); modules that need
other settings build their own with :func:`start_server`.
"""

from __future__ import annotations

import atexit
import os
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx

from groundwork.sections.serve import ServeSection

ROOT = Path(__file__).resolve().parent.parent
TINY = "tiny-random-llama"
# PARLEY_SERVE_TEST_MODEL=smollm2-135m-instruct gives readable answers (for the screenshots); slower.
MODEL = os.environ.get("PARLEY_SERVE_TEST_MODEL", TINY)

# Sampling at temperature 1 makes the random model print visible tokens (greedy repeats a newline).
BASE = ServeSection(model=MODEL, engine="torch", kb_dir=str(ROOT / "data" / "kb"),
                    max_new_tokens=12 if MODEL == TINY else 48, temperature=1.0 if MODEL == TINY else 0.0,
                    request_timeout_s=30.0)


# The operator console's login (``--admin-auth``); the shared server mounts the console, its chat has no login.
OPERATOR = ("ops", "0perator-pw")
SHARED_LIMITS = {"max_turns": 4, "max_message_chars": 500, "admin_auth": ":".join(OPERATOR)}


@dataclass
class LiveServer:
    url: str
    db_url: str
    cfg: ServeSection
    service: Any

    @property
    def api(self) -> str:
        return f"{self.url}/v1"

    @property
    def operator(self) -> str:
        return f"{self.url}/operator"


@contextmanager
def server_process(command: list[str], url: str, log_path: Path, timeout_s: float = 180,
                   env: dict[str, str] | None = None) -> Iterator[subprocess.Popen]:
    """Start ``command`` (a process that will serve ``url``), wait until its ``/healthz`` answers, yield the
    process, and stop it afterwards; if it exits first, fail with the end of its log."""
    with open(log_path, "w", encoding="utf-8") as log:
        process = subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=env)
        try:
            deadline = time.monotonic() + timeout_s
            while True:
                if process.poll() is not None:
                    raise RuntimeError(f"{' '.join(command[:5])} exited: {log_path.read_text()[-3000:]}")
                try:
                    if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the server did not come up in {timeout_s:.0f} s")
                time.sleep(0.5)
            yield process
        finally:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def start_server(tmp: Path, reuse: LiveServer | None = None, **overrides: Any) -> Iterator[LiveServer]:
    """Build the service and app exactly as ``parley serve`` does and run uvicorn until the block exits.

    ``reuse`` shares another server's loaded engine and KB embeddings (the slow parts of start-up); the store,
    guard, limits, queue and auth are this server's own.
    """
    import uvicorn

    from serving.server import build_service, create_app

    db_url = overrides.pop("db", None) or f"sqlite:///{tmp / 'feedback.db'}"  # db=...: another store
    cfg = replace(BASE, db=db_url, port=free_port(), **overrides)
    shared = {"engine": reuse.service.engine, "kb": reuse.service.kb} if reuse else {}
    service = build_service(cfg, MODEL, **shared)
    server = create_app(cfg, service)
    uv = uvicorn.Server(uvicorn.Config(server.app, host="127.0.0.1", port=cfg.port, log_level="warning",
                                       timeout_graceful_shutdown=2))
    thread = threading.Thread(target=uv.run, name="parley-test-server", daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{cfg.port}"
    deadline = time.monotonic() + 60
    while not uv.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("test server did not start")
        time.sleep(0.05)
    httpx.get(f"{url}/healthz", timeout=10).raise_for_status()
    try:
        yield LiveServer(url=url, db_url=db_url, cfg=cfg, service=service)
    finally:
        uv.should_exit = True
        thread.join(timeout=15)
        server.close(engine=reuse is None)


_SHARED: dict[str, Any] = {}


def shared_server(tmp: Path) -> LiveServer:
    """One default server for the whole pytest process (test_serve, test_api, test_browser, the loop test).

    Each server costs ~10 s of start-up on 2 cores; modules that need other settings start their own.
    Stopped at interpreter exit (the uvicorn thread is a daemon).
    """
    if "server" not in _SHARED:
        context = start_server(tmp, **SHARED_LIMITS)
        _SHARED["server"] = context.__enter__()
        atexit.register(context.__exit__, None, None, None)
    return _SHARED["server"]


def last_text(chat: list[dict[str, Any]]) -> str:
    """Text of the newest bubble as gradio_client returns it (content is a list of parts in Gradio 6); the
    collapsed "Why this answer" section under an answer is skipped."""
    content = [m for m in chat if (m.get("metadata") or {}).get("title") != "Why this answer"][-1]["content"]
    if isinstance(content, str):
        return content
    return "".join(part.get("text", "") for part in content if isinstance(part, dict))
