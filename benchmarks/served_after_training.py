"""The served torch engine in a fresh process against one whose main thread already ran torch at every core.

Why this exists: libgomp (torch's OpenMP runtime) keeps a thread team for each OS thread that ran a parallel op.
The served engine runs on its own worker thread with its own team, so a process that trained or evaluated on its
main thread before serving has more OpenMP threads than cores, and libgomp then parks and wakes them around every
op. ``parley pipeline --serve`` therefore becomes ``parley serve`` and the evaluation's system table runs in a
child process. This benchmark shows the effect those two avoid: each arm is a fresh child that builds the served
service of a run (``served_run_overrides``) and answers the same support questions through ``ChatService.turn``;
the "after training" arm first multiplies matrices on its main thread at the default thread count. Arms
alternate; per arm the median seconds per question over the rounds' medians. Prints one JSON line and appends it
to ``benchmarks/results/served_after_training.jsonl``.

    python benchmarks/served_after_training.py --config configs/cpu-demo.yaml --run-dir /work/fresh17/runs
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from timing import report  # noqa: E402 - this folder is on sys.path when run as a script

RESULTS = ROOT / "benchmarks" / "results" / "served_after_training.jsonl"
ARMS = ("fresh", "after_training")


def run_arm(config: str, run_dir: str, questions: int, busy_main_thread: bool) -> dict:
    """In this (child) process: per-question seconds and the answers' total length."""
    import torch

    from dialogue.system_eval import load_system_sets, served_config
    from groundwork.recipe import load_recipe
    from serving.app.service import Session
    from serving.server import build_service

    recipe = load_recipe(config, [f"run.output_dir={run_dir}"])
    out = Path(run_dir) / "served_after_training"
    out.mkdir(parents=True, exist_ok=True)
    if busy_main_thread:  # what training or an evaluation leaves behind: this thread's OpenMP team
        matrix = torch.randn(512, 512)
        for _ in range(200):
            matrix = torch.tanh(matrix @ matrix / 512)
    rows = load_system_sets(recipe.run.layout.risk_dev, questions + 1, recipe.run.seed)["bitext/dev"]
    service = build_service(served_config(recipe, out), recipe.policy.model, recipe.policy.dtype,
                            recipe.policy.system_prompt)
    service.turn(Session("api"), rows[0]["text"], live=False)  # warm-up
    seconds, characters = [], 0
    for row in rows[1:questions + 1]:
        started = time.perf_counter()
        _, deltas = service.turn(Session("api"), row["text"], live=False)
        characters += len("".join(deltas))  # the answer is generated while it is read
        seconds.append(time.perf_counter() - started)
    return {"seconds": seconds, "characters": characters}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=str(ROOT / "configs" / "cpu-demo.yaml"))
    parser.add_argument("--run-dir", required=True, help="run.output_dir of a finished run (quantize, risk)")
    parser.add_argument("--questions", type=int, default=12)
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds of both arms")
    parser.add_argument("--arm", choices=ARMS, help=argparse.SUPPRESS)  # internal: run one arm in this process
    parser.add_argument("--no-append", action="store_true")
    args = parser.parse_args()
    if args.arm:
        print(json.dumps(run_arm(args.config, args.run_dir, args.questions, args.arm == "after_training")))
        return 0
    medians: dict[str, list[float]] = {arm: [] for arm in ARMS}
    characters: dict[str, set[int]] = {arm: set() for arm in ARMS}
    for _ in range(args.rounds):
        for arm in ARMS:
            child = subprocess.run([sys.executable, __file__, "--config", args.config, "--run-dir", args.run_dir,
                                    "--questions", str(args.questions), "--arm", arm],
                                   capture_output=True, text=True, check=True)
            result = json.loads(child.stdout.strip().splitlines()[-1])
            medians[arm].append(statistics.median(result["seconds"]))
            characters[arm].add(result["characters"])
    fresh, after = (statistics.median(medians[arm]) for arm in ARMS)
    report({"benchmark": "served_after_training", "run_dir": args.run_dir, "questions": args.questions,
            "rounds": args.rounds, "fresh_s_per_question": round(fresh, 3),
            "after_training_s_per_question": round(after, 3), "ratio": round(after / fresh, 2),
            "same_answers": characters["fresh"] == characters["after_training"] and len(characters["fresh"]) == 1},
           RESULTS, append=not args.no_append)
    return 0


if __name__ == "__main__":
    sys.exit(main())
