"""``load_engine(kind, ...)``: one entry point for the app, the API and the benchmark."""

from __future__ import annotations

from typing import Any

from groundwork.sections.serve import ENGINES
from serving.engines.base import Engine
from serving.engines.errors import EngineError


def load_engine(kind: str, model: str | None = None, adapter: str | None = None, artifact: str | None = None,
                **opts: Any) -> Engine:
    """Build an engine.

    - ``torch``: ``model`` (+ ``adapter``, merged) in ``dtype`` (float32/bfloat16), or an int8 ``artifact``.
    - ``llamacpp``: ``artifact`` is a ``.gguf`` or a ``parley quantize`` folder (``gguf_type`` picks the file:
      ``model-<type>.gguf`` for q8_0, q4_0, mixed-q8_0, ...; ``<type>+lora`` the base + LoRA pair).
    - ``openai``: ``model`` is the served model name; ``base_url`` (and ``api_key``) in ``opts``.
    """
    if kind == "torch":
        from serving.engines.torch_engine import TorchEngine

        return TorchEngine.from_pretrained(model, adapter=adapter, artifact=artifact, **opts)
    if kind == "llamacpp":
        from serving.engines.llamacpp_engine import LlamaCppEngine, find_base_and_lora, find_gguf, tokenizer_for_gguf

        if artifact is None:
            raise EngineError("the llamacpp engine needs a GGUF artifact; make one with: parley quantize")
        if adapter is not None:
            raise EngineError("llama.cpp serves merged GGUF files: merge the adapter with parley quantize first")
        gguf_type = opts.pop("gguf_type", "q8_0")
        if gguf_type.endswith("+lora"):  # unmerged low-bit base + the adapter applied by llama.cpp
            path, opts["lora_path"] = find_base_and_lora(artifact, gguf_type.removesuffix("+lora"))
        else:
            path = find_gguf(artifact, gguf_type)
        tokenizer = opts.pop("tokenizer", None) or tokenizer_for_gguf(path, model)
        return LlamaCppEngine(path, tokenizer=tokenizer, **opts)
    if kind == "openai":
        from serving.engines.openai_engine import OpenAIEngine

        if not model or "base_url" not in opts:
            raise EngineError("the openai engine needs model= (served name) and base_url=")
        return OpenAIEngine(model, **opts)
    raise EngineError(f"unknown engine {kind!r}; choose one of {', '.join(ENGINES)}")
