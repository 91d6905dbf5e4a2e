"""One adapter for downstream stages: SFT and PPO LoRA adapters concatenated into one, relative to the base.

PPO trains its adapter on the SFT-merged weights; LoRA deltas add, so the pair equals one LoRA of rank
r_sft + r_ppo on the base model (peft's ``cat`` combination). Quantize, serve and evaluate can then take
``--model BASE --adapter runs/<run>/ppo/policy_adapter`` like any other adapter. The same sum with weights
mixes the PPO adapters of several runs into one policy (``dialogue.soup``).
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

from groundwork.layout import RunLayout
from groundwork.models import load_causal_lm


def chosen_ppo_adapter(ppo_dir: Path) -> Path:
    """The PPO adapter a run hands downstream: the judge-selected one when the judge watch kept one, else the last."""
    layout = RunLayout(Path(ppo_dir).parent)
    best = layout.ppo_best_adapter(Path(ppo_dir))
    return best if best.exists() else layout.ppo_adapter(Path(ppo_dir))


def export_weighted_adapter(base_model: str, sft_adapter: str | None, ppo_adapters: Sequence[str | Path],
                            weights: Sequence[float], out: Path, tokenizer=None) -> Path:
    """Write SFT + sum_i weights[i] * PPO_i as one adapter on the base model to ``out``.

    peft's ``cat`` combination stacks the scaled low-rank factors, so the sum is exact (no SVD truncation).
    """
    from peft import PeftModel

    if len(ppo_adapters) != len(weights) or not ppo_adapters:
        raise ValueError(f"{len(ppo_adapters)} PPO adapters but {len(weights)} weights")
    out = Path(out)
    shutil.rmtree(out, ignore_errors=True)
    if not sft_adapter and len(ppo_adapters) == 1 and weights[0] == 1.0:
        shutil.copytree(ppo_adapters[0], out)
        return out
    first_name, first_path = ("sft", sft_adapter) if sft_adapter else ("ppo0", ppo_adapters[0])
    model = PeftModel.from_pretrained(load_causal_lm(base_model), str(first_path), adapter_name=first_name)
    names, scales = (["sft"], [1.0]) if sft_adapter else ([], [])
    for index, path in enumerate(ppo_adapters):
        if f"ppo{index}" != first_name:
            model.load_adapter(str(path), adapter_name=f"ppo{index}")
        names.append(f"ppo{index}")
        scales.append(float(weights[index]))
    model.add_weighted_adapter(names, scales, "policy", combination_type="cat")
    with tempfile.TemporaryDirectory() as tmp:
        model.save_pretrained(tmp, selected_adapters=["policy"])
        shutil.copytree(Path(tmp) / "policy", out)
    if tokenizer is not None:
        tokenizer.save_pretrained(out)
    return out


def export_policy_adapter(base_model: str, sft_adapter: str | None, ppo_adapter: str | Path, out: Path,
                          tokenizer=None) -> Path:
    """Write the combined adapter (or a copy of the PPO adapter when there was no SFT stage) to ``out``."""
    return export_weighted_adapter(base_model, sft_adapter, [ppo_adapter], [1.0], out, tokenizer)
