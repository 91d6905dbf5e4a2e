"""Reward audit on a development pool of the policies' own answers, kept apart from the report's prompts.

``parley evaluate`` audits the reward models on the report's held-out prompts (the first
``evaluate.max_prompts_per_kind`` of each kind). Tuning reward models against that number would tune on the
report, so this benchmark draws the *next* prompts of each kind (default 12-35), answers them with the run's SFT
and PPO policies (greedy plus sampled answers), adds the rows' known right answers, and scores the pool with
one or more reward folders. The first ``--reward-dir`` is the baseline; every folder is scored in the same run.

Reported per reward folder and prompt kind: P(right answer outscores wrong) for each objective and the routed
composite (:func:`dialogue.reward_audit.reward_judge_agreement`), with a 95% interval from resampling prompts;
and the minimum over the objectives the composite uses. The pool is cached (``--pool``) so reward variants are
compared on the same answers. Prints one JSON line and appends it to ``benchmarks/results/reward_audit.jsonl``.

    python benchmarks/reward_audit.py --run /work/fresh5/runs/demo --reward-dir /work/fresh5/runs/demo \
        --reward-dir runs/safety-refuse-only
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from timing import report  # noqa: E402 - this folder is on sys.path when run as a script

RESULTS = ROOT / "benchmarks" / "results" / "reward_audit.jsonl"


def pool_prompts(rows: list[dict], first: int, count: int) -> list[dict]:
    """Prompts ``first`` .. ``first + count - 1`` of each kind, in file order (the report uses ``0 .. first-1``)."""
    seen: dict[str, int] = {}
    chosen = []
    for row in rows:
        kind = row.get("kind", "other")
        index = seen.get(kind, 0)
        seen[kind] = index + 1
        if first <= index < first + count:
            chosen.append(row)
    return chosen


def build_pool(recipe, run_dir: Path, rows: list[dict], samples: int, temperature: float, max_new_tokens: int,
               seed: int) -> dict[str, list[str]]:
    """Answers per source name ("sft-greedy", "ppo-sample1", ...), each aligned with ``rows``."""
    import torch

    from dialogue.evaluation import load_policy_stack
    from dialogue.generation import GenerationParams, generate_batch, render_rows
    from groundwork.models import load_tokenizer

    tokenizer = load_tokenizer(recipe.policy.model, padding_side="left")
    prompts = render_rows(tokenizer, rows, recipe.policy.system_prompt)
    policies = {"sft": [run_dir / "sft" / "adapter"], "ppo": [run_dir / "ppo" / "policy_adapter"]}
    answers: dict[str, list[str]] = {}
    for name, adapters in policies.items():
        missing = [str(a) for a in adapters if not a.exists()]
        if missing:
            raise SystemExit(f"{name}: no adapter at {', '.join(missing)}")
        model = load_policy_stack(recipe.policy.model, [str(a) for a in adapters], recipe.policy.dtype)
        answers[f"{name}-greedy"] = generate_batch(model, tokenizer, prompts, GenerationParams(max_new_tokens),
                                                   batch_size=8, progress=True)
        for k in range(samples):
            torch.manual_seed(seed + k)
            answers[f"{name}-sample{k + 1}"] = generate_batch(
                model, tokenizer, prompts, GenerationParams(max_new_tokens, temperature=temperature),
                batch_size=8, progress=True)
        del model
    return answers


def score_pool(reward_dir: str, risk_dir: Path | None, rows: list[dict], answers: dict[str, list[str | None]],
               composite_cfg) -> dict[str, dict]:
    """``per_model`` entries (scores + routed composite) for :func:`reward_judge_agreement`."""
    from dialogue.evaluation import scored_answers
    from reward_models.risk_model import RequestRiskModel, request_text
    from reward_models.scorer import RewardScorer

    scorer = RewardScorer.from_pretrained(reward_dir)
    risk_model = RequestRiskModel.from_pretrained(risk_dir) if risk_dir and risk_dir.is_dir() else None
    risks = (risk_model.probabilities([request_text(row["messages"]) for row in rows]) if risk_model
             else [None] * len(rows))
    return {name: scored_answers(rows, texts, scorer, risks, composite_cfg) for name, texts in answers.items()}


def audit_with_interval(rows: list[dict], per_model: dict, answers: dict, resamples: int, seed: int) -> dict:
    """The audit table with per kind and objective 95% intervals (:func:`dialogue.reward_audit.agreement_intervals`)."""
    from dialogue.reward_audit import agreement_intervals, audit_min

    table, interval = agreement_intervals(rows, per_model, answers, resamples, seed)
    worst, where = audit_min(table)
    return {"table": table, "min": worst, "min_at": where, "min_ci": list(interval) if interval else None}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", required=True, help="run folder with sft/adapter and ppo/policy_adapter")
    parser.add_argument("--reward-dir", action="append", required=True,
                        help="run folder with reward-<objective>/ (repeat; the first is the baseline)")
    parser.add_argument("--risk-dir", help="request-risk model folder (default: <run>/risk/model)")
    parser.add_argument("--first", type=int, default=12, help="skip this many prompts per kind (the report's)")
    parser.add_argument("--count", type=int, default=24, help="prompts per kind in the pool")
    parser.add_argument("--samples", type=int, default=2, help="sampled answers per policy and prompt")
    parser.add_argument("--temperature", type=float, default=0.8)
    parser.add_argument("--max-new-tokens", type=int, default=40)
    parser.add_argument("--pool", help="cache file for the answers (written once, then reused)")
    parser.add_argument("--resamples", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-append", action="store_true")
    args = parser.parse_args()

    from dialogue.reward_audit import reference_answers
    from groundwork.data_loading import BadRows, load_kb, load_ppo_prompts
    from groundwork.recipe import load_recipe

    run_dir = Path(args.run)
    saved = run_dir / "evaluate" / "recipe.yaml"  # the run's policy, system prompt and composite weights
    recipe = load_recipe(str(saved) if saved.is_file() else None, [f"data.data_dir={ROOT / 'data'}"])
    rows = pool_prompts(load_ppo_prompts(str(ROOT / "data"), "heldout", BadRows("raise")), args.first, args.count)
    pool_path = Path(args.pool) if args.pool else None
    if pool_path and pool_path.is_file():
        cached = json.loads(pool_path.read_text(encoding="utf-8"))
        if cached["ids"] != [row.get("id") for row in rows]:
            raise SystemExit(f"{pool_path} was built for other prompts; delete it or change --first/--count")
        answers = cached["answers"]
    else:
        answers = build_pool(recipe, run_dir, rows, args.samples, args.temperature, args.max_new_tokens, args.seed)
        if pool_path:
            pool_path.write_text(json.dumps({"ids": [row.get("id") for row in rows], "answers": answers}),
                                 encoding="utf-8")
    answers = {**answers, "reference": reference_answers(rows, load_kb(str(ROOT / "data")))}
    composite_cfg = recipe.reward.composite
    risk_dir = Path(args.risk_dir) if args.risk_dir else run_dir / "risk" / "model"
    results = {}
    for reward_dir in args.reward_dir:
        per_model = score_pool(reward_dir, risk_dir, rows, answers, composite_cfg)
        results[reward_dir] = audit_with_interval(rows, per_model, answers, args.resamples, args.seed)
        entry = results[reward_dir]
        print(f"\n{reward_dir}: min {entry['min']:.3f} at {entry['min_at']}")
        for kind, values in entry["table"].items():
            cells = " ".join(f"{o}={values[o]:.2f}{values.get(o + '_ci', '')}" for o in
                             ("quality", "safety", "faithfulness", "composite") if values.get(o) is not None)
            print(f"  {kind:13s} right={values['right']:3d} wrong={values['wrong']:3d} {cells}")
    baseline = args.reward_dir[0]
    record = {"benchmark": "reward_audit", "run": str(run_dir), "baseline": baseline,
              "prompts": len(rows), "first": args.first, "samples": args.samples,
              "results": {name: {"min": r["min"], "min_at": r["min_at"], "min_ci": r["min_ci"], "table": r["table"]}
                          for name, r in results.items()},
              "min_delta_vs_baseline": {name: round(r["min"] - results[baseline]["min"], 3)
                                        for name, r in results.items() if name != baseline}}
    report(record, RESULTS, append=not args.no_append)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
