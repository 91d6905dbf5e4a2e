"""The PPO policy (SFT adapter merged, fresh LoRA on top) and the truncated value model."""

from __future__ import annotations

from pathlib import Path

import torch

from groundwork.architectures import find_architecture
from groundwork.models import load_adapter, load_causal_lm
from groundwork.sections.lora import LoraSection, peft_lora_config


def load_sft_policy(model_name: str, sft_adapter: str | None, dtype: str = "float32"):
    """The SFT policy as a plain model: base weights with the SFT adapter merged in.

    Merging lets PPO's reference be "the PPO adapter disabled" (= the SFT policy) with no second copy.
    """
    model = load_causal_lm(model_name, dtype)
    if sft_adapter:
        model = load_adapter(model, sft_adapter).merge_and_unload()
    return model


def add_ppo_adapter(model, lora: LoraSection, resume_adapter: str | Path | None = None):
    """Wrap the policy with a trainable LoRA adapter (fresh, or the one saved in a checkpoint)."""
    from peft import PeftModel, get_peft_model

    if resume_adapter is not None:
        return PeftModel.from_pretrained(model, str(resume_adapter), is_trainable=True)
    return get_peft_model(model, peft_lora_config(lora, model.config))


def build_value_model(policy, num_layers: int | None, pad_token_id: int):
    """A sequence-classification copy of the policy's first ``num_layers`` decoder layers.

    The value model is run on every rollout and minibatch, so its depth is a direct PPO cost; the lower
    layers of the SFT policy are a good initialization for value prediction. Its decoder layers and head
    train; the token embeddings (49k x 576 on SmolLM2, more weights than six decoder layers) stay frozen, so
    neither their dense gradient nor their AdamW state is paid on every minibatch and in every checkpoint.
    """
    from transformers import AutoModelForSequenceClassification

    config = policy.config.__class__.from_dict(policy.config.to_dict())
    total = config.num_hidden_layers
    config.num_hidden_layers = min(num_layers or total, total)
    if hasattr(config, "layer_types") and config.layer_types:
        config.layer_types = config.layer_types[: config.num_hidden_layers]
    config.num_labels = 1
    config.pad_token_id = pad_token_id
    value = AutoModelForSequenceClassification.from_config(config)
    backbone_prefix = policy.base_model_prefix
    source = getattr(policy, backbone_prefix).state_dict()
    missing, unexpected = getattr(value, value.base_model_prefix).load_state_dict(source, strict=False)
    # The policy's layers above the value model's depth are the only keys expected to be left over.
    found = find_architecture(config)
    layers = (found.layers if found else "layers") + "."
    extra_layers = [k for k in unexpected if not k.startswith(layers)
                    or int(k[len(layers):].split(".")[0]) < config.num_hidden_layers]
    if missing or extra_layers:
        raise RuntimeError(f"value model init mismatch: missing={missing[:5]} unexpected={extra_layers[:5]}")
    torch.nn.init.zeros_(value.score.weight)
    value.get_input_embeddings().weight.requires_grad_(False)
    return value.to(next(policy.parameters()).dtype)
