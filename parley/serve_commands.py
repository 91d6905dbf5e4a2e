"""``parley serve``: flags over the ``serve:`` recipe section; flags given on the command line win."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

# flag dest -> serve section key
_FLAG_KEYS = {
    "model": "model",
    "adapter": "adapter",
    "artifact": "artifact",
    "engine": "engine",
    "compile": "compile",
    "kb": "kb_dir",
    "db": "db",
    "reward_dir": "reward_dir",
    "risk_model": "risk_model",
    "auth": "auth",
    "admin_auth": "admin_auth",
    "host": "host",
    "port": "port",
}


def add_serve_command(sub: Any, add_recipe_args: Callable[[argparse.ArgumentParser], None]) -> argparse.ArgumentParser:
    """Register ``parley serve`` on the top-level subparsers."""
    serve = sub.add_parser("serve", help="Gradio chat UI at / and an OpenAI-compatible API at /v1 (one server)")
    add_recipe_args(serve)
    serve.add_argument("--model", "-m", help="bundled name, hub id or local directory (default: policy.model)")
    serve.add_argument("--adapter", help="LoRA adapter directory (merged at load time)")
    serve.add_argument("--artifact", help="quantized artifact: int8 folder (torch) or GGUF (llamacpp)")
    serve.add_argument("--engine", choices=["torch", "llamacpp", "openai"], help="generation engine (default torch)")
    serve.add_argument("--gguf-type", help="llamacpp with a parley quantize folder as --artifact: q8_0 (default), "
                                           "q4_1, or q4_1+lora (the 4-bit base with the tuned LoRA applied)")
    serve.add_argument("--compile", action="store_true", default=None,
                       help="torch engine: compiled decoding step (slower start, faster tokens)")
    serve.add_argument("--engine-url", help="base URL of the OpenAI-compatible server for --engine openai")
    serve.add_argument("--kb", help="knowledge-base folder of *.jsonl articles (default data/kb)")
    serve.add_argument("--db", help="feedback store URL (default sqlite:///runs/feedback.db)")
    serve.add_argument("--reward-dir", help="run folder with the reward models: objective scores for each answer")
    serve.add_argument("--risk-model", help="request-risk model folder (runs/<run>/risk/model): turns the safety "
                                            "guard on")
    serve.add_argument("--auth", help="user:password (comma-separated for several); also the API key")
    serve.add_argument("--admin-auth", help="operator user:password (comma-separated for several): mounts the "
                                            "operator console at /operator and /v1/operator (off without it)")
    serve.add_argument("--host", help="bind address (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (default 7860)")
    serve.set_defaults(handler=cmd_serve)
    return serve


def serve_overrides(args: argparse.Namespace) -> list[str]:
    """``--set``-style assignments for the flags that were given (after the recipe's own ``--set``)."""
    out = []
    for dest, key in _FLAG_KEYS.items():
        value = getattr(args, dest, None)
        if value is not None:
            out.append(f"serve.{key}={_yaml_scalar(value)}")
    return out


def _yaml_scalar(value: Any) -> str:
    """Quote strings so YAML keeps them as strings ("7860" stays an int only when it was one)."""
    import json

    return str(value) if isinstance(value, int) else json.dumps(str(value))


def cmd_serve(args: argparse.Namespace) -> int:
    from groundwork.recipe import load_recipe
    from serving.server import serve

    recipe = load_recipe(args.config, [*args.overrides, *serve_overrides(args)])
    opts: dict[str, Any] = {}
    if recipe.serve.engine == "openai":
        if not args.engine_url:
            from serving.engines import EngineError

            raise EngineError("--engine openai needs --engine-url http://host:port/v1")
        opts["base_url"] = args.engine_url
    if args.gguf_type:
        if recipe.serve.engine != "llamacpp":
            from serving.engines import EngineError

            raise EngineError("--gguf-type applies to --engine llamacpp")
        opts["gguf_type"] = args.gguf_type
    serve(recipe.serve, recipe.policy.model, recipe.policy.dtype, recipe.policy.system_prompt, engine_opts=opts)
    return 0
