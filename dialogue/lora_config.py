"""The LoRA adapter section shared by the SFT and PPO stages."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class LoraSection:
    """PEFT LoRA adapter shape."""

    r: int = 16
    alpha: int = 32
    dropout: float = 0.05
    target_modules: list[str] = field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    )
