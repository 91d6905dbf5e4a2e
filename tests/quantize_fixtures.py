"""A tiny base made the way the bundled SmolLM2 is: a Q4_1 GGUF and the fp32 model dequantized from it.

The mixed GGUF export copies the base file's bytes for tensors an adapter left unchanged, which it can only
see when the fp32 base lies on that file's grid; tiny-random-llama's own fp32 weights do not.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

TINY = "tiny-random-llama"
# The seven matrices of one layer, by their GGUF names.
LAYER_MATRICES = ("attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down")


def grid_base(folder: Path) -> tuple[Path, Any]:
    """``(base-q4_1.gguf, fp32 model dequantized from it)`` for tiny-random-llama."""
    from groundwork.models import load_causal_lm
    from serving.quantize import export_gguf
    from serving.quantize.verify import load_gguf_transformers

    path = folder / "base-q4_1.gguf"
    export_gguf(load_causal_lm(TINY), path, "q4_1")
    return path, load_gguf_transformers(path)


def merge_adapter(model, adapter: str | Path):
    """A copy of ``model`` with the PEFT ``adapter`` merged into it (``model`` is left as it was)."""
    from peft import PeftModel

    return PeftModel.from_pretrained(copy.deepcopy(model), str(adapter)).merge_and_unload().eval()


def layer_matrices(layer: int) -> set[str]:
    return {f"blk.{layer}.{name}.weight" for name in LAYER_MATRICES}
