"""Write a merged model of any architecture in ``groundwork.architectures`` as a GGUF file llama.cpp runs directly.

The tokenizer metadata (vocabulary, merges, special ids, chat template) is written from the model's Hugging
Face tokenizer (:mod:`.gguf_vocab`), so the export needs nothing but the ``gguf`` package; a base GGUF
(``base_gguf``) may supply the metadata and tokenizer instead, and the mixed export (:mod:`.gguf_mixed`)
needs one for its bytes. Hyper-parameters come from the model's config, written under the architecture's
GGUF name; tensors are renamed with gguf's own name map for that architecture; the table says where
llama.cpp wants q/k rows in its rotary order (Llama, Mistral; transformers undoes the permutation when it
loads a GGUF) and where norms are stored with an offset (Gemma's ``1 + w``).
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from groundwork.architectures import MODEL_TYPES, Architecture, find_architecture
from serving.quantize.errors import QuantizeError, UnsupportedArchitectureError

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


def gguf_architecture(config) -> Architecture:
    """The table entry of an architecture llama.cpp runs; one clear error for any other."""
    found = find_architecture(config)
    model_type = getattr(config, "model_type", None)
    if found is None:
        raise UnsupportedArchitectureError(f"GGUF export does not know model_type {model_type!r} (supported: "
                                           f"{', '.join(MODEL_TYPES)}); use the int8 artifact for this model")
    if not found.gguf_supported:
        raise UnsupportedArchitectureError(f"GGUF export is not available for model_type {model_type!r}: "
                                           f"{found.gguf_unsupported or 'llama.cpp has no such architecture'}")
    return found


def check_gguf(config) -> Architecture:
    """Raise :class:`UnsupportedArchitectureError` unless ``config`` can be written (architecture, rotary, caps)."""
    found = gguf_architecture(config)
    _hparams(config, found)
    return found


def _gguf_arch(found: Architecture):
    import gguf

    return gguf.MODEL_ARCH[found.gguf_arch]


def gguf_arch_name(config) -> str:
    import gguf

    return gguf.MODEL_ARCH_NAMES[_gguf_arch(gguf_architecture(config))]


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


def _rope(config) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """``(global rotary parameters, local/sliding-layer ones or None)`` from a transformers 5 (or 4) config."""
    rope = getattr(config, "rope_parameters", None) or {}
    if "full_attention" in rope:  # per layer type (Gemma 3)
        return rope["full_attention"] or {}, rope.get("sliding_attention")
    if not rope:
        rope = {"rope_theta": getattr(config, "rope_theta", 10000.0),
                **(getattr(config, "rope_scaling", None) or {})}
    return rope, None


def _check_rope(rope: dict[str, Any]) -> None:
    if rope.get("rope_type", rope.get("type", "default")) not in ("default", None):
        raise UnsupportedArchitectureError(f"rope scaling {rope.get('rope_type', rope.get('type'))!r} is not "
                                           "exported to GGUF yet")


def _hparams(config, found: Architecture | None = None) -> dict[str, Any]:
    """``{key without the arch prefix: value}`` of the hyper-parameters llama.cpp reads for this architecture."""
    found = found or gguf_architecture(config)
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    rope, local_rope = _rope(config)
    _check_rope(rope)
    rotary = int(head_dim * float(rope.get("partial_rotary_factor", getattr(config, "partial_rotary_factor", 1.0)
                                       or 1.0)))
    params: dict[str, Any] = {
        "context_length": int(config.max_position_embeddings),
        "embedding_length": int(config.hidden_size),
        "block_count": int(config.num_hidden_layers),
        "feed_forward_length": int(config.intermediate_size),
        "attention.head_count": int(config.num_attention_heads),
        "attention.head_count_kv": int(getattr(config, "num_key_value_heads", None) or config.num_attention_heads),
        "attention.key_length": int(head_dim),
        "attention.value_length": int(head_dim),
        "rope.freq_base": float(rope.get("rope_theta", 10000.0)),
        "attention.layer_norm_rms_epsilon": float(config.rms_norm_eps),
        "vocab_size": int(config.vocab_size),
        "rope.dimension_count": rotary,
    }
    arch = found.gguf_arch
    if arch in ("GEMMA2", "GEMMA3"):
        # llama.cpp scales queries by 1/sqrt(head_dim) for any size it does not recognize (27B excepted).
        scalar = getattr(config, "query_pre_attn_scalar", head_dim)
        if scalar != head_dim:
            raise UnsupportedArchitectureError(f"{config.model_type}: query_pre_attn_scalar={scalar} != head_dim="
                                               f"{head_dim} is not expressible in GGUF")
        params["attention.sliding_window"] = int(config.sliding_window)
        types = list(getattr(config, "layer_types", None) or [])
        period = 2 if arch == "GEMMA2" else 6  # llama.cpp's fixed local:global pattern
        expected = ["full_attention" if (i + 1) % period == 0 else "sliding_attention" for i in range(len(types))]
        if types and types != expected:
            raise UnsupportedArchitectureError(f"{config.model_type}: layer_types differ from llama.cpp's fixed "
                                               f"pattern (one global layer in {period})")
    if arch == "GEMMA2":
        for key in ("attn_logit_softcapping", "final_logit_softcapping"):
            value = getattr(config, key, None)
            if not value:
                raise UnsupportedArchitectureError(f"gemma2 without {key} is not expressible in GGUF")
            params[key] = float(value)
    if arch == "GEMMA3":
        if local_rope is not None:
            _check_rope(local_rope)
            if float(local_rope.get("rope_theta", 10000.0)) != 10000.0:
                raise UnsupportedArchitectureError("gemma3: llama.cpp fixes the local layers' rotary base at 10000")
        if getattr(config, "final_logit_softcapping", None):
            params["final_logit_softcapping"] = float(config.final_logit_softcapping)
        if getattr(config, "attn_logit_softcapping", None):
            raise UnsupportedArchitectureError("gemma3 with attention soft-capping is not expressible in GGUF")
    if arch == "PHI3":
        if getattr(config, "sliding_window", None):
            params["attention.sliding_window"] = int(config.sliding_window)
        original = getattr(config, "original_max_position_embeddings", None)
        if original:
            params["rope.scaling.original_context_length"] = int(original)
    return params


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


def open_base(model, base_gguf: str | Path | None, tokenizer, required: bool = False):
    """``(path, reader)`` of the base GGUF (metadata + tokenizer source), checked against ``model``.

    Without ``base_gguf``: ``(None, None)`` (the tokenizer is written from the HF files), unless ``required``
    (the mixed export), where the bundled SmolLM2 file is the default.
    """
    from groundwork.models import smollm2_gguf_path

    found = check_gguf(model.config)
    if base_gguf is None and not required:
        return None, None
    if base_gguf is None and found.gguf_arch != "LLAMA":
        raise UnsupportedArchitectureError("no base GGUF for this model (the bundled SmolLM2 file is a Llama); "
                                           "set quantize.base_gguf")
    base = Path(base_gguf) if base_gguf else smollm2_gguf_path()
    if not base.is_file():
        raise QuantizeError(f"base GGUF {base} not found")
    reader = _read_base(str(base), base.stat().st_mtime_ns)
    try:
        _check_tokenizer(reader, model.config, tokenizer, base)
    except QuantizeError as exc:
        if base_gguf is None:  # the default base is not this model's: a skip, not a failure
            raise UnsupportedArchitectureError(f"the bundled SmolLM2 GGUF is not this model's base ({exc})") from exc
        raise
    return base, reader


def model_arrays(model) -> Iterator[tuple[str, np.ndarray]]:
    """``(GGUF name, fp32 array in llama.cpp's layout)`` for every tensor llama.cpp reads (q/k permuted where the
    architecture needs it, offset norms stored as ``offset + w``)."""
    import gguf

    config = model.config
    found = gguf_architecture(config)
    name_map = gguf.get_tensor_name_map(_gguf_arch(found), config.num_hidden_layers)
    tied = getattr(config, "tie_word_embeddings", False)
    n_kv = getattr(config, "num_key_value_heads", None) or config.num_attention_heads
    for hf_name, tensor in model.state_dict().items():
        if tied and hf_name == "lm_head.weight":
            continue  # llama.cpp reuses token_embd when output.weight is absent
        name = name_map.get_name(hf_name, try_suffixes=(".weight", ".bias"))
        if name is None:
            if "rotary_emb" in hf_name:
                continue
            raise UnsupportedArchitectureError(f"no GGUF name for tensor {hf_name} ({config.model_type})")
        array = tensor.detach().to("cpu").float().numpy()
        if found.permute_qk and hf_name.endswith("q_proj.weight"):
            array = permute_qk(array, config.num_attention_heads)
        elif found.permute_qk and hf_name.endswith("k_proj.weight"):
            array = permute_qk(array, n_kv)
        elif found.norm_offset and array.ndim == 1 and "norm" in hf_name:
            array = array + np.float32(found.norm_offset)
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


def model_tokenizer(model, tokenizer=None):
    """The tokenizer whose metadata goes into the GGUF: the one given, else the one saved with the model."""
    if tokenizer is not None:
        return tokenizer
    from groundwork.models import load_tokenizer

    source = getattr(model, "name_or_path", None) or getattr(model.config, "_name_or_path", None)
    if not source:
        raise QuantizeError("no tokenizer for the GGUF: pass the model's tokenizer or set quantize.base_gguf")
    return load_tokenizer(source)


def write_gguf(out_path: str | Path, reader, config, file_type: int, extra_metadata: dict[str, str] | None,
               tensors: list[tuple[str, np.ndarray, Any]], tokenizer=None) -> Path:
    """Write ``config``'s hyper-parameters, the tokenizer (the base ``reader``'s metadata, or ``tokenizer``'s when
    there is no base) and ``(name, data, type)``."""
    import gguf

    from serving.quantize.gguf_vocab import write_hf_tokenizer

    found = gguf_architecture(config)
    arch = gguf.MODEL_ARCH_NAMES[_gguf_arch(found)]
    params = _hparams(config, found)
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    writer = gguf.GGUFWriter(str(out_path), arch)
    try:
        if reader is not None:
            _copy_metadata(writer, reader, arch, skip={"general.architecture", "general.file_type",
                                                        "general.quantization_version"})
        elif tokenizer is None:
            raise QuantizeError("write_gguf needs a base GGUF reader or the model's tokenizer")
        else:
            write_hf_tokenizer(writer, tokenizer, int(config.vocab_size))
        for key, value in params.items():
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
    except BaseException:
        writer.close()
        out_path.unlink(missing_ok=True)
        raise
    writer.close()
    return out_path


def tally(types: dict[str, int], kind: str) -> None:
    types[kind] = types.get(kind, 0) + 1


def export_gguf(model, out_path: str | Path, qtype: str = "q8_0", base_gguf: str | Path | None = None,
                tokenizer=None, extra_metadata: dict[str, str] | None = None) -> dict[str, Any]:
    """Write ``model`` (merged, fp32) to ``out_path``; return a summary (tensor types, size, tokenizer source)."""
    qtype = qtype.lower()
    _qtype(qtype)
    base, reader = open_base(model, base_gguf, tokenizer)
    if reader is None:
        tokenizer = model_tokenizer(model, tokenizer)
    types: dict[str, int] = {}
    tensors = []
    for name, array in model_arrays(model):
        kind, data, raw_dtype = encode(name, array, qtype)
        tensors.append((name, data, raw_dtype))
        tally(types, kind)
    out_path = write_gguf(out_path, reader, model.config, _file_type(qtype), extra_metadata, tensors, tokenizer)
    return {"path": str(out_path), "type": qtype, "tensor_types": types, "arch": gguf_arch_name(model.config),
            "base_gguf": str(base) if base else None,
            "tokenizer": "base GGUF" if base else "written from the HF tokenizer",
            "size_bytes": out_path.stat().st_size}
