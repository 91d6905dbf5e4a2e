"""One adapter for downstream stages: SFT and PPO LoRA adapters concatenated into one, relative to the base.

PPO trains its adapter on the SFT-merged weights; LoRA deltas add, so the pair equals one LoRA of rank
r_sft + r_ppo on the base model (peft's ``cat`` combination). Quantize, serve and evaluate can then take
``--model BASE --adapter runs/<run>/ppo/policy_adapter`` like any other adapter.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from ..models import load_causal_lm


def export_policy_adapter(base_model: str, sft_adapter: str | None, ppo_adapter: str | Path, out: Path,
                          tokenizer=None) -> Path:
    """Write the combined adapter (or a copy of the PPO adapter when there was no SFT stage) to ``out``."""
    from peft import PeftModel

    out = Path(out)
    shutil.rmtree(out, ignore_errors=True)
    if not sft_adapter:
        shutil.copytree(ppo_adapter, out)
        return out
    model = PeftModel.from_pretrained(load_causal_lm(base_model), sft_adapter, adapter_name="sft")
    model.load_adapter(str(ppo_adapter), adapter_name="ppo")
    model.add_weighted_adapter(["sft", "ppo"], [1.0, 1.0], "policy", combination_type="cat")
    with tempfile.TemporaryDirectory() as tmp:
        model.save_pretrained(tmp, selected_adapters=["policy"])
        shutil.copytree(Path(tmp) / "policy", out)
    if tokenizer is not None:
        tokenizer.save_pretrained(out)
    return out
