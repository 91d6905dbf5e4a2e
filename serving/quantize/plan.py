"""A per-tensor quantization plan: one GGUF type per layer group, and the GGUF file it describes.

Groups are the embedding (``token_embd``, also the tied output head), and per transformer block its attention
matrices (``blk.<i>.attn``) and its feed-forward matrices (``blk.<i>.ffn``); 1-D tensors (norms) stay F32 in
every plan. A group's type is a GGUF type (``f16``, ``q8_0``, ``q4_0``, ...) or ``base``: the base GGUF's own
bytes, allowed only where the adapter left every tensor of the group unchanged (then it is exact, at the base
file's speed). llama.cpp reads a type per tensor, so any plan is one file it runs directly.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from serving.quantize.errors import QuantizeError, UnsupportedArchitectureError
from serving.quantize.gguf_export import (
    GGUF_TYPES,
    _file_type,
    _qtype,
    model_arrays,
    model_tokenizer,
    open_base,
    tally,
    write_gguf,
)
from serving.quantize.gguf_mixed import same_as_base

BASE = "base"
PLAN_TYPES = (BASE, *GGUF_TYPES)
EMBEDDING_GROUP = "token_embd"
_BLOCK = re.compile(r"blk\.(\d+)\.(attn|ffn)_")


def group_of(tensor_name: str) -> str | None:
    """The plan group a GGUF tensor belongs to; None for tensors outside every group (output norm, ...)."""
    if tensor_name.startswith(EMBEDDING_GROUP + "."):
        return EMBEDDING_GROUP
    match = _BLOCK.match(tensor_name)
    return f"blk.{match.group(1)}.{match.group(2)}" if match else None


@dataclass
class QuantPlan:
    """``types``: group -> plan type; groups absent from it take ``default``."""

    types: dict[str, str] = field(default_factory=dict)
    default: str = "q8_0"

    def __post_init__(self) -> None:
        bad = sorted({t for t in [*self.types.values(), self.default] if t not in PLAN_TYPES})
        if bad:
            raise QuantizeError(f"unknown plan type(s) {bad}; choose from {', '.join(PLAN_TYPES)}")

    def type_of(self, group: str | None) -> str:
        return self.types.get(group, self.default) if group is not None else self.default

    def to_dict(self) -> dict[str, Any]:
        return {"default": self.default, "types": dict(sorted(self.types.items(), key=lambda kv: _group_key(kv[0])))}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> QuantPlan:
        if not isinstance(data, dict) or not isinstance(data.get("types", {}), dict):
            raise QuantizeError(f"a quantization plan is {{'default': type, 'types': {{group: type}}}}, got {data!r}")
        return cls(types=dict(data.get("types", {})), default=data.get("default", "q8_0"))

    def summary(self) -> dict[str, int]:
        """How many groups take each type (what a person reads first)."""
        counts: dict[str, int] = {}
        for kind in self.types.values():
            counts[kind] = counts.get(kind, 0) + 1
        return dict(sorted(counts.items()))


def _group_key(group: str) -> tuple[int, str]:
    match = re.match(r"blk\.(\d+)\.(\w+)", group)
    return (int(match.group(1)), match.group(2)) if match else (-1, group)


class PlanWriter:
    """Writes any number of plans for one merged model: each tensor is encoded once per type and reused, so a
    search that writes dozens of files pays the (numpy) quantization once."""

    def __init__(self, model, base_gguf: str | Path | None = None, tokenizer=None) -> None:
        self.model = model
        try:  # the bundled SmolLM2 file by default; a model it is not the base of has no ``base`` type
            self.base_path, self.reader = open_base(model, base_gguf, tokenizer, required=True)
        except UnsupportedArchitectureError:
            if base_gguf is not None:
                raise
            self.base_path, self.reader = None, None
        self.tokenizer = model_tokenizer(model, tokenizer) if self.reader is None else tokenizer
        base_tensors = {t.name: t for t in self.reader.tensors} if self.reader is not None else {}
        self.arrays: dict[str, np.ndarray] = dict(model_arrays(model))
        self._base = {name: base_tensors.get(name) for name in self.arrays}
        self.unchanged = {name for name, array in self.arrays.items() if same_as_base(self._base[name], array)}
        self._encoded: dict[tuple[str, str], tuple[str, Any, Any]] = {}

    @property
    def groups(self) -> list[str]:
        return sorted({g for g in map(group_of, self.arrays) if g is not None}, key=_group_key)

    def unchanged_groups(self) -> set[str]:
        """Groups whose every tensor equals the base GGUF's (those a plan may copy as ``base``)."""
        changed = {group_of(n) for n in self.arrays if n not in self.unchanged}
        return {g for g in self.groups if g not in changed}

    def _encode(self, name: str, kind: str) -> tuple[str, Any, Any]:
        array = self.arrays[name]
        if kind == BASE:
            if name not in self.unchanged:
                raise QuantizeError(f"plan copies the base bytes of {name}, which the adapter changed (or no base "
                                    "GGUF holds it); give its group a GGUF type")
            tensor = self._base[name]
            return tensor.tensor_type.name.lower(), tensor.data, tensor.tensor_type
        from gguf import GGML_QUANT_SIZES

        if array.ndim < 2 or array.shape[-1] % GGML_QUANT_SIZES[_qtype(kind)][0]:
            kind = "f32"  # norms, and rows that do not fill whole quant blocks
        key = (name, kind)
        if key not in self._encoded:
            if kind == "f32":
                data = np.ascontiguousarray(array, dtype=np.float32)
            elif kind == "f16":
                data = array.astype(np.float16)
            else:
                from gguf.quants import quantize

                data = quantize(array, _qtype(kind))
            self._encoded[key] = (kind, data, _qtype(kind))
        return self._encoded[key]

    def write(self, plan: QuantPlan, out_path: str | Path, extra_metadata: dict[str, str] | None = None
              ) -> dict[str, Any]:
        """Write ``plan`` to ``out_path``; returns the path, size and the count of tensors per type."""
        types: dict[str, int] = {}
        elements: dict[str, int] = {}
        tensors = []
        for name, array in self.arrays.items():
            kind, data, raw = self._encode(name, plan.type_of(group_of(name)) if array.ndim > 1 else "f32")
            tensors.append((name, data, raw))
            tally(types, kind)
            if array.ndim > 1:
                elements[kind] = elements.get(kind, 0) + array.size
        dominant = max(elements, key=elements.get) if elements else "f32"
        path = write_gguf(out_path, self.reader, self.model.config, _file_type(dominant), extra_metadata, tensors,
                          tokenizer=self.tokenizer)
        return {"path": str(path), "size_bytes": path.stat().st_size, "tensor_types": types,
                "base_gguf": str(self.base_path) if self.base_path else None}


__all__ = ["BASE", "EMBEDDING_GROUP", "PLAN_TYPES", "PlanWriter", "QuantPlan", "group_of"]
