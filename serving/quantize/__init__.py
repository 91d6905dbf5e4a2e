"""Merge a LoRA adapter and export it for serving: int8 for PyTorch on CPU, GGUF for llama.cpp, NF4 on CUDA.

Names are imported lazily so that ``parley --help`` (which imports :mod:`parley.quantize_commands`) stays fast.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "QuantizeError": "errors",
    "UnsupportedArchitectureError": "errors",
    "QuantizeSettings": "export",
    "quantize": "export",
    "export_gguf": "gguf_export",
    "export_gguf_mixed": "gguf_mixed",
    "permute_qk": "gguf_export",
    "unpermute_qk": "gguf_export",
    "is_int8_artifact": "int8",
    "load_int8": "int8",
    "save_int8": "int8",
    "read_manifest": "manifest",
    "adapter_sha256": "merge",
    "load_merged": "merge",
    "load_nf4": "bnb",
    "make_random_lora": "random_lora",
    "verify_gguf": "verify",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
