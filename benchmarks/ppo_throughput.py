"""PPO throughput: plain TRL 1.12 PPO (TRL's documented setup) vs ``parley ppo``, same run, same settings.

Baseline: the same LoRA policy, batch, response length and PPO epochs, with one policy-sized reward model
(the policy architecture with a scalar head) and a policy-sized value model. Parley: the composite reward
(three objectives on a shared MiniLM trunk) and the truncated value model, through ``run_ppo``.
Each arm runs in its own child process so peak RSS is per arm. Prints one JSON line and appends it to
``benchmarks/results/ppo_throughput.jsonl``.

    python benchmarks/ppo_throughput.py --config configs/cpu-demo.yaml --steps 10
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "ppo_throughput.jsonl"


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def baseline_arm(config: str, overrides: list[str], steps: int, queue) -> None:
    """Plain TRL PPO: policy-sized reward and value models (AutoModelForSequenceClassification of the policy)."""
    import torch
    from datasets import Dataset
    from transformers import AutoModelForSequenceClassification
    from trl.experimental.ppo import PPOTrainer

    from dialogue.ppo.prompts import load_prompt_pools, tokenize_prompts
    from dialogue.ppo.trainer import ppo_config
    from groundwork.models import load_tokenizer, resolve_model
    from groundwork.recipe import load_recipe
    from groundwork.sections.lora import peft_lora_config

    recipe = load_recipe(config, overrides)
    cfg = recipe.ppo
    torch.manual_seed(recipe.run.seed)
    tokenizer = load_tokenizer(recipe.policy.model, padding_side="left")
    path = resolve_model(recipe.policy.model)
    from dialogue.ppo.models import load_sft_policy

    sft_adapter = recipe.run.layout.sft_adapter
    policy = load_sft_policy(recipe.policy.model, str(sft_adapter) if sft_adapter.exists() else None,
                             recipe.policy.dtype)
    reward = AutoModelForSequenceClassification.from_pretrained(path, num_labels=1)
    value = AutoModelForSequenceClassification.from_pretrained(path, num_labels=1)
    for model in (reward, value):
        model.config.pad_token_id = tokenizer.pad_token_id
    rows, _, _ = load_prompt_pools(recipe.data.data_dir, 0, recipe.run.seed, cfg.max_prompts)
    ids, _, _ = tokenize_prompts(tokenizer, rows, cfg.max_prompt_tokens, recipe.policy.system_prompt)
    dataset = Dataset.from_list(ids)
    with tempfile.TemporaryDirectory() as out:
        trainer = PPOTrainer(
            args=ppo_config(cfg, Path(out), recipe.run.seed, steps, recipe.policy.dtype),
            processing_class=tokenizer, model=policy, ref_model=None, reward_model=reward, value_model=value,
            train_dataset=dataset, eval_dataset=dataset.select(range(cfg.batch_size)),
            peft_config=peft_lora_config(cfg.lora, policy.config),
        )
        started = time.time()
        trainer.train()
        elapsed = time.time() - started
    queue.put({"eps_per_s": steps * cfg.batch_size / elapsed, "seconds": elapsed, "peak_rss_mb": _peak_rss_mb(),
               "reward_params_m": sum(p.numel() for p in reward.parameters()) / 1e6,
               "value_params_m": sum(p.numel() for p in value.parameters()) / 1e6})


def parley_arm(config: str, overrides: list[str], steps: int, queue) -> None:
    """``run_ppo`` with the composite reward and the truncated value model (run in a scratch run folder)."""
    from dialogue.ppo.trainer import run_ppo
    from groundwork.recipe import load_recipe

    source = load_recipe(config, overrides).run.layout
    with tempfile.TemporaryDirectory() as scratch:
        recipe = load_recipe(config, [*overrides, f"run.output_dir={scratch}", f"ppo.steps={steps}",
                                      f"ppo.reward_dir={source.root.resolve()}", "ppo.judge_every=0",
                                      "ppo.checkpoint_every=0"]
                             + ([f"ppo.sft_adapter={source.sft_adapter.resolve()}"]
                                if source.sft_adapter.exists() else []))
        metrics = run_ppo(recipe)
    queue.put({"eps_per_s": metrics["episodes_per_s_this_run"], "seconds": metrics["wall_s_this_run"],
               "peak_rss_mb": _peak_rss_mb()})


def _run(target, *args) -> dict:
    context = mp.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=target, args=(*args, queue))
    process.start()
    result = queue.get()
    process.join()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(ROOT / "configs" / "cpu-demo.yaml"))
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--no-save", action="store_true", help="print only; do not append to the results file")
    args = parser.parse_args()
    from groundwork.recipe import load_recipe

    recipe = load_recipe(args.config, args.overrides)
    if not recipe.run.layout.reward_model("quality").exists():
        raise SystemExit(f"no reward models under {recipe.run.root}; run `parley reward train --objective all "
                         f"--config {args.config}` first")
    parley = _run(parley_arm, args.config, args.overrides, args.steps)
    baseline = _run(baseline_arm, args.config, args.overrides, args.steps)
    result = {
        "benchmark": "ppo_throughput",
        "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "baseline_eps_per_s": round(baseline["eps_per_s"], 4),
        "parley_eps_per_s": round(parley["eps_per_s"], 4),
        "ratio": round(parley["eps_per_s"] / baseline["eps_per_s"], 3),
        "updates_per_arm": args.steps,
        "baseline_peak_rss_mb": round(baseline["peak_rss_mb"], 1),
        "parley_peak_rss_mb": round(parley["peak_rss_mb"], 1),
        "baseline_reward_params_m": round(baseline["reward_params_m"], 1),
        "baseline_value_params_m": round(baseline["value_params_m"], 1),
        "settings": {"config": args.config, "overrides": args.overrides, "steps": args.steps,
                     "policy": recipe.policy.model, "batch_size": recipe.ppo.batch_size,
                     "response_length": recipe.ppo.response_length, "num_ppo_epochs": recipe.ppo.num_ppo_epochs,
                     "num_mini_batches": recipe.ppo.num_mini_batches, "value_layers": recipe.ppo.value_layers,
                     "lora_r": recipe.ppo.lora.r, "threads": __import__("torch").get_num_threads()},
    }
    from timing import report

    report(result, RESULTS, append=not args.no_save)


if __name__ == "__main__":
    main()
