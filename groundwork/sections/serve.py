"""The ``serve:`` section of a recipe: what ``parley serve`` loads and the limits it enforces.

Every value can come from YAML, ``--set serve.key=value`` or a dedicated ``parley serve`` flag (flags
win). Limits live here, not in the UI, so the Gradio app and the OpenAI-compatible API enforce the same
numbers on the server side.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass
class ServeSection:
    """One server: the Gradio app at ``/``, the OpenAI-compatible API at ``/v1`` and, with ``admin_auth``, the
    operator console at ``/operator``."""

    # What to load. ``model`` None = ``policy.model``; ``artifact`` is a merged/quantized export.
    engine: Literal["torch", "llamacpp", "openai"] = "torch"
    model: str | None = None
    adapter: str | None = None
    artifact: str | None = None
    # torch engine: decode with a static cache and a torch.compile'd step (compiled at start-up, 30-140 s on
    # 2 cores; int8 SmolLM2 decodes ~1.5x faster than eager).
    compile: bool = False
    # Name reported by /v1/models and stored with every conversation (default: derived from the model).
    served_model_name: str | None = None
    kb_dir: str = "data/kb"
    top_k: int = 3
    db: str = "sqlite:///runs/feedback.db"
    # Reward models (``runs/<run>``, holding reward-<objective>/model): each answer's objective scores.
    reward_dir: str | None = None
    # Safety guard: the request-risk model (``runs/<run>/risk/model``); off when None. ``risk_threshold`` None =
    # the threshold saved with the model (chosen on its calib split by the rule in its risk.json).
    risk_model: str | None = None
    risk_threshold: float | None = None
    # "user:pass" (comma-separated for several users); None = no login.
    auth: str | None = None
    # Operator credentials, same format: they open the operator console (feedback, export, handoff tickets) at
    # /operator and its /v1/operator API, and nothing else. None = no operator console at all.
    admin_auth: str | None = None
    host: str = "127.0.0.1"
    port: int = 7860
    # Public URL prefix when served behind a reverse proxy under a sub-path ("" = served at the root).
    root_path: str = ""
    # Limits (UI and API alike).
    max_message_chars: int = 2000
    max_turns: int = 20
    max_new_tokens: int = 256
    request_timeout_s: float = 60.0
    max_request_bytes: int = 2_000_000
    # Queueing: at most ``concurrency`` generations at once, ``queue_size`` more waiting; the rest hear "busy".
    concurrency: int = 2
    queue_size: int = 16
    # Sampling defaults (the API may override within the limits).
    temperature: float = 0.0
    top_p: float = 1.0

    def __post_init__(self) -> None:
        positive = {
            "top_k": self.top_k,
            "max_message_chars": self.max_message_chars,
            "max_turns": self.max_turns,
            "max_new_tokens": self.max_new_tokens,
            "request_timeout_s": self.request_timeout_s,
            "max_request_bytes": self.max_request_bytes,
            "concurrency": self.concurrency,
            "queue_size": self.queue_size,
        }
        for name, value in positive.items():
            if value <= 0:
                raise ValueError(f"{name} must be positive, got {value}")
        if not 0 < self.port < 65536:
            raise ValueError(f"port must be 1-65535, got {self.port}")
        if self.temperature < 0 or not 0 < self.top_p <= 1:
            raise ValueError("temperature must be >= 0 and top_p in (0, 1]")
        chat = set(parse_auth(self.auth)) if self.auth is not None else set()
        if self.admin_auth is not None:
            operators = parse_auth(self.admin_auth, "admin_auth")
            if chat & set(operators):
                raise ValueError("admin_auth must not repeat a user:password of auth: chat and operator "
                                 "credentials are kept apart")


def parse_auth(spec: str, key: str = "auth") -> list[tuple[str, str]]:
    """``"alice:pw,bob:pw2"`` -> ``[("alice", "pw"), ("bob", "pw2")]``; rejects empty names or passwords."""
    pairs = []
    for item in str(spec).split(","):
        user, sep, password = item.strip().partition(":")
        if not sep or not user or not password:
            raise ValueError(f"{key} must look like user:password (several separated by commas)")
        pairs.append((user, password))
    return pairs
