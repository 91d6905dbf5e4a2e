"""One server: FastAPI with the OpenAI-compatible API at ``/v1``, the customer's Gradio app mounted at ``/``,
``/metrics`` for Prometheus and, only with operator logins (``admin_auth``), the operator console at
``/operator`` (a second Gradio app with its own login) and its API at ``/v1/operator``.

:func:`build_service` loads the heavy parts once (engine, KB embeddings, guard, store); :func:`create_app`
wires them into routes, the Gradio queues and the hardening middleware; :func:`serve` runs uvicorn.
Tests call :func:`create_app` and run it on a free port, so they exercise exactly what ``parley serve`` runs.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from groundwork.sections.serve import ServeSection, parse_auth

log = logging.getLogger("parley.serve")


@dataclass
class Server:
    """The assembled parts, kept so callers (tests, the CLI) can close the store and the engine."""

    app: Any
    service: Any
    blocks: Any
    operator_blocks: Any = None  # None without admin_auth

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
    """Load engine, KB, guard and store; ``engine`` and ``kb`` may be passed in (already loaded ones).

    Torch threads: the calling thread, and (torch's default for new threads) the API's and the UI's request
    threads, run torch on one thread from here on; only the torch engine's worker runs the calling thread's count
    (:class:`~serving.engines.torch_engine.TorchWorker`). A second multi-threaded OpenMP team (the guard's,
    retrieval's and the explanations' MiniLM at 2 threads) slowed the first token's prefill by half on 2 cores.
    """
    import torch

    from serving.app.identity import model_identity
    from serving.app.service import ChatService
    from serving.feedback.store import FeedbackStore
    from serving.guard import Guard
    from serving.limits import Gate, Limits
    from serving.metrics import Metrics
    from serving.retrieval import KnowledgeBase, prompt_passage

    model = cfg.model or default_model
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    engine_built = engine is None
    if engine_built:
        from serving.engines import load_engine

        opts = {**cfg.engine_opts(), **(engine_opts or {})}  # serve.engine_url, serve.gguf_type
        if cfg.engine == "torch":
            opts.setdefault("dtype", dtype)
            opts.setdefault("compile", cfg.compile)
        if cfg.engine in ("torch", "llamacpp"):
            # llama.cpp would otherwise decode on half the cores (its default)
            opts.setdefault("threads", threads)
            opts.setdefault("prefix_cache", cfg.prefix_cache)
        opts.setdefault("system_prompt", system_prompt)
        engine = load_engine(cfg.engine, model if cfg.engine != "llamacpp" or not cfg.artifact else None,
                             adapter=cfg.adapter, artifact=cfg.artifact, **opts)
    if kb is None and cfg.kb_dir:
        kb = KnowledgeBase.load(cfg.kb_dir)
    if engine_built:
        if kb is not None and cfg.top_k and hasattr(engine, "cache_passages"):
            engine.cache_passages([prompt_passage(p.title, p.text) for p in kb.passages], cfg.passage_cache_mb)
        if hasattr(engine, "warm_up"):
            engine.warm_up()  # prefill the prompt framing and KB passages / compile before the first customer
    name, adapter_hash = model_identity(model, cfg.adapter, cfg.artifact)
    _ensure_sqlite_folder(cfg.db)
    limits = Limits(cfg.max_message_chars, cfg.max_turns, cfg.max_new_tokens, cfg.request_timeout_s)
    gate = Gate(cfg.concurrency, cfg.queue_size, wait_timeout_s=cfg.request_timeout_s)
    from groundwork.language_id import detect_language

    detect_language("warm up")  # load langid now, not on the first customer's message
    from serving.explain import Explainer

    # The reward models, loaded once: each answer's "Why this answer" scores.
    explainer = Explainer.load(cfg.reward_dir)
    return ChatService(engine, kb, Guard.load(cfg.risk_model, cfg.risk_threshold), FeedbackStore(cfg.db), limits,
                       gate, model_name=cfg.served_model_name or name[:200], adapter_hash=adapter_hash,
                       top_k=cfg.top_k, temperature=cfg.temperature, top_p=cfg.top_p, metrics=Metrics(),
                       explainer=explainer, drop_repeated_sentences=cfg.drop_repeated_sentences,
                       follow_up_filler=cfg.follow_up_filler, hand_off_benign_refusals=cfg.hand_off_benign_refusals)


def _mount_operator(app: Any, cfg: ServeSection, service: Any, operators: list[tuple[str, str]]) -> Any:
    """The operator console at ``/operator`` and ``/v1/operator``, behind the operator logins only."""
    import gradio as gr

    from serving.api.operator import OperatorKeys, build_operator_router
    from serving.app.admin import Admin
    from serving.app.operator import OPERATOR_PATH, TicketDesk, build_operator_blocks
    from serving.feedback.tickets import ensure_schema

    ensure_schema(service.store)
    names = frozenset(u for u, _ in operators)
    closed = service.metrics.tickets_closed.inc
    app.include_router(build_operator_router(service.store, OperatorKeys(operators), on_close=closed))
    blocks = build_operator_blocks(Admin(service.store, cfg.db, names), TicketDesk(service.store, names, closed))
    blocks.queue(max_size=cfg.queue_size, default_concurrency_limit=2, api_open=False)
    # Mounted before the customer app: the mount at "/" would otherwise match /operator/... first. Gradio
    # gives each mounted app its own login cookie and token table, so only operator logins open this one.
    gr.mount_gradio_app(app, blocks, path=OPERATOR_PATH, auth=operators, ssr_mode=False, allowed_paths=[],
                        root_path=f"{cfg.root_path.rstrip('/')}{OPERATOR_PATH}" if cfg.root_path else None,
                        footer_links=["api"], show_error=False, max_file_size=cfg.max_request_bytes,
                        mcp_server=False,
                        auth_message="Parley operator console: log in with an operator account (--admin-auth).")
    return blocks


def create_app(cfg: ServeSection, service: Any) -> Server:
    """FastAPI app: hardening middleware, ``/v1`` API, ``/metrics``, the Gradio UI at ``/`` (SSR off, queue
    bounded) and, with ``admin_auth``, the operator console."""
    import gradio as gr
    from fastapi import FastAPI

    from serving.api.routes import build_router
    from serving.app.hardening import HardeningMiddleware
    from serving.app.operator import OperatorFilesOnly
    from serving.app.ui import build_blocks
    from serving.metrics import metrics_router

    users = parse_auth(cfg.auth) if cfg.auth else None
    operators = parse_auth(cfg.admin_auth, "admin_auth") if cfg.admin_auth else None
    api_keys = {f"{u}:{p}" for u, p in users} if users else None
    app = FastAPI(title="Parley", docs_url=None, redoc_url=None, openapi_url=None)
    app.include_router(build_router(service, service.model_name, cfg.max_request_bytes, api_keys))

    @app.get("/healthz")
    async def healthz() -> dict[str, Any]:
        return {"status": "ok", "model": service.model_name, "guard": service.guard.enabled}

    blocks = build_blocks(service)
    blocks.queue(max_size=cfg.queue_size, default_concurrency_limit=cfg.concurrency, api_open=False)
    service.metrics.bind(gate=service.gate, store=service.store, ui_queue=lambda: len(blocks._queue),
                         model=service.model_name, guard=service.guard.enabled)

    app.include_router(metrics_router(service.metrics))
    operator_blocks = _mount_operator(app, cfg, service, operators) if operators else None
    # ssr_mode=False: Gradio 6.31's SSR server can be tricked past auth with a forged Host header.
    # root_path: the public prefix when a reverse proxy serves Parley under a sub-path (e.g. /support-bot).
    app = gr.mount_gradio_app(app, blocks, path="/", auth=users, ssr_mode=False, allowed_paths=[],
                              root_path=cfg.root_path or None,
                              footer_links=["api"], show_error=False, max_file_size=cfg.max_request_bytes,
                              mcp_server=False)
    app.add_middleware(OperatorFilesOnly)
    app.add_middleware(HardeningMiddleware, max_bytes=cfg.max_request_bytes)
    return Server(app=app, service=service, blocks=blocks, operator_blocks=operator_blocks)


def serve(cfg: ServeSection, default_model: str, dtype: str = "float32", system_prompt: str | None = None,
          engine_opts: dict[str, Any] | None = None) -> None:
    """Load everything and block in uvicorn until Ctrl-C."""
    import uvicorn

    service = build_service(cfg, default_model, dtype, system_prompt, engine_opts=engine_opts)
    server = create_app(cfg, service)
    base = f"http://{cfg.host}:{cfg.port}"
    console = f"  {base}/operator (operator console)" if cfg.admin_auth else ""
    print(f"parley serve: {base}/ (UI)  {base}/v1 (OpenAI API){console}  {base}/metrics  "
          f"model {service.model_name}; {service.guard.note()}", flush=True)
    try:
        uvicorn.run(server.app, host=cfg.host, port=cfg.port, log_level="info", timeout_graceful_shutdown=5,
                    root_path=cfg.root_path, proxy_headers=True)
    finally:
        server.close()
