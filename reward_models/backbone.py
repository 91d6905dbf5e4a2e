"""Loading a sequence-classification reward model and freezing its lower layers.

Only the top ``train_top_layers`` encoder layers, the pooler and the head are trained. The frozen
embeddings and lower layers are then bit-identical across the three objectives, which is what lets
scoring run them once for all three (see :mod:`reward_models.trunk`).
"""

from __future__ import annotations

import hashlib

import torch
from torch import nn

from groundwork.architectures import decoder_layers, find_architecture
from groundwork.models import load_tokenizer, resolve_model


def load_for_training(name: str):
    """A fresh ``num_labels=1`` head on ``name`` (bundled name, hub id or local dir) and its tokenizer."""
    from transformers import AutoModelForSequenceClassification

    tokenizer = load_tokenizer(name, padding_side="right")
    model = AutoModelForSequenceClassification.from_pretrained(resolve_model(name), num_labels=1)
    model.config.pad_token_id = tokenizer.pad_token_id
    return model, tokenizer


def layer_stack(model: nn.Module) -> nn.ModuleList | None:
    """The list of transformer blocks of the base model: where the architecture table says (decoder backbones),
    else the ModuleList as long as ``num_hidden_layers`` (BERT-style encoders)."""
    if find_architecture(model) is not None:
        return decoder_layers(model)
    base = getattr(model, model.base_model_prefix, model)
    n_layers = getattr(model.config, "num_hidden_layers", None)
    for module in base.modules():
        if isinstance(module, nn.ModuleList) and len(module) == n_layers:
            return module
    return None


def freeze_lower_layers(model: nn.Module, train_top_layers: int) -> int:
    """Freeze the embeddings and all but the top ``train_top_layers`` blocks; return how many blocks are frozen.

    ``train_top_layers < 0`` (or a model whose blocks cannot be found) trains everything and returns 0.
    """
    layers = layer_stack(model)
    if train_top_layers < 0 or layers is None:
        return 0
    frozen = max(0, len(layers) - train_top_layers)
    base = getattr(model, model.base_model_prefix, model)
    lower = {id(p) for block in list(layers)[:frozen] for p in block.parameters()}
    upper = {id(p) for block in list(layers)[frozen:] for p in block.parameters()}
    embeddings = base.get_input_embeddings() if hasattr(base, "get_input_embeddings") else None
    embedding_params = set()
    embedding_module = getattr(base, "embeddings", None) or embeddings
    if embedding_module is not None:
        embedding_params = {id(p) for p in embedding_module.parameters()}
    for param in base.parameters():
        if id(param) in lower or id(param) in embedding_params:
            param.requires_grad_(False)
        elif id(param) in upper or frozen == 0:
            param.requires_grad_(True)
    return frozen


def trunk_fingerprint(model: nn.Module, frozen_layers: int) -> str:
    """Hash of the frozen part (embeddings + lower blocks): equal fingerprints mean a shareable trunk."""
    if frozen_layers <= 0:
        return ""
    digest = hashlib.sha256()
    base = getattr(model, model.base_model_prefix, model)
    for name, param in base.named_parameters():
        if not param.requires_grad:
            digest.update(name.encode())
            digest.update(param.detach().to(torch.float32).contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]
