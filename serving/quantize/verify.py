"""Check an export against the merged model it came from, on fixed prompts (logits, top-1 agreement)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

VERIFY_PROMPTS = (
    "Where is my order? It was due last Tuesday.",
    "Translate to French: The refund will arrive within five business days.",
    "Can I change the delivery address after checkout?",
)


def prompt_ids(tokenizer, prompts=VERIFY_PROMPTS) -> list:
    from groundwork.chat_format import build_messages, render_prompt

    return [tokenizer(render_prompt(tokenizer, build_messages(p)), return_tensors="pt", add_special_tokens=False)
            ["input_ids"] for p in prompts]


def compare_logits(reference, candidate, inputs: list) -> dict[str, Any]:
    """Max and mean absolute logit difference and top-1 agreement over every prompt position."""
    import torch

    max_diff, diffs, agree, total = 0.0, [], 0, 0
    with torch.inference_mode():
        for ids in inputs:
            a, b = reference(input_ids=ids).logits.float(), candidate(input_ids=ids).logits.float()
            delta = (a - b).abs()
            max_diff = max(max_diff, delta.max().item())
            diffs.append(delta.mean().item())
            agree += (a.argmax(-1) == b.argmax(-1)).sum().item()
            total += ids.numel()
    return {"max_abs_logit_diff": round(max_diff, 5), "mean_abs_logit_diff": round(sum(diffs) / len(diffs), 5),
            "top1_agreement": round(agree / total, 4), "positions": total}


def load_gguf_transformers(path: str | Path):
    """Load a GGUF through transformers (dequantizes and undoes the q/k permutation) as an fp32 model."""
    from transformers import AutoModelForCausalLM

    path = Path(path)
    model = AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name)
    model.eval()
    return model


def verify_gguf(reference, tokenizer, path: str | Path) -> dict[str, Any]:
    return compare_logits(reference, load_gguf_transformers(path), prompt_ids(tokenizer))
