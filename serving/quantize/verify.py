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


class LlamaCppLogits:
    """A GGUF run by llama.cpp (fp32 KV cache, one thread) behind ``model(input_ids=...).logits``."""

    def __init__(self, path: str | Path, n_ctx: int = 1024) -> None:
        from llama_cpp import Llama

        self.llm = Llama(str(path), n_ctx=n_ctx, n_threads=1, logits_all=True, type_k=0, type_v=0, verbose=False)

    def __call__(self, input_ids):
        import numpy as np
        import torch

        ids = [int(i) for i in input_ids.reshape(-1)]
        self.llm.reset()
        self.llm.eval(ids)
        logits = np.array(self.llm.scores[: len(ids)], dtype=np.float32)
        return type("Output", (), {"logits": torch.from_numpy(logits)[None]})()

    def close(self) -> None:
        self.llm.close()


def verify_gguf(reference, tokenizer, path: str | Path) -> dict[str, Any]:
    """Logit comparison with the merged model: through transformers' GGUF loader where the architecture table says
    it reads the file faithfully, else through llama.cpp (when installed), else a recorded skip."""
    from groundwork.architectures import find_architecture

    found = find_architecture(reference.config)
    if found is None or found.transformers_reads_gguf:
        return compare_logits(reference, load_gguf_transformers(path), prompt_ids(tokenizer)) | {
            "engine": "transformers"}
    import importlib.util

    if importlib.util.find_spec("llama_cpp") is None:
        return {"skipped": f"transformers cannot read {found.model_type} GGUF files back and llama-cpp-python is "
                           "not installed"}
    candidate = LlamaCppLogits(path)
    try:
        return compare_logits(reference, candidate, prompt_ids(tokenizer)) | {"engine": "llama.cpp"}
    finally:
        candidate.close()
