"""Cost of the safety guard: request-risk scoring per request, and what the guard adds to time to first token.

Part 1 scores the risk stage's dev requests one at a time (as the server does) and reports the median and p90
milliseconds, separately for ordinary-length requests and for long ones (scored in windows). Part 2 runs the
same questions through ``ChatService.turn`` (KB retrieval, limits, engine) with the guard off and on, in
alternating rounds on one loaded engine, and reports the median time to the first streamed text of each arm and
their difference: the input check plus the first output check before the first word is shown. Prints one JSON
line and appends it to ``benchmarks/results/guard_latency.jsonl``.

    python benchmarks/guard_latency.py --run runs/demo [--requests 300] [--rounds 20]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from timing import report  # noqa: E402 - this folder is on sys.path when run as a script

QUESTIONS = [
    "How long does account deletion take?",
    "When will my refund arrive?",
    "Can I change my delivery address after ordering?",
    "Do you price match?",
    "How do I return a damaged item?",
]


def _ms(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {"median_ms": round(1000 * statistics.median(ordered), 2),
            "p90_ms": round(1000 * ordered[int(0.9 * (len(ordered) - 1))], 2), "n": len(ordered)}


def scoring_cost(model, texts: list[str]) -> dict[str, dict[str, float]]:
    from reward_models.risk_model import text_windows

    model.probability("warm up")
    short, long = [], []
    for text in texts:
        started = time.perf_counter()
        model.probability(text)
        elapsed = time.perf_counter() - started
        (long if len(text_windows(text, model.settings.window_words)) > 1 else short).append(elapsed)
    return {"single_window": _ms(short), "windowed": _ms(long) if long else {}, "all": _ms(short + long)}


def first_text_seconds(service, question: str) -> float:
    from serving.app.service import Session

    started = time.perf_counter()
    turn, deltas = service.turn(Session("api"), question)
    first = None
    for delta in deltas:
        if first is None and delta.strip():
            first = time.perf_counter() - started
    return first if first is not None else time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", default="runs/demo", help="pipeline run folder (risk/model, quantize/int8)")
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-append", action="store_true")
    args = parser.parse_args()

    import torch

    from groundwork.layout import RunLayout
    from groundwork.sections.serve import ServeSection
    from reward_models.risk_model import RequestRiskModel
    from serving.guard import Guard
    from serving.server import build_service

    torch.set_num_threads(args.threads)
    run = RunLayout(args.run)
    model = RequestRiskModel.from_pretrained(run.risk_model)
    dev = [json.loads(line)["text"] for line in run.risk_dev.read_text(encoding="utf-8").splitlines()]
    cost = scoring_cost(model, dev[: args.requests])

    tmp = Path(tempfile.mkdtemp(prefix="parley-guard-bench-"))
    cfg = ServeSection(artifact=str(run.quantize) if run.int8_model.is_dir() else None,
                       kb_dir=str(ROOT / "data" / "kb"), db=f"sqlite:///{tmp / 'bench.db'}", max_new_tokens=16)
    service = build_service(cfg, "smollm2-135m-instruct")
    guarded = Guard(model)
    off = Guard(None)
    arms: dict[str, list[float]] = {"off": [], "on": []}
    for question in QUESTIONS:  # warm-up: kernels, caches, KB embeddings
        first_text_seconds(service, question)
    for round_index in range(args.rounds):
        question = QUESTIONS[round_index % len(QUESTIONS)]
        for arm in (("off", "on") if round_index % 2 == 0 else ("on", "off")):
            service.guard = guarded if arm == "on" else off
            arms[arm].append(first_text_seconds(service, question))
    paired = [on - off_ for on, off_ in zip(arms["on"], arms["off"], strict=True)]
    record = {
        "benchmark": "guard_latency", "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "risk_ms_per_request": cost,
        "ttft_guard_off_ms": round(1000 * statistics.median(arms["off"]), 1),
        "ttft_guard_on_ms": round(1000 * statistics.median(arms["on"]), 1),
        "guard_added_ttft_ms_median_paired": round(1000 * statistics.median(paired), 1),
        "settings": {"run": str(run), "requests": len(dev[: args.requests]), "rounds": args.rounds,
                     "threads": args.threads, "engine": "torch int8" if cfg.artifact else "torch fp32",
                     "threshold": model.threshold, "machine": platform.processor() or platform.machine()},
    }
    report(record, ROOT / "benchmarks" / "results" / "guard_latency.jsonl", append=not args.no_append)
    service.store.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
