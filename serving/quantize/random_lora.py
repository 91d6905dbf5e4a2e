"""A LoRA adapter with random non-zero ``B`` matrices, for tests and benchmarks without a trained adapter.

PEFT initializes ``B`` to zero, which would make merging a no-op and hide merge or export bugs.
"""

from __future__ import annotations

from pathlib import Path

from groundwork.architectures import LLAMA_LINEARS, lora_target_modules

ALL_LINEAR = LLAMA_LINEARS  # Llama-style names; mapped onto fused modules (Phi-3) by the architecture table


def make_random_lora(model: str, out_dir: str | Path, r: int = 16, scale: float = 0.02, seed: int = 0,
                     target_modules: tuple[str, ...] = ALL_LINEAR,
                     layers_to_transform: tuple[int, ...] | None = None) -> Path:
    """Save a LoRA adapter for ``model`` whose update is small but non-zero on every target module
    (of the ``layers_to_transform`` layers only, when given, as PPO's top-layer adapters)."""
    import torch
    from peft import LoraConfig, get_peft_model

    from groundwork.models import load_causal_lm

    torch.manual_seed(seed)
    base = load_causal_lm(model)
    layers = list(layers_to_transform) if layers_to_transform is not None else None
    targets = lora_target_modules(target_modules, base.config)
    peft_model = get_peft_model(base, LoraConfig(r=r, lora_alpha=2 * r, target_modules=targets,
                                                 lora_dropout=0.0, task_type="CAUSAL_LM", layers_to_transform=layers))
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_B" in name:
                param.normal_(0.0, scale)
    out = Path(out_dir)
    peft_model.save_pretrained(out)
    return out
