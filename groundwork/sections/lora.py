"""The LoRA adapter section shared by the SFT and PPO stages."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from groundwork.architectures import LLAMA_LINEARS, find_architecture, lora_target_modules


@dataclass
class LoraSection:
    """PEFT LoRA adapter shape."""

    r: int = 16
    alpha: int = 32
    dropout: float = 0.05
    # Llama-style names; architectures with fused projections map them (groundwork.architectures, e.g. Phi-3's
    # q_proj/k_proj/v_proj -> qkv_proj).
    target_modules: list[str] = field(default_factory=lambda: list(LLAMA_LINEARS))
    # Adapt only the top N decoder layers (None = all). Backpropagation then stops at the lowest adapted
    # layer, so a CPU step costs less; the frozen lower layers still see every token.
    top_layers: int | None = None


def peft_lora_config(lora: LoraSection, model_config: Any):
    """The peft ``LoraConfig`` for ``lora`` on a model whose ``config`` is ``model_config``."""
    from peft import LoraConfig

    layers, pattern = None, None
    if lora.top_layers is not None:
        total = int(getattr(model_config, "num_hidden_layers", 0) or 0)
        if lora.top_layers <= 0 or not total:
            raise ValueError(f"lora.top_layers={lora.top_layers} needs a positive count and a model with "
                             f"num_hidden_layers (this one has {total or 'none'})")
        layers = list(range(max(total - lora.top_layers, 0), total))
        found = find_architecture(model_config)
        pattern = found.layers.rpartition(".")[2] if found else None
    return LoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
                      target_modules=lora_target_modules(lora.target_modules, model_config),
                      layers_to_transform=layers, layers_pattern=pattern, task_type="CAUSAL_LM")
