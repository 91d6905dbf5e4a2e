"""A PEFT LoRA adapter as a llama.cpp LoRA GGUF, served on top of the unmerged low-bit base.

Why: the bundled SmolLM2 weights come from a Q4_1 GGUF, so they already sit exactly on the Q4_1 grid,
and a PPO/SFT LoRA moves them by less than half a Q4_1 step. Merging and re-quantizing to Q4_1 rounds
almost every change back to the base value (on a tuned adapter the error of the re-quantized delta is as
large as the delta itself), and the "tuned" 4-bit file answers like the base model. Kept as a
separate adapter, the delta is applied exactly at run time by llama.cpp (``lora_path``) while the base
stays 4-bit.

Layout (what llama.cpp's adapter loader checks): ``general.type = adapter``, ``adapter.type = lora``,
``adapter.lora.alpha`` (llama.cpp scales by ``alpha / rank``, as PEFT does), and for each adapted base
tensor ``<gguf name>.lora_a`` (rank x in) and ``<gguf name>.lora_b`` (out x rank), with the rows of
q/k's ``lora_b`` in llama.cpp's rotary order like the base weights.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import numpy as np

from serving.quantize.errors import QuantizeError, UnsupportedArchitectureError
from serving.quantize.gguf_export import _gguf_arch, gguf_architecture, permute_qk

ADAPTER_FILE = "adapter_model.safetensors"
_KEY = re.compile(r"^(?:base_model\.model\.)?(?P<module>.+)\.lora_(?P<part>[AB])(?:\.default)?\.weight$")


def _adapter_scaling(folder: Path) -> tuple[int, float]:
    """``(rank, scaling)`` of a PEFT LoRA; refuses what a plain ``alpha / rank`` LoRA cannot express."""
    from peft import LoraConfig

    try:
        config = LoraConfig.from_pretrained(str(folder))
    except (ValueError, TypeError) as exc:
        raise QuantizeError(f"{folder}: only LoRA adapters export to GGUF ({exc})") from exc
    if config.use_dora:
        raise QuantizeError("DoRA adapters cannot be applied by llama.cpp; export a merged GGUF instead")
    if config.rank_pattern or config.alpha_pattern:
        raise QuantizeError("per-module rank/alpha patterns are not supported in the LoRA GGUF export")
    rank = int(config.r)
    return rank, float(config.lora_alpha) / (math.sqrt(rank) if config.use_rslora else rank)


def export_gguf_lora(adapter_dir: str | Path, config, out_path: str | Path, dtype: str = "f16") -> dict[str, Any]:
    """Write the LoRA in ``adapter_dir`` (for a model with ``config``) as a llama.cpp LoRA GGUF.

    ``dtype`` f16 (default, half the file; what llama.cpp's own converter writes) or f32 (exact).
    """
    import gguf
    from safetensors.numpy import load_file

    found = gguf_architecture(config)
    if dtype not in ("f16", "f32"):
        raise QuantizeError(f"LoRA GGUF dtype must be f16 or f32, not {dtype!r}")
    store = np.float16 if dtype == "f16" else np.float32
    folder = Path(adapter_dir)
    if not (folder / ADAPTER_FILE).is_file():
        raise QuantizeError(f"{adapter_dir}: no {ADAPTER_FILE} (a PEFT LoRA adapter folder is expected)")
    rank, scaling = _adapter_scaling(folder)
    pairs: dict[str, dict[str, np.ndarray]] = {}
    for key, array in load_file(str(folder / ADAPTER_FILE)).items():
        match = _KEY.match(key)
        if not match:
            raise UnsupportedArchitectureError(f"adapter tensor {key} is not a LoRA A/B matrix")
        pairs.setdefault(match["module"], {})[match["part"]] = array.astype(np.float32)

    name_map = gguf.get_tensor_name_map(_gguf_arch(found), config.num_hidden_layers)
    arch = gguf.MODEL_ARCH_NAMES[_gguf_arch(found)]
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    writer = gguf.GGUFWriter(str(out_path), arch)
    writer.add_string("general.type", "adapter")
    writer.add_string("adapter.type", "lora")
    writer.add_float32("adapter.lora.alpha", scaling * rank)  # llama.cpp applies alpha / rank
    for module, parts in sorted(pairs.items()):
        if set(parts) != {"A", "B"}:
            raise QuantizeError(f"adapter module {module} lacks its lora_{'B' if 'A' in parts else 'A'} matrix")
        name = name_map.get_name(f"{module}.weight", try_suffixes=(".weight",))
        if name is None:
            raise UnsupportedArchitectureError(f"no GGUF name for adapted module {module}")
        lora_b = parts["B"]
        if found.permute_qk and module.endswith("q_proj"):
            lora_b = permute_qk(lora_b, config.num_attention_heads)
        elif found.permute_qk and module.endswith("k_proj"):
            lora_b = permute_qk(lora_b, config.num_key_value_heads)
        writer.add_tensor(f"{name}.lora_a", np.ascontiguousarray(parts["A"], dtype=store))
        writer.add_tensor(f"{name}.lora_b", np.ascontiguousarray(lora_b, dtype=store))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return {"path": str(out_path), "modules": len(pairs), "rank": rank, "scaling": scaling, "dtype": dtype,
            "size_bytes": out_path.stat().st_size}
