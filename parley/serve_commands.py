"""``parley serve``: each flag is sugar for ``--set serve.<key>=...`` (or ``policy.model``); flags win."""

from __future__ import annotations

import argparse
from typing import Any

from groundwork.sections.serve import ENGINES
from parley.flags import add_recipe_args, add_setting, recipe_from_args


def add_serve_command(sub: Any) -> argparse.ArgumentParser:
    """Register ``parley serve`` on the top-level subparsers."""
    serve = sub.add_parser("serve", help="Gradio chat UI at / and an OpenAI-compatible API at /v1 (one server)")
    add_recipe_args(serve)
    add_setting(serve, "--model", "-m", key="serve.model",
                help="bundled name, hub id or local directory (none = policy.model)")
    add_setting(serve, "--adapter", key="serve.adapter", help="LoRA adapter directory (merged at load time)")
    add_setting(serve, "--artifact", key="serve.artifact",
                help="quantized artifact: int8 folder (torch) or GGUF (llamacpp)")
    add_setting(serve, "--engine", key="serve.engine", choices=ENGINES, help="generation engine")
    add_setting(serve, "--gguf-type", key="serve.gguf_type",
                help="llamacpp with a parley quantize folder as --artifact: q8_0 (when none), q4_1, or q4_1+lora "
                     "(the 4-bit base with the tuned LoRA applied)")
    add_setting(serve, "--compile", key="serve.compile", action="store_const", const=True,
                help="torch engine: compiled decoding step (slower start, faster tokens)")
    add_setting(serve, "--engine-url", key="serve.engine_url",
                help="base URL of the OpenAI-compatible server for --engine openai")
    add_setting(serve, "--kb", key="serve.kb_dir", help="knowledge-base folder of *.jsonl articles")
    add_setting(serve, "--db", key="serve.db", help="feedback store URL")
    add_setting(serve, "--reward-dir", key="serve.reward_dir",
                help="run folder with the reward models: objective scores for each answer")
    add_setting(serve, "--risk-model", key="serve.risk_model",
                help="request-risk model folder (runs/<run>/risk/model): turns the safety guard on")
    add_setting(serve, "--auth", key="serve.auth", help="user:password (comma-separated for several); also the API key")
    add_setting(serve, "--admin-auth", key="serve.admin_auth",
                help="operator user:password (comma-separated for several): mounts the operator console at "
                     "/operator and /v1/operator (off without it)")
    add_setting(serve, "--host", key="serve.host", help="bind address")
    add_setting(serve, "--port", key="serve.port", type=int, help="port")
    serve.set_defaults(handler=cmd_serve)
    return serve


def cmd_serve(args: argparse.Namespace) -> int:
    from serving.server import serve

    recipe = recipe_from_args(args)
    serve(recipe.serve, recipe.policy.model, recipe.policy.dtype, recipe.policy.system_prompt)
    return 0
