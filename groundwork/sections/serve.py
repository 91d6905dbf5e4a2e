"""The ``serve:`` section of a recipe: what ``parley serve`` loads and the limits it enforces.

Every value can come from YAML, ``--set serve.key=value`` or a ``parley serve`` flag, which is sugar for
that ``--set`` (applied after the others, so a flag wins). Limits live here, not in the UI, so the Gradio app
and the OpenAI-compatible API enforce the same numbers on the server side.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, get_args

# The generation engines, named once: the recipe type, ``parley serve --engine`` choices and ``load_engine``.
Engine = Literal["torch", "llamacpp", "openai"]
ENGINES: tuple[str, ...] = get_args(Engine)
# ``parley feedback export``: cap on comparison pairs from one prompt (a popular prompt, "hi", must not flood the
# reward data); ``serving.feedback.pairs`` uses the same default.
DEFAULT_MAX_PAIRS_PER_PROMPT = 100


@dataclass
class ServeSection:
    """One server: the Gradio app at ``/``, the OpenAI-compatible API at ``/v1`` and, with ``admin_auth``, the
    operator console at ``/operator``."""

    # What to load. ``model`` None = ``policy.model``; ``artifact`` is a merged/quantized export.
    engine: Engine = "torch"
    model: str | None = None
    adapter: str | None = None
    artifact: str | None = None
    # torch engine: decode with a static cache and a torch.compile'd step (compiled at start-up, 30-140 s on
    # 2 cores; int8 SmolLM2 decodes ~1.5x faster than eager).
    compile: bool = False
    # torch (eager decoding) and llamacpp engines: reuse the key/value cache of prompt openings across requests
    # (the framing every request shares, ~110 of a ~300-token support prompt; torch also keeps each request's
    # framing + KB passages, up to 8): a later prompt that opens the same way prefills only the rest. A shorter
    # time to first token.
    prefix_cache: bool = True
    # With ``prefix_cache``: memory (MB) for prefilling, at start-up, the framing followed by each KB article as
    # the first passage (in the KB's order, until full), so a request prefills only its other passages and the
    # question. About 3 MB per 60-token article for SmolLM2-135M with torch (only the positions past the framing
    # are stored), about 4 MB with llama.cpp (each opening whole); 0 = off.
    passage_cache_mb: float = 256.0
    # openai engine: base URL of the OpenAI-compatible server it fronts (e.g. http://vllm-host:8000/v1); required.
    engine_url: str | None = None
    # llamacpp engine with a ``parley quantize`` folder as ``artifact``: which GGUF to load (None = q8_0; q4_0,
    # q4_1, mixed-q8_0, ..., auto: the file of ``quantize.plan``, or <type>+lora: the low-bit base with the tuned
    # LoRA applied by llama.cpp).
    gguf_type: str | None = None
    # Name reported by /v1/models and stored with every conversation (default: derived from the model).
    served_model_name: str | None = None
    kb_dir: str = "data/kb"
    # Stop an answer at the first sentence that repeats an earlier one (the repeat is not shown); the sentence
    # being written is held back only while it opens like an earlier one (serving/repetition.py).
    drop_repeated_sentences: bool = True
    # A support answer that is only filler ("I can help you with that.") gets one more sentence, in the
    # customer's language: the help articles do not answer this, ask to talk to a human (serving/handoff.py).
    follow_up_filler: bool = True
    # A support answer that refuses a request the guard scores clearly benign (below the request model's benign
    # threshold, see risk.max_harmful_below_benign) is replaced by a way to a human colleague, in the
    # customer's language: the policy turning an ordinary customer away is its mistake, not a safety decision.
    hand_off_benign_refusals: bool = True
    # KB passages put before each question. On the project's 110 held-out support questions the right article
    # is among the first 2 for 72.7% and among the first 3 for 73.6%; each passage is ~60 prompt tokens to
    # prefill before the first token, and the SFT answers were written with 1-2 passages.
    top_k: int = 2
    db: str = "sqlite:///runs/feedback.db"
    # ``parley feedback export`` (reads ``db``): cap on comparison pairs from one prompt.
    export_max_pairs_per_prompt: int = DEFAULT_MAX_PAIRS_PER_PROMPT
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
            "export_max_pairs_per_prompt": self.export_max_pairs_per_prompt,
        }
        for name, value in positive.items():
            if value <= 0:
                raise ValueError(f"{name} must be positive, got {value}")
        if not 0 < self.port < 65536:
            raise ValueError(f"port must be 1-65535, got {self.port}")
        if self.temperature < 0 or not 0 < self.top_p <= 1:
            raise ValueError("temperature must be >= 0 and top_p in (0, 1]")
        if self.engine_url is not None and not self.engine_url.startswith(("http://", "https://")):
            raise ValueError(f"engine_url must be an http(s):// URL, got {self.engine_url!r}")
        if self.engine == "openai" and not self.engine_url:
            raise ValueError("engine 'openai' needs engine_url, the server's base URL (e.g. http://host:8000/v1)")
        if self.gguf_type is not None and (self.engine != "llamacpp" or not self.gguf_type.strip()):
            raise ValueError(f"gguf_type ({self.gguf_type!r}) applies to engine 'llamacpp' only and must name a "
                             "GGUF type (q8_0, q4_1, q4_1+lora, ...)")
        chat = set(parse_auth(self.auth)) if self.auth is not None else set()
        if self.admin_auth is not None:
            operators = parse_auth(self.admin_auth, "admin_auth")
            if chat & set(operators):
                raise ValueError("admin_auth must not repeat a user:password of auth: chat and operator "
                                 "credentials are kept apart")


    def engine_opts(self) -> dict[str, Any]:
        """The engine options this section sets: the openai engine's ``base_url``, the llamacpp ``gguf_type``."""
        opts: dict[str, Any] = {}
        if self.engine == "openai":
            opts["base_url"] = self.engine_url
        if self.gguf_type is not None:
            opts["gguf_type"] = self.gguf_type
        return opts


def parse_auth(spec: str, key: str = "auth") -> list[tuple[str, str]]:
    """``"alice:pw,bob:pw2"`` -> ``[("alice", "pw"), ("bob", "pw2")]``; rejects empty names or passwords."""
    pairs = []
    for item in str(spec).split(","):
        user, sep, password = item.strip().partition(":")
        if not sep or not user or not password:
            raise ValueError(f"{key} must look like user:password (several separated by commas)")
        pairs.append((user, password))
    return pairs
