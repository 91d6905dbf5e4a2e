"""SmoothQuant-style smoothing for decoder blocks before dynamic int8 quantization.

Dynamic int8 quantizes each Linear's input per call with one scale; SmolLM2's inputs have channels
hundreds of times larger than the rest (down_proj especially), so every other channel lands on a few
int8 levels and greedy outputs drift. Dividing such channels by ``s`` and multiplying the matching
weight columns by ``s`` leaves the fp32 function unchanged but evens out the activations
(``s = max|x|^alpha / max|w|^(1 - alpha)``, Xiao et al. 2023). The division is folded into the layer
that produces the input (RMSNorm weights, ``up_proj`` rows, ``v_proj`` rows), so it costs nothing at
run time, and the statistics are needed only once, at export: reloading the artifact needs no data. Which
norms feed attention and the MLP, and their weight offset (Gemma), come from ``groundwork.architectures``;
architectures without an entry there (or with fused projections, Phi-3) are not smoothed.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from groundwork.architectures import architecture, decoder_layers, final_norm, find_architecture

CALIBRATION_PROMPTS = (
    "Where is my order? It was due last Tuesday and the tracking page has not changed.",
    "Translate to French: The refund will arrive within five business days.",
    "Can I change the delivery address after checkout?",
    "I was charged twice for the same order, please help.",
    "Translate to German: Your package has been delivered to the pickup point.",
    "What is your return policy for sale items?",
    "Translate to Spanish: Thank you for your patience while we review your case.",
    "My discount code does not work at checkout. What should I do?",
)


def _input_absmax(model: nn.Module, inputs: Sequence[torch.Tensor], names: set[str]) -> dict[str, torch.Tensor]:
    stats: dict[str, torch.Tensor] = {}
    hooks = []
    for name, module in model.named_modules():
        if name in names:
            def hook(module, args, output, name=name):
                x = args[0].detach().abs().reshape(-1, args[0].shape[-1]).amax(dim=0).float()
                stats[name] = torch.maximum(stats[name], x) if name in stats else x
            hooks.append(module.register_forward_hook(hook))
    try:
        with torch.inference_mode():
            for ids in inputs:
                model(input_ids=ids)
    finally:
        for hook in hooks:
            hook.remove()
    return stats


def _scales(act: torch.Tensor, weights: Sequence[torch.Tensor], alpha: float) -> torch.Tensor:
    w = torch.stack([x.detach().abs().amax(dim=0) for x in weights]).amax(dim=0).float()
    return (act.clamp(min=1e-5).pow(alpha) / w.clamp(min=1e-5).pow(1 - alpha)).clamp(min=1e-5)


def calibration_inputs(tokenizer, prompts: Sequence[str] = CALIBRATION_PROMPTS) -> list[torch.Tensor]:
    from serving.quantize.verify import prompt_ids

    return prompt_ids(tokenizer, prompts)


def _divide_norm(norm: nn.Module, s: torch.Tensor, offset: float) -> None:
    """Make a norm's output ``s`` times smaller: ``offset + w`` becomes ``(offset + w) / s``."""
    norm.weight.copy_((norm.weight + offset) / s - offset)


def smoothable(model: nn.Module) -> bool:
    """Whether the architecture table says how to smooth this model's layers."""
    found = find_architecture(model)
    return found is not None and found.smoothing is not None


@torch.no_grad()
def smooth_decoder(model: nn.Module, inputs: Sequence[torch.Tensor], alpha: float = 0.5) -> dict[str, float]:
    """Smooth every decoder layer in place (norms and projections named by the architecture table); returns the
    largest scale per kind."""
    config = model.config
    smoothing = architecture(model).smoothing
    if smoothing is None:
        raise ValueError(f"no smoothing for model_type {config.model_type!r} (see groundwork.architectures)")
    layers = decoder_layers(model)
    offset = smoothing.norm_offset
    names = {id(m): n for n, m in model.named_modules()}
    prefixes = [names[id(layer)] for layer in layers]
    watched = set()
    for prefix in prefixes:
        watched |= {f"{prefix}.self_attn.q_proj", f"{prefix}.self_attn.o_proj", f"{prefix}.mlp.gate_proj",
                    f"{prefix}.mlp.down_proj"}
    act = _input_absmax(model, inputs, watched)
    n_rep = config.num_attention_heads // config.num_key_value_heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    largest = {"attn_in": 0.0, "mlp_in": 0.0, "down_in": 0.0, "o_in": 0.0}
    for prefix, layer in zip(prefixes, layers, strict=True):
        attn, mlp = layer.self_attn, layer.mlp
        s = _scales(act[f"{prefix}.self_attn.q_proj"], [attn.q_proj.weight, attn.k_proj.weight,
                                                         attn.v_proj.weight], alpha)
        _divide_norm(layer.get_submodule(smoothing.attention_norm), s, offset)
        for linear in (attn.q_proj, attn.k_proj, attn.v_proj):
            linear.weight.mul_(s)
        largest["attn_in"] = max(largest["attn_in"], s.max().item())

        s = _scales(act[f"{prefix}.mlp.gate_proj"], [mlp.gate_proj.weight, mlp.up_proj.weight], alpha)
        _divide_norm(layer.get_submodule(smoothing.mlp_norm), s, offset)
        mlp.gate_proj.weight.mul_(s)
        mlp.up_proj.weight.mul_(s)
        largest["mlp_in"] = max(largest["mlp_in"], s.max().item())

        # down_proj input = act(gate) * up: scaling up_proj's output rows scales it exactly.
        s = _scales(act[f"{prefix}.mlp.down_proj"], [mlp.down_proj.weight], alpha)
        mlp.up_proj.weight.div_(s[:, None])
        if mlp.up_proj.bias is not None:
            mlp.up_proj.bias.div_(s)
        mlp.down_proj.weight.mul_(s)
        largest["down_in"] = max(largest["down_in"], s.max().item())

        # o_proj input channel (head h, dim d) comes from v_proj row (h // n_rep, d): one scale per kv channel.
        a = act[f"{prefix}.self_attn.o_proj"].view(config.num_key_value_heads, n_rep, head_dim).amax(dim=1)
        w = attn.o_proj.weight.abs().amax(dim=0).view(config.num_key_value_heads, n_rep, head_dim).amax(dim=1)
        s_kv = (a.clamp(min=1e-5).pow(alpha) / w.clamp(min=1e-5).pow(1 - alpha)).clamp(min=1e-5).reshape(-1)
        attn.v_proj.weight.div_(s_kv[:, None])
        if attn.v_proj.bias is not None:
            attn.v_proj.bias.div_(s_kv)
        s_o = s_kv.view(config.num_key_value_heads, 1, head_dim).expand(-1, n_rep, -1).reshape(-1)
        attn.o_proj.weight.mul_(s_o)
        largest["o_in"] = max(largest["o_in"], s_kv.max().item())
    return {k: round(v, 3) for k, v in largest.items()}


smooth_llama = smooth_decoder  # the name earlier callers used


@torch.no_grad()
def smooth_tied_head(model: nn.Module, inputs: Sequence[torch.Tensor], alpha: float = 0.5) -> torch.Tensor:
    """Smooth the final norm -> tied ``lm_head`` input; returns ``s`` (the head becomes ``E * s``).

    The embedding matrix ``E`` is shared, so it is left as is here: the int8 export stores ``E * s`` once
    and the embedding lookup divides by ``s`` again.
    """
    act = _input_absmax(model, inputs, {"lm_head"})["lm_head"]
    s = _scales(act, [model.get_output_embeddings().weight], alpha)
    smoothing = architecture(model).smoothing
    _divide_norm(final_norm(model), s, smoothing.norm_offset if smoothing else 0.0)
    return s
