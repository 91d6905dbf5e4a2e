"""One server: FastAPI with the OpenAI-compatible API at ``/v1`` and the Gradio app mounted at ``/``.

:func:`build_service` loads the heavy parts once (engine, KB embeddings, guard, store); :func:`create_app`
wires them into routes, the Gradio queue and the hardening middleware; :func:`serve` runs uvicorn.
Tests call :func:`create_app` and run it on a free port, so they exercise exactly what ``parley serve`` runs.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from serving.config import ServeSection, parse_auth

log = logging.getLogger("parley.serve")


@dataclass
class Server:
    """The assembled parts, kept so callers (tests, the CLI) can close the store and the engine."""

    app: Any
    service: Any
    blocks: Any

    def close(self, engine: bool = True) -> None:
        """Close the store and (unless it is shared with another server) the engine."""
        self.service.store.close()
        close = getattr(self.service.engine, "close", None)
        if engine and close is not None:
            close()


def _ensure_sqlite_folder(url: str) -> None:
    """``sqlite:///runs/feedback.db`` should work on a fresh checkout: create ``runs/``."""
    if url.startswith("sqlite:///"):
        Path(url[len("sqlite:///"):]).expanduser().parent.mkdir(parents=True, exist_ok=True)


def build_service(cfg: ServeSection, default_model: str, dtype: str = "float32", system_prompt: str | None = None,
                  engine: Any | None = None, engine_opts: dict[str, Any] | None = None, kb: Any | None = None):
    """Load engine, KB, guard and store; ``engine`` and ``kb`` may be passed in (already loaded ones)."""
    from serving.app.identity import model_identity
    from serving.app.service import ChatService
    from serving.feedback.store import FeedbackStore
    from serving.guard import Guard
    from serving.limits import Gate, Limits
    from serving.retrieval import KnowledgeBase

    model = cfg.model or default_model
    if engine is None:
        from serving.engines import load_engine

        opts = dict(engine_opts or {})
        if cfg.engine == "torch":
            opts.setdefault("dtype", dtype)
            opts.setdefault("compile", cfg.compile)
        opts.setdefault("system_prompt", system_prompt)
        engine = load_engine(cfg.engine, model if cfg.engine != "llamacpp" or not cfg.artifact else None,
                             adapter=cfg.adapter, artifact=cfg.artifact, **opts)
        if getattr(engine, "decoder", None) is not None:
            engine.warm_up()  # compile before the first customer waits for it
    name, adapter_hash = model_identity(model, cfg.adapter, cfg.artifact)
    _ensure_sqlite_folder(cfg.db)
    limits = Limits(cfg.max_message_chars, cfg.max_turns, cfg.max_new_tokens, cfg.request_timeout_s)
    gate = Gate(cfg.concurrency, cfg.queue_size, wait_timeout_s=cfg.request_timeout_s)
    if kb is None and cfg.kb_dir:
        kb = KnowledgeBase.load(cfg.kb_dir)
    from dialogue.language_id import detect_language

    detect_language("warm up")  # load langid now, not on the first customer's message
    return ChatService(engine, kb, Guard.load(cfg.reward_dir, cfg.safety_threshold), FeedbackStore(cfg.db), limits,
                       gate, model_name=cfg.served_model_name or name[:200], adapter_hash=adapter_hash,
                       top_k=cfg.top_k, temperature=cfg.temperature, top_p=cfg.top_p)


def create_app(cfg: ServeSection, service: Any) -> Server:
    """FastAPI app: hardening middleware, ``/v1`` API, and the Gradio UI at ``/`` (SSR off, queue bounded)."""
    import gradio as gr
    from fastapi import FastAPI

    from serving.api.routes import build_router
    from serving.app.admin import Admin
    from serving.app.hardening import HardeningMiddleware
    from serving.app.ui import build_blocks

    users = parse_auth(cfg.auth) if cfg.auth else None
    api_keys = {f"{u}:{p}" for u, p in users} if users else None
    app = FastAPI(title="Parley", docs_url=None, redoc_url=None, openapi_url=None)
    app.include_router(build_router(service, service.model_name, cfg.max_request_bytes, api_keys))

    @app.get("/healthz")
    async def healthz() -> dict[str, Any]:
        return {"status": "ok", "model": service.model_name, "guard": service.guard.enabled}

    blocks = build_blocks(service, Admin(service.store, cfg.db, auth_on=users is not None))
    blocks.queue(max_size=cfg.queue_size, default_concurrency_limit=cfg.concurrency, api_open=False)
    # ssr_mode=False: Gradio 6.31's SSR server can be tricked past auth with a forged Host header.
    # root_path: the public prefix when a reverse proxy serves Parley under a sub-path (e.g. /support-bot).
    app = gr.mount_gradio_app(app, blocks, path="/", auth=users, ssr_mode=False, allowed_paths=[],
                              root_path=cfg.root_path or None,
                              footer_links=["api"], show_error=False, max_file_size=cfg.max_request_bytes,
                              mcp_server=False)
    app.add_middleware(HardeningMiddleware, max_bytes=cfg.max_request_bytes)
    return Server(app=app, service=service, blocks=blocks)


def serve(cfg: ServeSection, default_model: str, dtype: str = "float32", system_prompt: str | None = None,
          engine_opts: dict[str, Any] | None = None) -> None:
    """Load everything and block in uvicorn until Ctrl-C."""
    import uvicorn

    service = build_service(cfg, default_model, dtype, system_prompt, engine_opts=engine_opts)
    server = create_app(cfg, service)
    print(f"parley serve: http://{cfg.host}:{cfg.port}/ (UI)  http://{cfg.host}:{cfg.port}/v1 (OpenAI API)  "
          f"model {service.model_name}; {service.guard.note()}", flush=True)
    try:
        uvicorn.run(server.app, host=cfg.host, port=cfg.port, log_level="info", timeout_graceful_shutdown=5,
                    root_path=cfg.root_path, proxy_headers=True)
    finally:
        server.close()
