"""Write a merged Llama-family model as a GGUF file that llama.cpp runs directly.

The base GGUF (the bundled SmolLM2 file by default) supplies the key-value metadata and, above all,
the tokenizer (vocabulary, merges, special ids, chat template), so the export needs nothing but the
``gguf`` package. Hyper-parameters are rewritten from the model's config, tensors are renamed with
gguf's own Llama name map, and q/k projections get llama.cpp's rotary row permutation (transformers
undoes it when it loads a GGUF, which is how :func:`verify_gguf` checks an export).
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from serving.quantize.errors import QuantizeError, UnsupportedArchitectureError

LLAMA_MODEL_TYPES = ("llama",)
# Types gguf can quantize in numpy; the embedding stays Q8_0 in 4/5-bit files, as in the base file.
GGUF_TYPES = ("f32", "f16", "bf16", "q8_0", "q5_1", "q5_0", "q4_1", "q4_0")
LOW_BIT_TYPES = ("q5_1", "q5_0", "q4_1", "q4_0")


@lru_cache(maxsize=2)
def _read_base(path: str, mtime_ns: int):
    """Parsing a GGUF's 49k-token vocabulary takes seconds; exports of several types share one read."""
    import gguf

    return gguf.GGUFReader(path)


def _qtype(name: str):
    from gguf import GGMLQuantizationType

    if name.lower() not in GGUF_TYPES:
        raise QuantizeError(f"unsupported GGUF type {name!r}; choose one of {', '.join(GGUF_TYPES)}")
    return GGMLQuantizationType[name.upper()]


def _file_type(name: str) -> int:
    from gguf import LlamaFileType

    return int(LlamaFileType.ALL_F32 if name == "f32" else LlamaFileType[f"MOSTLY_{name.upper()}"])


def permute_qk(weight: np.ndarray, n_head: int) -> np.ndarray:
    """llama.cpp's rotary layout: interleave the two halves of each head's rows (HF rotate_half -> GGML)."""
    rows, cols = weight.shape
    return weight.reshape(n_head, 2, rows // n_head // 2, cols).swapaxes(1, 2).reshape(rows, cols)


def unpermute_qk(weight: np.ndarray, n_head: int) -> np.ndarray:
    """Inverse of :func:`permute_qk`."""
    rows, cols = weight.shape
    return weight.reshape(n_head, rows // n_head // 2, 2, cols).swapaxes(1, 2).reshape(rows, cols)


def check_llama(config) -> None:
    if getattr(config, "model_type", None) not in LLAMA_MODEL_TYPES:
        raise UnsupportedArchitectureError(
            f"GGUF export supports Llama-architecture models only (model_type {config.model_type!r} is not); "
            "use the int8 artifact for this model"
        )


def _check_tokenizer(reader, config, tokenizer, base: Path) -> None:
    """The base GGUF's tokenizer is copied, so it must be the model's tokenizer."""
    tokens = reader.fields.get("tokenizer.ggml.tokens")
    if tokens is None:
        raise QuantizeError(f"base GGUF {base} has no tokenizer to copy")
    n = len(tokens.data)
    if n != config.vocab_size:
        raise QuantizeError(f"base GGUF {base} has {n} tokens but the model's vocabulary is {config.vocab_size}; "
                            "pass --base-gguf with the model's own tokenizer")
    if tokenizer is not None:
        sample = list(range(0, n, max(1, n // 512)))
        gguf_tokens = [tokens.contents(i) for i in sample]
        if gguf_tokens != tokenizer.convert_ids_to_tokens(sample):
            raise QuantizeError(f"base GGUF {base} has a different tokenizer than the model; pass --base-gguf")


def _hparams(config) -> dict[str, Any]:
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    rope = getattr(config, "rope_parameters", None) or {}
    theta = rope.get("rope_theta", getattr(config, "rope_theta", 10000.0))
    if rope.get("rope_type", "default") not in ("default", None):
        raise UnsupportedArchitectureError(f"rope scaling {rope.get('rope_type')!r} is not exported to GGUF yet")
    return {
        "context_length": int(config.max_position_embeddings),
        "embedding_length": int(config.hidden_size),
        "block_count": int(config.num_hidden_layers),
        "feed_forward_length": int(config.intermediate_size),
        "attention.head_count": int(config.num_attention_heads),
        "attention.head_count_kv": int(config.num_key_value_heads),
        "rope.freq_base": float(theta),
        "attention.layer_norm_rms_epsilon": float(config.rms_norm_eps),
        "vocab_size": int(config.vocab_size),
        "rope.dimension_count": int(head_dim),
    }


def _copy_metadata(writer, reader, arch: str, skip: set[str]) -> None:
    from gguf import GGUFValueType

    for key, field in reader.fields.items():
        if key.startswith("GGUF.") or key.startswith(f"{arch}.") or key in skip:
            continue
        vtype = field.types[0]
        sub_type = field.types[-1] if vtype == GGUFValueType.ARRAY else None
        writer.add_key_value(key, field.contents(), vtype, sub_type=sub_type)


def _tensor_type(name: str, array: np.ndarray, qtype: str) -> str:
    """Norms and anything that does not fit whole quant blocks stay F32; the embedding stays Q8_0 in low-bit files."""
    from gguf import GGML_QUANT_SIZES

    if array.ndim < 2:
        return "f32"
    if name == "token_embd.weight" and qtype in LOW_BIT_TYPES:
        qtype = "q8_0"
    block = GGML_QUANT_SIZES[_qtype(qtype)][0]
    return qtype if array.shape[-1] % block == 0 else "f32"


def open_base(model, base_gguf: str | Path | None, tokenizer):
    """``(path, reader)`` of the base GGUF (metadata + tokenizer source), checked against ``model``."""
    from groundwork.models import smollm2_gguf_path

    check_llama(model.config)
    base = Path(base_gguf) if base_gguf else smollm2_gguf_path()
    if not base.is_file():
        raise QuantizeError(f"base GGUF {base} not found")
    reader = _read_base(str(base), base.stat().st_mtime_ns)
    _check_tokenizer(reader, model.config, tokenizer, base)
    return base, reader


def model_arrays(model) -> Iterator[tuple[str, np.ndarray]]:
    """``(GGUF name, fp32 array in llama.cpp's layout)`` for every tensor llama.cpp reads (q/k permuted)."""
    import gguf

    config = model.config
    name_map = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, config.num_hidden_layers)
    tied = getattr(config, "tie_word_embeddings", False)
    for hf_name, tensor in model.state_dict().items():
        if tied and hf_name == "lm_head.weight":
            continue  # llama.cpp reuses token_embd when output.weight is absent
        name = name_map.get_name(hf_name, try_suffixes=(".weight", ".bias"))
        if name is None:
            if "rotary_emb" in hf_name:
                continue
            raise UnsupportedArchitectureError(f"no GGUF name for tensor {hf_name}")
        array = tensor.detach().to("cpu").float().numpy()
        if hf_name.endswith("q_proj.weight"):
            array = permute_qk(array, config.num_attention_heads)
        elif hf_name.endswith("k_proj.weight"):
            array = permute_qk(array, config.num_key_value_heads)
        yield name, array


def encode(name: str, array: np.ndarray, qtype: str) -> tuple[str, np.ndarray, Any]:
    """``(type name, data, raw GGML type)`` of ``array`` written at ``qtype`` (by :func:`_tensor_type`'s rules)."""
    from gguf.quants import quantize

    kind = _tensor_type(name, array, qtype)
    if kind == "f32":
        return kind, np.ascontiguousarray(array, dtype=np.float32), _qtype(kind)
    if kind == "f16":
        return kind, array.astype(np.float16), _qtype(kind)
    return kind, quantize(array, _qtype(kind)), _qtype(kind)


def write_gguf(out_path: str | Path, reader, config, file_type: int, extra_metadata: dict[str, str] | None,
               tensors: list[tuple[str, np.ndarray, Any]]) -> Path:
    """Write the base's metadata (tokenizer included), ``config``'s hyper-parameters and ``(name, data, type)``."""
    import gguf

    arch = gguf.MODEL_ARCH_NAMES[gguf.MODEL_ARCH.LLAMA]
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    writer = gguf.GGUFWriter(str(out_path), arch)
    _copy_metadata(writer, reader, arch, skip={"general.architecture", "general.file_type",
                                                "general.quantization_version"})
    for key, value in _hparams(config).items():
        vtype = gguf.GGUFValueType.FLOAT32 if isinstance(value, float) else gguf.GGUFValueType.UINT32
        writer.add_key_value(f"{arch}.{key}", value, vtype)
    writer.add_file_type(file_type)
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
    for key, value in (extra_metadata or {}).items():
        writer.add_string(f"parley.{key}", str(value))
    for name, data, raw_dtype in tensors:
        writer.add_tensor(name, data, raw_dtype=raw_dtype)  # uint8 data: the shape is derived from raw_dtype
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return out_path


def tally(types: dict[str, int], kind: str) -> None:
    types[kind] = types.get(kind, 0) + 1


def export_gguf(model, out_path: str | Path, qtype: str = "q8_0", base_gguf: str | Path | None = None,
                tokenizer=None, extra_metadata: dict[str, str] | None = None) -> dict[str, Any]:
    """Write ``model`` (merged, fp32) to ``out_path``; return a summary (tensor types, size)."""
    qtype = qtype.lower()
    _qtype(qtype)
    base, reader = open_base(model, base_gguf, tokenizer)
    types: dict[str, int] = {}
    tensors = []
    for name, array in model_arrays(model):
        kind, data, raw_dtype = encode(name, array, qtype)
        tensors.append((name, data, raw_dtype))
        tally(types, kind)
    out_path = write_gguf(out_path, reader, model.config, _file_type(qtype), extra_metadata, tensors)
    return {"path": str(out_path), "type": qtype, "tensor_types": types, "base_gguf": str(base),
            "size_bytes": out_path.stat().st_size}
