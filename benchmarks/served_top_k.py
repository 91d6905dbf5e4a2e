"""What the number of KB passages per prompt (``serve.top_k``) does to the served answers, not only to speed.

Builds the served default of a finished run (as :mod:`served_ttft` does: int8 artifact, guard, KB retrieval,
the recipe's system prompt) and answers the held-out PPO support prompts through ``ChatService.turn`` once per
``--top-k`` value, the values taking turns prompt by prompt. Reported per value: KB-fact accuracy (the judge's
rule: the answer states the fact of the article the question is about), the answer classes of the system
table (blocked, refused, non-answer, degenerate, substantive), with 95% Wilson intervals, and the paired
difference in facts stated against the first value. Prints one JSON line and appends it to
``benchmarks/results/served_top_k.jsonl``.

    python benchmarks/served_top_k.py --config configs/cpu-demo.yaml --run-dir runs --top-k 3 --top-k 2
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from timing import report  # noqa: E402 - this folder is on sys.path when run as a script


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="configs/cpu-demo.yaml")
    parser.add_argument("--run-dir", default="runs", help="run.output_dir holding the finished run")
    parser.add_argument("--top-k", type=int, action="append", help="passages per prompt (repeat; first = baseline)")
    parser.add_argument("--prompts", type=int, default=62, help="held-out support prompts (62 in the project data)")
    parser.add_argument("--max-new-tokens", type=int, default=48)
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="recipe override applied after the run's served defaults, e.g. serve.adapter=DIR "
                             "serve.artifact=null to serve another adapter (repeatable)")
    parser.add_argument("--no-append", action="store_true")
    args = parser.parse_args()
    values = args.top_k or [3, 2]

    from dialogue.answer_classes import classify_answer
    from dialogue.system_eval import wilson
    from groundwork.chat_format import last_user_text
    from groundwork.data_loading import BadRows, load_ppo_prompts
    from groundwork.judge import judge_outcome
    from groundwork.recipe import load_recipe
    from groundwork.runs import served_run_overrides
    from serving.app.service import Session
    from serving.server import build_service

    recipe = load_recipe(args.config, [f"run.output_dir={args.run_dir}"])
    tmp = Path(tempfile.mkdtemp(prefix="parley-top-k-bench-"))
    served = load_recipe(args.config, [f"run.output_dir={args.run_dir}", *served_run_overrides(recipe),
                                       f"serve.db=sqlite:///{tmp / 'bench.db'}",
                                       f"serve.max_new_tokens={args.max_new_tokens}", *args.overrides])
    service = build_service(served.serve, served.policy.model, served.policy.dtype, served.policy.system_prompt)
    rows = [row for row in load_ppo_prompts(str(ROOT / "data"), "heldout", BadRows("raise"))
            if row.get("kind") == "support" and (row.get("expected") or {}).get("answer_patterns")][:args.prompts]
    facts: dict[int, list[bool]] = {k: [] for k in values}
    classes: dict[int, list[str]] = {k: [] for k in values}
    started = time.time()
    for index, row in enumerate(rows):
        question = last_user_text(row["messages"])
        for k in values[index % len(values):] + values[:index % len(values)]:
            service.top_k = k
            turn, deltas = service.turn(Session("api"), question, live=False)
            for _ in deltas:
                pass
            facts[k].append(bool(judge_outcome(row, turn.text)))
            classes[k].append(classify_answer(turn.text, question, bool(turn.blocked == "input"), turn.replaced))
    results = {}
    for k in values:
        n = len(facts[k])
        entry = {"kb_fact_accuracy": round(sum(facts[k]) / n, 3),
                 "kb_fact_ci": [round(x, 3) for x in wilson(sum(facts[k]), n)]}
        for name in ("blocked", "refused", "non_answer", "degenerate", "substantive"):
            entry[f"{name}_rate"] = round(sum(c == name for c in classes[k]) / n, 3)
        results[str(k)] = entry
    base = values[0]
    paired = {str(k): {"facts_gained": sum(b and not a for a, b in zip(facts[base], facts[k], strict=True)),
                       "facts_lost": sum(a and not b for a, b in zip(facts[base], facts[k], strict=True))}
              for k in values[1:]}
    record = {"benchmark": "served_top_k", "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "prompts": len(rows),
              "baseline_top_k": base, "results": results, "paired_vs_baseline": paired,
              "settings": {"config": args.config, "run": str(recipe.run.layout.root), "overrides": args.overrides,
                           "engine": service.engine.description, "guard": service.guard.enabled,
                           "max_new_tokens": args.max_new_tokens, "seconds": round(time.time() - started, 1)}}
    report(record, ROOT / "benchmarks" / "results" / "served_top_k.jsonl", append=not args.no_append)
    service.store.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
