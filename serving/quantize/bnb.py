"""bitsandbytes 4-bit NF4 loading, for CUDA machines only.

NF4 is a load-time format (bitsandbytes quantizes while loading), so the export writes the merged
model in full precision (``merged/``) and this path loads that folder in 4 bits. Not exercised on the
CPU-only development machines and CI: the guards in :func:`load_nf4` are the only part that runs there.
"""

from __future__ import annotations

from pathlib import Path

from serving.quantize.errors import QuantizeError


def load_nf4(merged_dir: str | Path, compute_dtype: str = "bfloat16"):
    """Load a merged model folder with 4-bit NF4 weights (double quantization) on the first CUDA device."""
    import torch

    if not torch.cuda.is_available():
        raise QuantizeError("NF4 (bitsandbytes 4-bit) needs a CUDA GPU; use the int8 artifact or a GGUF on CPU")
    try:
        import bitsandbytes  # noqa: F401
    except ImportError as exc:
        raise QuantizeError("NF4 needs bitsandbytes: pip install 'parley[cuda]'") from exc
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    config = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                                bnb_4bit_compute_dtype=getattr(torch, compute_dtype))
    model = AutoModelForCausalLM.from_pretrained(str(merged_dir), quantization_config=config, device_map={"": 0})
    model.eval()
    return model
