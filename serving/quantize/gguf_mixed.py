"""A "mixed" GGUF: the base GGUF's own bytes for every tensor the adapter left unchanged, the rest re-quantized.

The bundled SmolLM2 weights are the dequantized Q4_1 file, and a LoRA on the top layers leaves the other
layers exactly on that file's grid. Re-quantizing those to any other grid only adds noise (greedy agreement
with the tuned fp32 model drops), so this export decides per tensor: when the base GGUF holds a tensor of
that name and shape whose dequantized values equal the merged model's (in llama.cpp's q/k layout), its raw
bytes are copied with their own type; every other tensor is quantized at ``changed_type`` (Q8_0 by default)
with :func:`export_gguf`'s rules (1-D tensors F32). llama.cpp reads a type per tensor, so the file runs at
the base file's speed where it was copied.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

from serving.quantize.errors import QuantizeError
from serving.quantize.gguf_export import (
    GGUF_TYPES,
    _file_type,
    _qtype,
    encode,
    model_arrays,
    open_base,
    tally,
    write_gguf,
)

MIXED_PREFIX = "mixed-"
# Untouched weights are bit-identical after a merge; the tolerance only absorbs float rounding, far below any
# quantization step (a Q8_0 step of a 0.05-scale weight is ~4e-4).
ATOL = 1e-6


def mixed_changed_type(gguf_type: str) -> str | None:
    """``"q8_0"`` for ``"mixed-q8_0"``; None for a plain GGUF type; an error for an unknown mixed one."""
    name = gguf_type.lower()
    if not name.startswith(MIXED_PREFIX):
        return None
    changed = name.removeprefix(MIXED_PREFIX)
    if changed not in GGUF_TYPES:
        raise QuantizeError(f"unsupported GGUF type {gguf_type!r}: {MIXED_PREFIX}<type> takes one of "
                            f"{', '.join(GGUF_TYPES)}")
    return changed


def same_as_base(tensor, array: np.ndarray, atol: float = ATOL) -> bool:
    """Whether the base GGUF ``tensor`` (a ReaderTensor, or None) dequantizes to ``array``."""
    from gguf.quants import dequantize

    if tensor is None or tuple(int(d) for d in reversed(tensor.shape)) != array.shape:
        return False
    try:
        values = dequantize(tensor.data, tensor.tensor_type)
    except NotImplementedError:
        return False
    values = np.asarray(values, dtype=np.float32).reshape(array.shape)
    return bool(np.abs(values - array).max() <= atol)  # a NaN anywhere compares False: re-quantized


def _file_type_of(reader, elements: dict[str, int], changed_type: str) -> int:
    """``general.file_type`` (llama.cpp shows it, nothing more): the base's when its copied bytes hold most of
    the weights, else the re-quantized type's."""
    dominant = max(elements, key=elements.get) if elements else changed_type
    field = reader.fields.get("general.file_type")
    if dominant != changed_type and field is not None:
        return int(field.contents())
    return _file_type(changed_type)


def export_gguf_mixed(model, out_path: str | Path, changed_type: str = "q8_0", base_gguf: str | Path | None = None,
                      tokenizer=None, extra_metadata: dict[str, str] | None = None,
                      atol: float = ATOL) -> dict[str, Any]:
    """Write ``model`` (merged, fp32) to ``out_path``, copying the base GGUF's bytes for unchanged tensors.

    Returns :func:`export_gguf`'s summary plus ``copied_tensors``, ``requantized_tensors`` and
    ``requantized_blocks`` (the layer indices with at least one re-quantized tensor).
    """
    changed_type = changed_type.lower()
    _qtype(changed_type)
    base, reader = open_base(model, base_gguf, tokenizer, required=True)
    base_tensors = {t.name: t for t in reader.tensors}
    types: dict[str, int] = {}
    elements: dict[str, int] = {}
    tensors, copied, requantized, blocks = [], 0, 0, set()
    for name, array in model_arrays(model):
        source = base_tensors.get(name)
        if same_as_base(source, array, atol):
            kind, data, raw_dtype = source.tensor_type.name.lower(), source.data, source.tensor_type
            copied += 1
        else:
            kind, data, raw_dtype = encode(name, array, changed_type)
            requantized += 1
            if match := re.match(r"blk\.(\d+)\.", name):
                blocks.add(int(match.group(1)))
        tensors.append((name, data, raw_dtype))
        tally(types, kind)
        if array.ndim > 1:
            elements[kind] = elements.get(kind, 0) + array.size
    file_type = _file_type_of(reader, elements, changed_type)
    out_path = write_gguf(out_path, reader, model.config, file_type, extra_metadata, tensors)
    return {"path": str(out_path), "type": MIXED_PREFIX + changed_type, "changed_type": changed_type,
            "tensor_types": types, "base_gguf": str(base), "size_bytes": out_path.stat().st_size,
            "copied_tensors": copied, "requantized_tensors": requantized, "requantized_blocks": sorted(blocks)}


__all__ = ["MIXED_PREFIX", "export_gguf_mixed", "mixed_changed_type", "same_as_base"]
