"""Why ``pipeline.parallel_lanes`` pays on a few cores: step time of SFT and reward training at 1 and N threads.

Prints one JSON line: median seconds per training step of an SFT-shaped step (SmolLM2, LoRA on the top 15
layers, batch 8 x 180 tokens) and a reward-model step (MiniLM, top 2 layers trained, batch 32 x 200 tokens)
with all threads, with one thread alone, and with one thread while the other kind runs beside it; and the
speed-up of two one-thread lanes over running both with all threads one after the other.

    .venv/bin/python benchmarks/lane_threads.py [--steps 3]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys


def one_arm(kind: str, steps: int) -> float:
    """Median seconds per forward+backward step of ``kind`` (``sft`` or ``reward``) in this process."""
    import torch

    torch.manual_seed(0)
    if kind == "sft":
        from peft import get_peft_model

        from groundwork.models import load_causal_lm
        from groundwork.sections.lora import LoraSection, peft_lora_config

        model = load_causal_lm("smollm2-135m-instruct")
        model = get_peft_model(model, peft_lora_config(LoraSection(top_layers=15), model.config))
        batch = torch.randint(0, 40000, (8, 180))

        def step() -> None:
            model(input_ids=batch, labels=batch).loss.backward()
    else:
        from reward_models.backbone import freeze_lower_layers, load_for_training

        model, _ = load_for_training("all-minilm-l6-v2")
        freeze_lower_layers(model, 2)
        batch = torch.randint(1000, 20000, (32, 200))

        def step() -> None:
            model(input_ids=batch).logits.sum().backward()
    from timing import median_seconds

    return median_seconds(step, steps)


def run_arms(arms: list[tuple[str, int]], steps: int) -> list[float]:
    """Run each (kind, threads) arm in its own process, all at the same time; their step medians."""
    children = [subprocess.Popen([sys.executable, __file__, "--arm", kind, "--steps", str(steps)],
                                 env={**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)},
                                 stdout=subprocess.PIPE, text=True) for kind, threads in arms]
    return [float(child.communicate()[0].strip().splitlines()[-1]) for child in children]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--arm", choices=["sft", "reward"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.arm:
        print(one_arm(args.arm, args.steps))
        return
    cores = os.cpu_count() or 1
    sft_all, = run_arms([("sft", cores)], args.steps)
    reward_all, = run_arms([("reward", cores)], args.steps)
    sft_one, = run_arms([("sft", 1)], args.steps)
    reward_one, = run_arms([("reward", 1)], args.steps)
    sft_beside, reward_beside = run_arms([("sft", 1), ("reward", 1)], args.steps)
    result = {
        "benchmark": "lane_threads", "cores": cores, "steps": args.steps,
        "sft_s_per_step": {"all_threads": round(sft_all, 2), "one_thread": round(sft_one, 2),
                           "one_thread_beside_reward": round(sft_beside, 2)},
        "reward_s_per_step": {"all_threads": round(reward_all, 2), "one_thread": round(reward_one, 2),
                              "one_thread_beside_sft": round(reward_beside, 2)},
        "one_thread_speed_vs_all": {"sft": round(sft_all / sft_one, 3), "reward": round(reward_all / reward_one, 3)},
        # Two balanced one-thread lanes vs the same work in turn with all threads: each lane runs at the fraction
        # all/beside of full speed, so the pair does f_sft + f_reward of the work per unit time (1.0 = no gain).
        "lane_throughput_ratio": round(sft_all / sft_beside + reward_all / reward_beside, 3),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
