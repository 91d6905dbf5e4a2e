"""Plan search against a random-search baseline: does backward elimination find as good a plan for its cost?

Both searches measure plans for the same merged policy on the same measurement prompts (support *train*
split, never the serving benchmark's held-out ones) with the same bars (agreement, reward change); the random
search gets as many measured plans as the greedy search used. Reported per method: the chosen plan's tokens/s
(and its ratio to the base GGUF measured in the same run), agreement, reward change, plans measured and
seconds. Prints one JSON line and appends it to ``benchmarks/results/plan_search.jsonl``.

    python benchmarks/plan_search.py --adapter runs/demo/ppo/policy_adapter --reward-dir runs/demo [--seeds 0,1]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from timing import report  # noqa: E402 - this folder is on sys.path when run as a script

RESULTS = ROOT / "benchmarks" / "results" / "plan_search.jsonl"


def summary(result, seconds: float) -> dict:
    chosen = result.chosen
    return {"plan": result.plan.summary(), "bands": chosen.bands, "feasible": chosen.feasible,
            "tokens_per_s": chosen.tokens_per_s, "agreement": chosen.agreement,
            "reward_delta": chosen.reward_delta, "reward_delta_se": chosen.reward_delta_se,
            "ratio_vs_base_gguf": (round(chosen.tokens_per_s / result.base_tokens_per_s, 3)
                                   if result.base_tokens_per_s else None),
            "size_mb": round(chosen.size_bytes / 1e6, 1), "plans_measured": len(result.trials),
            "seconds": round(seconds, 1)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--adapter", required=True)
    parser.add_argument("--reward-dir", help="run folder with reward-<objective>/ (none: agreement and speed only)")
    parser.add_argument("--seeds", default="0", help="random-search seeds (comma list)")
    parser.add_argument("--prompts", type=int, default=24)
    parser.add_argument("--no-append", action="store_true")
    args = parser.parse_args()

    from groundwork.recipe import load_recipe
    from parley.quantize_commands import plan_inputs
    from serving.quantize.merge import load_merged
    from serving.quantize.plan import PlanWriter
    from serving.quantize.plan_search import PlanSearchSettings, search_plan

    recipe = load_recipe(None, [f"data.data_dir={ROOT / 'data'}", f"quantize.plan_prompts={args.prompts}"])
    prompts, scorer = plan_inputs(recipe, args.reward_dir)
    merged, tokenizer = load_merged(args.model, args.adapter)
    writer = PlanWriter(merged, None, tokenizer)
    settings = PlanSearchSettings(prompts=args.prompts)
    started = time.perf_counter()
    greedy = search_plan(writer, tokenizer, prompts, settings, scorer, base_gguf_path=writer.base_path)
    methods = {"greedy": summary(greedy, time.perf_counter() - started)}
    for seed in [int(s) for s in args.seeds.split(",") if s.strip()]:
        started = time.perf_counter()
        random = search_plan(writer, tokenizer, prompts,
                             replace(settings, method="random", budget=len(greedy.trials), seed=seed), scorer,
                             base_gguf_path=writer.base_path)
        methods[f"random_seed{seed}"] = summary(random, time.perf_counter() - started)
    record = {"benchmark": "plan_search", "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "methods": methods,
              "base_gguf_tokens_per_s": greedy.base_tokens_per_s,
              "settings": {"model": args.model, "adapter": args.adapter, "reward_dir": args.reward_dir,
                           "prompts": len(prompts), "prompt_source": "data/support/train.jsonl",
                           "min_agreement": settings.min_agreement, "min_reward_delta": settings.min_reward_delta,
                           "max_tokens": settings.max_tokens, "threads": settings.threads,
                           "loadavg": [round(x, 2) for x in os.getloadavg()]}}
    report(record, RESULTS, append=not args.no_append)
    return 0


if __name__ == "__main__":
    sys.exit(main())
