"""Cost of "Why this answer": milliseconds per explanation, reward scoring included, on ~50 support answers.

Each answer is a held-out support question with its reference answer (``data/support/heldout.jsonl``) and the
KB passages the server would retrieve for it (top 3). For each one the benchmark times what the server does
after an answer is stored: :meth:`serving.explain.Explainer.explain` (one reward-model pass for all three
objectives, the routed composite, the guard's decision, the best-supporting sentence of every passage) and
storing the redacted copy (:func:`serving.feedback.explanations.save_explanation`, SQLite in a temp folder).
Reports the median and p90 of each part and of both together (the budget: 30 ms on 2 cores), prints one
JSON line and appends it to ``benchmarks/results/explain_cost.jsonl``.

Torch runs with its default thread count, as ``parley serve`` does (one per core; ``--threads 1`` gives the
single-core cost). On a machine busy with other work (a training job) two threads wait on each other: time it
on a quiet machine. The reward models score in ``--dtype`` (``auto``: bfloat16 on CPUs that have it natively,
as the server does).

Reward models, by cost class:

* ``--reward-dir runs/demo``: the run's trained reward models (MiniLM in the cpu-demo recipe);
* ``--untrained all-minilm-l6-v2``: three freshly initialized MiniLM reward models sharing the frozen lower
  layers (``--top-layers``), exactly the trained ones' cost when a run has none yet (scores are meaningless);
* neither: smoke reward models (tiny-random-bert) trained into a temp folder first (a few seconds);
* ``--no-reward``: none (the explanation says "reward models not loaded").

    .venv/bin/python benchmarks/explain_cost.py [--reward-dir runs/demo | --untrained all-minilm-l6-v2]
        [--answers 50] [--no-append]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from timing import report  # noqa: E402 - this folder is on sys.path when run as a script

OBJECTIVES = ("quality", "safety", "faithfulness")
RESULTS = ROOT / "benchmarks" / "results" / "explain_cost.jsonl"
BUDGET_MS = 30.0


def smoke_reward_dir(out: Path) -> Path:
    """Smoke reward models (tiny-random-bert, one step each), as the tests train them."""
    sys.path.insert(0, str(ROOT / "tests"))
    from test_reward_models import write_preferences

    from groundwork.recipe import load_recipe
    from reward_models.train import run_reward_training

    write_preferences(out / "data", train=12, heldout=4)
    recipe = load_recipe(ROOT / "configs" / "smoke.yaml", [
        f"run.output_dir={out / 'runs'}", "run.name=bench", f"data.data_dir={out / 'data'}", "reward.max_steps=1",
        "reward.eval_rows_during_training=0"])
    for objective in OBJECTIVES:
        run_reward_training(recipe, objective)
    return recipe.run.root


def untrained_scorer(model_name: str, top_layers: int):
    """Three fresh reward models of ``model_name`` sharing their frozen lower layers (the trained ones' cost)."""
    from reward_models.backbone import freeze_lower_layers, load_for_training, trunk_fingerprint
    from reward_models.normalization import Normalization
    from reward_models.scorer import RewardScorer

    models, tokenizers, metas = {}, {}, {}
    for objective in OBJECTIVES:
        model, tokenizer = load_for_training(model_name)
        frozen = freeze_lower_layers(model, top_layers)
        models[objective], tokenizers[objective] = model.eval(), tokenizer
        metas[objective] = {"max_length": 256, "frozen_layers": frozen,
                            "trunk_fingerprint": trunk_fingerprint(model, frozen)}
    return RewardScorer.from_models(models, tokenizers, metas, {o: Normalization() for o in OBJECTIVES})


def answers(count: int, kb) -> list[tuple[list[dict[str, str]], str, list[dict]]]:
    """(conversation up to the question, reference answer, retrieved citations) for ``count`` held-out rows."""
    rows = []
    with open(ROOT / "data" / "support" / "heldout.jsonl", encoding="utf-8") as handle:
        for line in handle:
            row = json.loads(line)
            messages = row["messages"]
            if len(messages) >= 2 and messages[-1]["role"] == "assistant":
                question = messages[-2]["content"]
                rows.append((messages[:-1], messages[-1]["content"],
                             [p.citation() for p in kb.search(question, 3)]))
            if len(rows) == count:
                break
    return rows


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            return next((line.split(":", 1)[1].strip() for line in handle if line.startswith("model name")), "")
    except OSError:
        return platform.processor()


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--reward-dir", help="run folder with reward-<objective>/model (e.g. runs/demo)")
    source.add_argument("--untrained", metavar="MODEL", help="fresh reward models of this backbone")
    source.add_argument("--no-reward", action="store_true", help="no reward models")
    parser.add_argument("--top-layers", type=int, default=2, help="--untrained: fine-tuned top layers")
    parser.add_argument("--answers", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=3, help="passes over the answers (samples = answers x repeats)")
    parser.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: torch's default)")
    parser.add_argument("--dtype", default="auto", help="reward scoring dtype: auto, float32, bfloat16")
    parser.add_argument("--no-append", action="store_true", help="print only; do not append to the results file")
    args = parser.parse_args()

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)

    from reward_models.scorer import scoring_dtype
    from serving.app.service import Turn
    from serving.explain import Explainer
    from serving.feedback.explanations import save_explanation
    from serving.feedback.store import FeedbackStore
    from serving.guard import Verdict
    from serving.retrieval import KnowledgeBase

    tmp = Path(tempfile.mkdtemp(prefix="explain-cost-"))
    if args.no_reward:
        explainer, reward = Explainer(), "none"
    elif args.untrained:
        scorer = untrained_scorer(args.untrained, args.top_layers).to(scoring_dtype(args.dtype))
        explainer, reward = Explainer(scorer), f"untrained {args.untrained}"
    else:
        reward_dir = Path(args.reward_dir) if args.reward_dir else smoke_reward_dir(tmp / "reward")
        explainer = Explainer.load(reward_dir, dtype=args.dtype)
        reward = str(args.reward_dir) if args.reward_dir else "smoke (tiny-random-bert)"
    kb = KnowledgeBase.load(ROOT / "data" / "kb")
    items = answers(args.answers, kb)
    store = FeedbackStore(f"sqlite:///{tmp / 'feedback.db'}")
    conversation = store.create_conversation("support", "bench", None)
    turns = []
    for messages, answer, citations in items:
        turn = Turn(user_text=messages[-1]["content"], text=answer, citations=citations, request_risk=0.05,
                    input_reason="request risk 0.050 < threshold 0.500",
                    guard=Verdict(True, 0.05, answer, "answer classed as answer", "answer"))
        turn.message_id = store.add_message(conversation, "assistant", answer)
        turns.append((turn, messages))
    for turn, messages in turns[:3]:  # warm-up: first passes (compilation, dynamic lengths), the table
        save_explanation(store, turn.message_id, explainer.explain(turn, messages))

    explain_ms, store_ms, total_ms, highlighted = [], [], [], 0
    for _ in range(args.repeats):
        for turn, messages in turns:
            started = time.perf_counter()
            explanation = explainer.explain(turn, messages)
            built = time.perf_counter()
            save_explanation(store, turn.message_id, explanation)
            done = time.perf_counter()
            explain_ms.append((built - started) * 1000)
            store_ms.append((done - built) * 1000)
            total_ms.append((done - started) * 1000)
            highlighted += explanation["highlight"] is not None
    store.close()

    def stats(samples: list[float]) -> dict[str, float]:
        return {"median": round(statistics.median(samples), 2), "p90": round(percentile(samples, 0.9), 2)}

    total = stats(total_ms)
    report({
        "benchmark": "explain_cost", "reward": reward, "answers": len(turns), "samples": len(total_ms),
        "dtype": str(scoring_dtype(args.dtype)).removeprefix("torch."),
        "explain_ms": stats(explain_ms), "store_ms": stats(store_ms), "total_ms": total,
        "budget_ms": BUDGET_MS, "within_budget_median": total["median"] <= BUDGET_MS,
        "highlighted_share": round(highlighted / len(total_ms), 3),
        "torch_threads": torch.get_num_threads(), "cpus": os.cpu_count(),
        "load_avg_1m": round(os.getloadavg()[0], 2), "machine": platform.machine(), "cpu": cpu_model(),
        "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }, RESULTS, append=not args.no_append)


if __name__ == "__main__":
    main()
