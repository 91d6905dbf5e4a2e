"""The LoRA adapter section shared by the SFT and PPO stages."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class LoraSection:
    """PEFT LoRA adapter shape."""

    r: int = 16
    alpha: int = 32
    dropout: float = 0.05
    target_modules: list[str] = field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    )
    # Adapt only the top N decoder layers (None = all). Backpropagation then stops at the lowest adapted
    # layer, so a CPU step costs less; the frozen lower layers still see every token.
    top_layers: int | None = None


def peft_lora_config(lora: LoraSection, model_config: Any):
    """The peft ``LoraConfig`` for ``lora`` on a model whose ``config`` is ``model_config``."""
    from peft import LoraConfig

    layers = None
    if lora.top_layers is not None:
        total = int(getattr(model_config, "num_hidden_layers", 0) or 0)
        if lora.top_layers <= 0 or not total:
            raise ValueError(f"lora.top_layers={lora.top_layers} needs a positive count and a model with "
                             f"num_hidden_layers (this one has {total or 'none'})")
        layers = list(range(max(total - lora.top_layers, 0), total))
    return LoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
                      target_modules=lora.target_modules, layers_to_transform=layers, task_type="CAUSAL_LM")
