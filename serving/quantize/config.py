"""The ``quantize:`` section of a recipe (what the pipeline's quantize stage writes)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class QuantizeSection:
    """Formats and GGUF types exported from the merged policy; see ``parley quantize --help``."""

    formats: list[str] = field(default_factory=lambda: ["int8", "gguf"])
    gguf_types: list[str] = field(default_factory=lambda: ["q8_0", "q4_0", "q4_1"])
    verify: bool = True
    # 4/5-bit types also as the unmerged base + a llama.cpp LoRA GGUF (keeps the tuning; see gguf_lora).
    gguf_lora: bool = True
