"""The decoder architectures Parley trains, scores, quantizes and serves: one table, keyed by ``model_type``.

Every stage that depends on a model's layout asks here instead of assuming Llama: LoRA target modules
(and how Llama-style names map onto fused projections), where the decoder layers and the final norm sit
under the backbone (the value model and ``lora.top_layers``), which norms feed attention and the MLP
(SmoothQuant-style smoothing before int8), whether and how llama.cpp's GGUF takes the model (its
architecture name, the rotary row permutation, norms stored with an offset), and the quirks.

Facts per type (transformers 5 module names; GGUF names as llama.cpp's converter writes them):

- ``llama`` / ``mistral``: GGUF arch ``llama``; q/k rows permuted to llama.cpp's rotary layout. Mistral's
  sliding window is not written (llama.cpp's llama graph has none): identical while a sequence fits the window.
- ``qwen2``: q/k/v biases; NEOX rotary (no permutation). ``qwen3``: no biases, per-head RMSNorm on q and k
  (``attn_q_norm`` / ``attn_k_norm``), explicit ``head_dim``.
- ``gemma2`` / ``gemma3_text``: RMSNorm computes ``x * (1 + w)``, so GGUF stores ``1 + w`` (and smoothing
  divides ``1 + w``); embeddings are scaled by ``sqrt(hidden_size)`` (llama.cpp does it too; the int8
  embedding keeps the factor); four norms per layer (the MLP's input norm is ``pre_feedforward_layernorm``).
  Gemma 2 caps attention and final logits with ``tanh``; Gemma 3 has q/k norms and local (sliding) layers with
  their own rotary base (llama.cpp fixes it at 10000 and one global layer in six).
- ``phi3``: fused ``qkv_proj`` and ``gate_up_proj`` (LoRA names ``q_proj``... map onto them; no smoothing:
  the fused rows would need per-slice scales); GGUF ``attn_qkv`` / ``ffn_up`` keep the fusion.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

LLAMA_LINEARS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass(frozen=True)
class Smoothing:
    """Which norm feeds attention's q/k/v and which feeds the MLP's gate/up (both under a decoder layer), and
    the offset the norm adds to its weight (Gemma: ``x * (1 + w)``)."""

    attention_norm: str = "input_layernorm"
    mlp_norm: str = "post_attention_layernorm"
    norm_offset: float = 0.0


@dataclass(frozen=True)
class Architecture:
    model_type: str
    # Every linear projection of a decoder layer (what "adapt everything" means for LoRA).
    lora_targets: tuple[str, ...] = LLAMA_LINEARS
    # Llama-style module names -> this architecture's (fused) module, so recipes written for Llama carry over.
    lora_aliases: dict[str, str] = field(default_factory=dict)
    # Under the backbone (``getattr(model, model.base_model_prefix)``): the decoder layers and the final norm.
    layers: str = "layers"
    final_norm: str = "norm"
    smoothing: Smoothing | None = Smoothing()
    # RMSNorm weight offset: HF stores w, the layer computes x * (offset + w); GGUF stores offset + w.
    norm_offset: float = 0.0
    # Token embeddings are multiplied by sqrt(hidden_size) on lookup (Gemma).
    scaled_embeddings: bool = False
    # GGUF: the gguf package's MODEL_ARCH member (None: no GGUF export, with ``gguf_unsupported`` saying why).
    gguf_arch: str | None = None
    gguf_unsupported: str | None = None
    # llama.cpp's Llama graph expects q/k rows in its interleaved rotary order (NEOX-style archs do not).
    permute_qk: bool = False
    # transformers' own GGUF loader reads the file back as this model (false for Qwen3: it ignores head_dim; Gemma:
    # it reads the norms differently), so exports are verified through llama.cpp instead.
    transformers_reads_gguf: bool = True
    quirks: tuple[str, ...] = ()

    @property
    def gguf_supported(self) -> bool:
        return self.gguf_arch is not None

    def lora_modules(self, names: list[str] | tuple[str, ...]) -> list[str]:
        """``names`` in this architecture's module names (aliases resolved, order kept, no duplicates)."""
        out: list[str] = []
        for name in names:
            mapped = self.lora_aliases.get(name, name)
            if mapped not in out:
                out.append(mapped)
        return out


_GEMMA_SMOOTHING = Smoothing(mlp_norm="pre_feedforward_layernorm", norm_offset=1.0)

ARCHITECTURES: dict[str, Architecture] = {a.model_type: a for a in (
    Architecture("llama", gguf_arch="LLAMA", permute_qk=True),
    Architecture("mistral", gguf_arch="LLAMA", permute_qk=True,
                 quirks=("GGUF as llama: the sliding window is not written (same outputs within the window)",)),
    Architecture("qwen2", gguf_arch="QWEN2", quirks=("q/k/v projections have biases",)),
    Architecture("qwen3", gguf_arch="QWEN3", transformers_reads_gguf=False,
                 quirks=("per-head RMSNorm on q and k", "explicit head_dim")),
    Architecture("gemma2", smoothing=_GEMMA_SMOOTHING, norm_offset=1.0, scaled_embeddings=True,
                 gguf_arch="GEMMA2", transformers_reads_gguf=False,
                 quirks=("norms compute x * (1 + w)", "embeddings scaled by sqrt(hidden_size)",
                         "attention and final logit soft-capping", "alternating sliding-window layers")),
    Architecture("gemma3_text", smoothing=_GEMMA_SMOOTHING, norm_offset=1.0, scaled_embeddings=True,
                 gguf_arch="GEMMA3", transformers_reads_gguf=False,
                 quirks=("norms compute x * (1 + w), q/k norms too", "embeddings scaled by sqrt(hidden_size)",
                         "5 local (sliding, rotary base 10000) : 1 global layers")),
    Architecture("phi3", lora_targets=("qkv_proj", "o_proj", "gate_up_proj", "down_proj"),
                 lora_aliases={"q_proj": "qkv_proj", "k_proj": "qkv_proj", "v_proj": "qkv_proj",
                               "gate_proj": "gate_up_proj", "up_proj": "gate_up_proj"},
                 smoothing=None, gguf_arch="PHI3",
                 quirks=("fused qkv_proj and gate_up_proj", "no int8 smoothing (fused projections)")),
)}
MODEL_TYPES = tuple(ARCHITECTURES)


class UnknownArchitectureError(ValueError):
    """A model type outside :data:`ARCHITECTURES`."""


def model_type_of(config_or_model: Any) -> str | None:
    config = getattr(config_or_model, "config", config_or_model)
    return getattr(config, "model_type", None)


def find_architecture(config_or_model: Any) -> Architecture | None:
    """The table entry for a model or its config (None for a type the table does not list)."""
    return ARCHITECTURES.get(model_type_of(config_or_model) or "")


def architecture(config_or_model: Any) -> Architecture:
    """The table entry for a model or its config; an error naming the supported types otherwise."""
    found = find_architecture(config_or_model)
    if found is None:
        raise UnknownArchitectureError(f"model_type {model_type_of(config_or_model)!r} is not one of the supported "
                                       f"architectures ({', '.join(MODEL_TYPES)})")
    return found


def lora_target_modules(names: list[str] | tuple[str, ...], config_or_model: Any) -> list[str]:
    """Recipe LoRA targets in the model's module names (unknown types keep the names as given)."""
    found = find_architecture(config_or_model)
    return found.lora_modules(names) if found else list(names)


def decoder_layers(model: Any):
    """The decoder layers (a ModuleList) of a causal LM or sequence-classification model."""
    backbone = getattr(model, model.base_model_prefix, model)
    found = find_architecture(model)
    return backbone.get_submodule(found.layers if found else "layers")


def final_norm(model: Any):
    backbone = getattr(model, model.base_model_prefix, model)
    found = find_architecture(model)
    return backbone.get_submodule(found.final_norm if found else "norm")


def embedding_multiplier(config: Any) -> float:
    """The factor the model applies to looked-up token embeddings (sqrt(hidden_size) for Gemma, else 1)."""
    found = find_architecture(config)
    return float(config.hidden_size) ** 0.5 if found and found.scaled_embeddings else 1.0


__all__ = ["ARCHITECTURES", "LLAMA_LINEARS", "MODEL_TYPES", "Architecture", "Smoothing", "UnknownArchitectureError",
           "architecture", "decoder_layers", "embedding_multiplier", "final_norm", "find_architecture",
           "lora_target_modules", "model_type_of"]
