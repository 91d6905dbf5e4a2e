"""Time to first token of the served default, with and without the prefix cache (the framing, each KB article
as the first passage, earlier requests' openings), with the framing alone cached, and with another number of KB
passages per prompt (``--compare-top-k``).

Builds the server's chat service exactly as ``parley pipeline --serve`` / ``parley serve`` would for a finished
run (its served artifact, reward models, guard, KB retrieval, the recipe's system prompt; ``--set`` picks another
engine) and sends held-out support questions through ``ChatService.turn`` as API requests. The arms (the served
default, the framing-only cache, ``serve.prefix_cache`` off, and ``serve.top_k`` = ``--compare-top-k``) share one
loaded engine and take turns prompt by prompt in rotating order, each from its own place in the question list;
each arm's median over ``--prompts`` questions is reported, with the parts of the first-token path outside the
engine (input guard, retrieval, each timed alone). With llama.cpp, "no prefix cache" still reuses the previous
prompt's opening (llama-cpp-python does that by itself). Prints one JSON line and appends it to
``benchmarks/results/served_ttft.jsonl``.

    python benchmarks/served_ttft.py --config configs/cpu-demo.yaml --run-dir runs [--prompts 20]
    python benchmarks/served_ttft.py --run-dir runs --set serve.engine=llamacpp \
        --set serve.artifact=runs/demo/quantize --set serve.gguf_type=q8_0
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from guard_latency import first_text_seconds  # noqa: E402 - this folder is on sys.path when run as a script
from timing import report  # noqa: E402


def support_questions(n: int) -> list[str]:
    """The customer's question of the first ``n`` held-out support conversations (never trained on)."""
    from groundwork.chat_format import last_user_text
    from groundwork.data_loading import load_support

    return [last_user_text(row["messages"]) for row in load_support(ROOT / "data", "heldout")[:n]]


def first_text_ms(service, question: str) -> float:
    return 1000 * first_text_seconds(service, question)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="configs/cpu-demo.yaml")
    parser.add_argument("--run-dir", default="runs", help="run.output_dir holding the finished run")
    parser.add_argument("--prompts", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--compare-top-k", type=int, default=3, help="KB passages per prompt in the third arm "
                        "(0: no such arm)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="recipe override after the run's own serve settings, e.g. --set serve.engine=llamacpp "
                        "--set serve.gguf_type=q8_0 (repeatable)")
    parser.add_argument("--no-append", action="store_true")
    args = parser.parse_args()

    import torch

    from groundwork.recipe import load_recipe
    from groundwork.runs import served_run_overrides
    from serving.server import build_service

    torch.set_num_threads(args.threads)
    recipe = load_recipe(args.config, [f"run.output_dir={args.run_dir}"])
    tmp = Path(tempfile.mkdtemp(prefix="parley-ttft-bench-"))
    served = load_recipe(args.config, [f"run.output_dir={args.run_dir}", *served_run_overrides(recipe),
                                       f"serve.db=sqlite:///{tmp / 'bench.db'}", "serve.max_new_tokens=8",
                                       *args.overrides])
    started = time.perf_counter()
    service = build_service(served.serve, served.policy.model, served.policy.dtype, served.policy.system_prompt)
    start_s = time.perf_counter() - started  # loading and warm-up (framing and KB passage openings prefilled)
    engine = service.engine
    questions = support_questions(args.prompts)
    for question in questions[:3]:  # warm-up: kernels, the prefix cache, KB embeddings
        first_text_ms(service, question)
    top_k = served.serve.top_k
    store = engine.prefix_cache
    worker = getattr(engine, "worker", None)  # the torch engine runs model calls on its own thread
    framing_only = (worker.call if worker else lambda build: build())(  # the previous default
        lambda: engine.new_prefix_cache(passages=False))
    # arm: (prefix cache, top_k, the engine's prefix store)
    settings = {"prefix_cache": (True, top_k, store), "framing_cache_only": (True, top_k, framing_only),
                "no_prefix_cache": (False, top_k, store)}
    if args.compare_top_k and args.compare_top_k != top_k:
        settings[f"prefix_cache_top_k_{args.compare_top_k}"] = (True, args.compare_top_k, store)
    arms: dict[str, list[float]] = {arm: [] for arm in settings}
    hits_before, reused_before = (store.hits, store.reused_tokens) if store else (0, 0)
    guard_ms, retrieval_ms, prompt_tokens = [], [], []
    order = list(settings)
    # Each arm asks the questions from its own offset, so no request follows the same question: an engine that
    # reuses the previous prompt's opening by itself (llama.cpp) would otherwise answer the next arm's copy of
    # it for free.
    offsets = {arm: position * max(1, len(questions) // len(order)) for position, arm in enumerate(order)}
    for index in range(len(questions)):
        for arm in order[index % len(order):] + order[:index % len(order)]:
            engine.use_prefix_cache, service.top_k, engine.prefix_cache = settings[arm]
            arms[arm].append(first_text_ms(service, questions[(index + offsets[arm]) % len(questions)]))
            if arm == "prefix_cache":
                prompt_tokens.append(engine.last_stats.prompt_tokens)
    service.top_k, engine.prefix_cache = top_k, store
    for question in questions:  # the parts outside the engine, each alone
        started = time.perf_counter()
        service.guard.check_input([{"role": "user", "content": question}])
        guard_ms.append(1000 * (time.perf_counter() - started))
        started = time.perf_counter()
        service.retrieve(question)
        retrieval_ms.append(1000 * (time.perf_counter() - started))
    engine.use_prefix_cache = served.serve.prefix_cache
    medians = {arm: round(statistics.median(values), 1) for arm, values in arms.items()}
    record = {
        "benchmark": "served_ttft", "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "served_default_ttft_ms": medians["prefix_cache" if served.serve.prefix_cache else "no_prefix_cache"],
        "ttft_ms": medians,
        "speedup": round(medians["no_prefix_cache"] / medians["prefix_cache"], 2),
        "top_k": top_k,
        "input_guard_ms": round(statistics.median(guard_ms), 1),
        "retrieval_ms": round(statistics.median(retrieval_ms), 1),
        "prompt_tokens_median": statistics.median(prompt_tokens),
        "framing_tokens": sorted(len(o) for o in engine.framing_openings()),
        "reused_tokens_per_cached_request": round((store.reused_tokens - reused_before) / len(questions), 1)
        if store else None,
        "cache_hits": store.hits - hits_before if store else None,
        "passage_cache_mb": round(store.pinned_bytes / 2**20, 1) if store else None,
        "service_start_s": round(start_s, 1),
        "cached_openings": len(store) if store else None,
        "settings": {"config": args.config, "run": str(recipe.run.layout.root), "engine": engine.description,
                     "overrides": args.overrides,
                     "guard": service.guard.enabled, "prompts": len(questions), "threads": args.threads,
                     "engine_worker_threads": getattr(worker, "threads", None),
                     "request_thread_threads": torch.get_num_threads(),
                     "prompt_source": "data/support/heldout.jsonl", "loadavg_after": list(os.getloadavg())},
    }
    report(record, ROOT / "benchmarks" / "results" / "served_ttft.jsonl", append=not args.no_append)
    service.store.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
