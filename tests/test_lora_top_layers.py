"""``lora.top_layers``: only the top decoder layers get adapters, and SFT + PPO adapters still combine."""

from __future__ import annotations

import pytest
import torch
from peft import PeftModel, get_peft_model

from dialogue.ppo.export import export_policy_adapter
from groundwork.models import TINY_POLICY, load_causal_lm
from groundwork.sections.lora import LoraSection, peft_lora_config


def _adapted_layers(model) -> set[int]:
    return {int(name.split(".layers.")[1].split(".")[0]) for name, _ in model.named_parameters() if "lora_" in name}


def test_only_the_top_layers_are_adapted():
    model = load_causal_lm(TINY_POLICY)
    adapted = get_peft_model(model, peft_lora_config(LoraSection(r=4, alpha=8, top_layers=1), model.config))
    assert _adapted_layers(adapted) == {model.config.num_hidden_layers - 1}
    every = get_peft_model(load_causal_lm(TINY_POLICY), peft_lora_config(LoraSection(r=4, alpha=8), model.config))
    assert _adapted_layers(every) == set(range(model.config.num_hidden_layers))


def test_top_layers_must_be_positive():
    with pytest.raises(ValueError, match="top_layers"):
        peft_lora_config(LoraSection(top_layers=0), load_causal_lm(TINY_POLICY).config)


def test_top_layer_adapters_export_as_one_adapter(tmp_path):
    section = LoraSection(r=4, alpha=8, top_layers=1)
    saved = []
    for name, seed in (("sft", 1), ("ppo", 2)):
        torch.manual_seed(seed)
        base = load_causal_lm(TINY_POLICY)
        model = get_peft_model(base, peft_lora_config(section, base.config))
        for pname, param in model.named_parameters():
            if "lora_B" in pname:
                torch.nn.init.normal_(param, std=0.5)
        model.save_pretrained(tmp_path / name)
        saved.append(tmp_path / name)
    combined = export_policy_adapter(TINY_POLICY, str(saved[0]), saved[1], tmp_path / "policy")
    ids = torch.tensor([[1, 5, 9, 13]])
    stacked = PeftModel.from_pretrained(load_causal_lm(TINY_POLICY), str(saved[0])).merge_and_unload()
    stacked = PeftModel.from_pretrained(stacked, str(saved[1])).merge_and_unload()
    one = PeftModel.from_pretrained(load_causal_lm(TINY_POLICY), str(combined)).merge_and_unload()
    with torch.no_grad():
        torch.testing.assert_close(one(ids).logits, stacked(ids).logits, atol=1e-4, rtol=1e-4)
