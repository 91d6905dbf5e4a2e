"""Reward-scoring cost per PPO-sized batch: three objectives on a shared trunk vs one reward model.

Prints one JSON line. Batch 8, ~200 prompt + 48 response tokens (248 reward-model tokens). Compares
one MiniLM reward model, three separate ones, and three heads sharing the frozen lower layers
(``reward.train_top_layers``), plus the full composite path (decode policy tokens, re-tokenize, score).

    .venv/bin/python benchmarks/reward_cost.py [--model all-minilm-l6-v2] [--top-layers 2] [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
from timing import median_seconds  # noqa: E402

from groundwork.chat_format import build_messages  # noqa: E402
from groundwork.models import load_tokenizer  # noqa: E402
from reward_models.backbone import freeze_lower_layers, load_for_training, trunk_fingerprint  # noqa: E402
from reward_models.composite import CompositeReward  # noqa: E402
from reward_models.normalization import Normalization  # noqa: E402
from reward_models.scorer import RewardScorer  # noqa: E402
from reward_models.trunk import SeparateModels  # noqa: E402

OBJECTIVES = ("quality", "safety", "faithfulness")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="all-minilm-l6-v2")
    parser.add_argument("--policy-tokenizer", default="tiny-random-llama", help="SmolLM2's tokenizer")
    parser.add_argument("--top-layers", type=int, default=2)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--tokens", type=int, default=248)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.manual_seed(0)

    models, tokenizers, metas = {}, {}, {}
    for objective in OBJECTIVES:
        model, tokenizer = load_for_training(args.model)
        frozen = freeze_lower_layers(model, args.top_layers)
        models[objective], tokenizers[objective] = model.eval(), tokenizer
        metas[objective] = {"max_length": 256, "frozen_layers": frozen,
                            "trunk_fingerprint": trunk_fingerprint(model, frozen)}
    norms = {o: Normalization() for o in OBJECTIVES}
    ids = torch.randint(1000, 20000, (args.batch, args.tokens))
    mask = torch.ones_like(ids)
    single = SeparateModels({"quality": models["quality"]})
    separate = SeparateModels(models)
    shared = RewardScorer.from_models(dict(models), tokenizers, metas, norms)

    with torch.no_grad():
        t_single = median_seconds(lambda: single(ids, mask), args.repeats)
        t_separate = median_seconds(lambda: separate(ids, mask), args.repeats)
        t_shared = median_seconds(lambda: shared.groups[0].module(ids, mask), args.repeats)

    # End to end through the PPO path: decode policy tokens, re-tokenize, shared-trunk scoring, combine.
    policy_tok = load_tokenizer(args.policy_tokenizer)
    composite = CompositeReward(shared, policy_tok)
    kb = " ".join(f"Policy sentence {i}: orders over $50 ship free within 2 business days." for i in range(12))
    prompt = policy_tok.apply_chat_template(build_messages("Where is my order #12345? It has been a week.", kb),
                                            tokenize=False, add_generation_prompt=True)
    query = policy_tok(prompt, add_special_tokens=False, return_tensors="pt").input_ids[:, -200:]
    response = policy_tok("Your order ships within 2 business days; " * 6, add_special_tokens=False,
                          return_tensors="pt").input_ids[:, :48]
    rows = torch.cat([query, response], 1).repeat(args.batch, 1)
    composite.context_length = query.shape[1]
    t_composite = median_seconds(lambda: composite(rows, torch.ones_like(rows)), args.repeats)

    print(json.dumps({
        "model": args.model, "batch": args.batch, "tokens": args.tokens, "top_layers": args.top_layers,
        "frozen_layers": shared.shared_layers, "threads": torch.get_num_threads(),
        "single_s": round(t_single, 4), "three_separate_s": round(t_separate, 4), "three_shared_s": round(t_shared, 4),
        "ratio_separate_vs_single": round(t_separate / t_single, 2),
        "ratio_shared_vs_single": round(t_shared / t_single, 2),
        "composite_end_to_end_s": round(t_composite, 4),
        "ratio_composite_vs_single": round(t_composite / t_single, 2),
    }))


if __name__ == "__main__":
    main()
