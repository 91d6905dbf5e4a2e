"""``parley ppo``: TRL 1.12 PPOTrainer on the SFT policy, against the composite reward, resumable.

The policy is the SFT model (adapter merged) with a fresh LoRA adapter; the reference is the same
model with that adapter disabled (``ref_model=None``), so no second copy is held. The value model
is the SFT policy's lower layers with a scalar head. The optimizer, scheduler and prompt sampler are
built here (not inside TRL) so a checkpoint can restore them exactly.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

from dialogue.ppo.callbacks import ParleyPPOCallback, seed_step
from dialogue.ppo.checkpoint import (
    PREFIX,
    TrainingState,
    latest_checkpoint,
    load_log,
    load_state,
    restore_trainer_state,
    save_checkpoint,
)
from dialogue.ppo.export import chosen_ppo_adapter, export_policy_adapter
from dialogue.ppo.frozen_prefix import FrozenPrefixCache
from dialogue.ppo.models import add_ppo_adapter, build_value_model, load_sft_policy
from dialogue.ppo.prompts import load_prompt_pools, tokenize_prompts
from dialogue.ppo.sampler import ResumableSampler
from groundwork.distributed import broadcast, distributed_state, gather_objects, trainable_digest, write_rank_report
from groundwork.errors import ParleyError
from groundwork.layout import ADAPTER
from groundwork.models import load_tokenizer
from groundwork.plots import plot_log_history
from groundwork.recipe import Recipe, takes
from groundwork.runs import read_metrics, recipe_yaml, save_recipe, write_metrics
from groundwork.sections.ppo import PPOSection

CURVE_KEYS = ("objective/rlhf_reward", "objective/scores", "objective/kl", "reward/quality_mean",
              "reward/safety_mean", "reward/faithfulness_mean", "reward/lagrange_multiplier", "judge/score")


def _default_path(configured: str | None, fallback: Path) -> str | None:
    if configured:
        return configured
    return str(fallback) if fallback.exists() else None


def ppo_config(cfg: PPOSection, out: Path, seed: int, remaining_steps: int, dtype: str, world: int = 1):
    """``ppo.batch_size`` is per process (TRL's ``local_batch_size``): an update sees batch_size x world prompts."""
    from trl.experimental.ppo import PPOConfig

    return PPOConfig(
        output_dir=str(out / "trainer"),
        per_device_train_batch_size=cfg.batch_size,
        per_device_eval_batch_size=cfg.batch_size,
        gradient_accumulation_steps=1,
        local_rollout_forward_batch_size=cfg.batch_size,
        num_mini_batches=cfg.num_mini_batches,
        num_ppo_epochs=cfg.num_ppo_epochs,
        total_episodes=remaining_steps * cfg.batch_size * world,
        response_length=cfg.response_length,
        temperature=cfg.temperature,
        learning_rate=cfg.learning_rate,
        kl_coef=cfg.kl_coef,
        kl_estimator=cfg.kl_estimator,
        cliprange=cfg.cliprange,
        cliprange_value=cfg.cliprange_value,
        vf_coef=cfg.vf_coef,
        gamma=cfg.gamma,
        lam=cfg.lam,
        whiten_rewards=cfg.whiten_rewards,
        missing_eos_penalty=cfg.missing_eos_penalty,
        stop_token="eos",
        num_sample_generations=0,
        save_strategy="no",
        logging_steps=1,
        report_to="none",
        seed=seed,
        bf16=dtype == "bfloat16",
    )


class _Judge:
    """Greedy answers to the judge slice, scored by the rule-based judge; keeps the best adapter."""

    def __init__(self, policy, tokenizer, rows: list[dict], cfg: PPOSection, best_dir: Path,
                 system_prompt: str | None, best_so_far: float | None) -> None:
        self.policy, self.tokenizer, self.rows, self.cfg, self.best_dir = policy, tokenizer, rows, cfg, best_dir
        self.system_prompt = system_prompt
        self.best = best_so_far

    def __call__(self, step: int) -> float | None:
        from dialogue.generation import GenerationParams, generate_batch, render_rows
        from groundwork.judge import judge

        if not self.rows:
            return None
        was_training = self.policy.training
        self.policy.eval()
        responses = generate_batch(self.policy, self.tokenizer, render_rows(self.tokenizer, self.rows,
                                                                             self.system_prompt),
                                   GenerationParams(max_new_tokens=self.cfg.judge_max_new_tokens),
                                   batch_size=self.cfg.batch_size)
        if was_training:
            self.policy.train()
        result = judge(self.rows, responses)
        score = result["judge_score"]
        if score is not None and (self.best is None or score > self.best):
            self.best = score
            best_dir = self.best_dir
            tmp = best_dir.with_name(".tmp-best")
            shutil.rmtree(tmp, ignore_errors=True)
            self.policy.save_pretrained(tmp / ADAPTER)
            (tmp / "judge.json").write_text(json.dumps({"step": step, **result}, indent=2), encoding="utf-8")
            shutil.rmtree(best_dir, ignore_errors=True)
            tmp.rename(best_dir)
        return score


@takes("run", "policy", "data", "ppo", "reward")
def run_ppo(recipe: Recipe, resume: bool = False) -> dict[str, Any]:
    """Run (or resume) the PPO stage; returns the metrics also written to ``runs/<run>/ppo/metrics.json``.

    Under ``accelerate launch`` every rank rolls out its own slice of each global batch; only the main process
    writes the log, TensorBoard, checkpoints, the judge watch's best adapter and the final export.
    """
    import torch
    from torch.utils.data import DataLoader
    from torch.utils.tensorboard import SummaryWriter
    from transformers import get_scheduler
    from trl.experimental.ppo import PPOTrainer

    from reward_models.composite import CompositeReward

    _refuse_deepspeed()
    ranks = distributed_state()
    main, world, rank = ranks.is_main_process, ranks.num_processes, ranks.process_index
    cfg = recipe.ppo
    layout = recipe.run.layout
    out = layout.stage_dir("ppo")
    checkpoint_root = layout.ppo_checkpoints
    checkpoint = latest_checkpoint(checkpoint_root) if resume else None
    changed = checkpoint is not None and layout.ppo_recipe.read_text(encoding="utf-8") != recipe_yaml(recipe)
    state = load_state(checkpoint) if checkpoint else TrainingState(step=0, episode=0, extra={})
    log = load_log(checkpoint) if checkpoint else []
    ranks.wait_for_everyone()  # every rank has read the checkpoint before the main process rewrites the folder
    if changed:
        raise ParleyError(f"the recipe changed since {checkpoint} was written; run without --resume to start over")
    if checkpoint is not None and state.extra.get("world_size", 1) != world:
        raise ParleyError(f"{checkpoint} was written by {state.extra.get('world_size', 1)} process(es); resume "
                          f"with the same number (the prompt order is per global batch), or run without --resume")
    if main:
        if checkpoint is None:
            for stale in (checkpoint_root, layout.ppo_best(), layout.tensorboard("ppo")):
                shutil.rmtree(stale, ignore_errors=True)
            layout.ppo_log.unlink(missing_ok=True)
        save_recipe(recipe, out)
        with open(layout.ppo_log, "w", encoding="utf-8") as handle:
            handle.writelines(json.dumps(entry) + "\n" for entry in log)
        if state.step >= cfg.steps:
            print(f"parley: ppo already finished {state.step} steps ({checkpoint})")

    root = recipe.run.root
    sft_adapter = _default_path(cfg.sft_adapter, recipe.run.layout.sft_adapter)
    reward_dir = _default_path(cfg.reward_dir, root)
    seed_step(recipe.run.seed, 0)
    tokenizer = load_tokenizer(recipe.policy.model, padding_side="left")
    base = load_sft_policy(recipe.policy.model, sft_adapter, recipe.policy.dtype)
    value_model = build_value_model(base, cfg.value_layers, tokenizer.pad_token_id)
    policy = add_ppo_adapter(base, cfg.lora, checkpoint / ADAPTER if checkpoint else None)
    risk_dir = recipe.run.layout.risk_model
    composite = CompositeReward.from_pretrained(reward_dir, tokenizer, recipe.reward.composite,
                                                risk_dir=str(risk_dir) if risk_dir.is_dir() else None)

    train_rows, judge_rows, bad = load_prompt_pools(recipe.data.data_dir, cfg.judge_prompts if cfg.judge_every else 0,
                                                    recipe.run.seed, cfg.max_prompts, recipe.data.on_bad_row,
                                                    cfg.kind_weights, cfg.prompt_sources)
    if main:
        bad.print_summary("ppo prompts")
    train_ids, dropped, kinds = tokenize_prompts(tokenizer, train_rows, cfg.max_prompt_tokens,
                                                 recipe.policy.system_prompt)
    if len(train_ids) < cfg.batch_size * world:
        raise ParleyError(f"only {len(train_ids)} PPO prompts fit ppo.max_prompt_tokens={cfg.max_prompt_tokens}; "
                          f"need at least ppo.batch_size={cfg.batch_size} x {world} process(es)")
    if "lagrange" in state.extra:
        composite.lagrange.value = float(state.extra["lagrange"])
    pad = tokenizer.pad_token_id
    by_prompt = {tuple(t for t in entry["input_ids"] if t != pad): kind
                 for entry, kind in zip(train_ids, kinds, strict=True) if kind is not None}
    composite.set_prompt_kinds(by_prompt, pad)
    if cfg.kind_baseline_momentum is not None:
        composite.use_kind_baselines(by_prompt, pad, cfg.kind_baseline_momentum, state.extra.get("kind_baselines"))
    from datasets import Dataset

    dataset = Dataset.from_list(train_ids)

    trainable = [p for p in (*policy.parameters(), *value_model.parameters()) if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=cfg.learning_rate, eps=1e-5)
    scheduler = get_scheduler(cfg.lr_scheduler, optimizer, num_warmup_steps=0, num_training_steps=cfg.steps)
    if checkpoint is not None:
        restore_trainer_state(checkpoint, value_model, optimizer, scheduler)

    writer = SummaryWriter(log_dir=str(layout.tensorboard("ppo"))) if main else None
    judge = _Judge(policy, tokenizer, judge_rows, cfg, layout.ppo_best(), recipe.policy.system_prompt,
                   state.extra.get("best_judge_score"))
    global_batch = cfg.batch_size * world

    def after_update(step: int) -> dict[str, float]:
        # Pooled over ranks, so the logged means and the Lagrange multiplier are the same on every rank.
        return composite.step(gather=gather_objects if world > 1 else None)

    def judge_watch(step: int) -> float | None:
        # The main process judges (and keeps the best adapter); the broadcast doubles as the barrier.
        result = (judge(step), judge.best) if main else (None, None)
        score, judge.best = broadcast(result)
        return score

    def save(step: int, entries: list[dict[str, Any]]) -> Path:
        path = checkpoint_root / f"{PREFIX}{step}"
        if main:
            extra = {"lagrange": composite.lagrange.value, "best_judge_score": judge.best, "world_size": world,
                     "kind_baselines": composite.kind_baselines}
            path = save_checkpoint(checkpoint_root, TrainingState(step, step * global_batch, extra), policy,
                                   value_model, optimizer, scheduler, entries, cfg.keep_checkpoints)
        ranks.wait_for_everyone()
        return path

    callback = ParleyPPOCallback(cfg, recipe.run.seed, state.step, log, layout.ppo_log if main else None, writer,
                                 after_update=after_update, save=save,
                                 judge=judge_watch if cfg.judge_every else None,
                                 checkpoint_root=checkpoint_root, batch_size=global_batch,
                                 dataset_size=len(dataset), rank=rank)
    remaining = max(cfg.steps - state.step, 0)
    prefix = FrozenPrefixCache(policy, depth=None if cfg.reuse_frozen_layers else 0)
    started = time.time()
    if remaining:
        trainer = PPOTrainer(
            args=ppo_config(cfg, out, recipe.run.seed, remaining, recipe.policy.dtype, world),
            processing_class=tokenizer, model=policy, ref_model=None, reward_model=composite,
            train_dataset=dataset, value_model=value_model, eval_dataset=dataset.select(range(cfg.batch_size)),
            optimizers=(optimizer, scheduler), callbacks=[callback],
        )
        _prepare_for_ranks(trainer)
        sampler = ResumableSampler(len(dataset), cfg.batch_size, recipe.run.seed, skip_batches=state.step,
                                   num_replicas=world, rank=rank)
        # The loader gets its own generator: creating an iterator would otherwise draw from the global RNG,
        # and a resumed run creates its first iterator at a different step than an uninterrupted one.
        # It is not passed through accelerator.prepare: the sampler already gives each rank its own slice of each
        # global batch (prepare would deal out whole batches round-robin), and TRL moves the batch to the device.
        trainer.dataloader = DataLoader(
            dataset, batch_size=cfg.batch_size, sampler=sampler, collate_fn=trainer.data_collator, drop_last=True,
            generator=torch.Generator().manual_seed(recipe.run.seed))
        with prefix.installed():
            trainer.train()
        if cfg.checkpoint_every <= 0 or cfg.steps % cfg.checkpoint_every:
            save(cfg.steps, log)
    write_rank_report(out, stage="ppo", trainable_sha256=trainable_digest(policy, value_model),
                      lagrange=composite.lagrange.value, steps=cfg.steps, global_batch=global_batch,
                      final={k: log[-1][k] for k in sorted(log[-1]) if k.startswith(("reward/", "judge/"))}
                      if log else {})
    if not main:
        ranks.wait_for_everyone()  # the main process exports and writes metrics.json
        return read_metrics(out)
    writer.close()
    policy.save_pretrained(recipe.run.layout.ppo_adapter())
    tokenizer.save_pretrained(recipe.run.layout.ppo_adapter())
    chosen = chosen_ppo_adapter(out)
    export_policy_adapter(recipe.policy.model, sft_adapter, chosen, recipe.run.layout.policy_adapter("ppo"), tokenizer)
    plot_log_history(log, CURVE_KEYS, out / "ppo_curves.png", "PPO")
    metrics = {
        "steps": cfg.steps,
        "resumed_from_step": state.step if checkpoint else None,
        "prompts": len(dataset),
        "prompts_dropped_for_length": dropped,
        "judge_prompts": len(judge_rows),
        "best_judge_score": judge.best,
        "sft_adapter": sft_adapter,
        "reward_dir": reward_dir,
        "adapter_dir": str(recipe.run.layout.ppo_adapter()),
        "best_adapter_dir": str(best) if (best := recipe.run.layout.ppo_best_adapter()).exists() else None,
        # SFT + the judge-selected PPO adapter as one adapter on the base model (for quantize/serve/evaluate).
        "policy_adapter_dir": str(recipe.run.layout.policy_adapter("ppo")),
        "policy_adapter_from": str(chosen),
        "final": {k: v for k, v in (log[-1] if log else {}).items()},
        "wall_s_this_run": round(time.time() - started, 1),
        "episodes_per_s_this_run": round(remaining * global_batch / max(time.time() - started, 1e-9), 3),
        # Rows whose frozen lower layers were replayed from the rollout vs run again (see frozen_prefix.py).
        "frozen_prefix": {"depth": prefix.depth, **prefix.stats},
    }
    if world > 1:
        metrics["processes"] = world
    write_metrics(out, metrics)
    ranks.wait_for_everyone()
    return metrics


def _refuse_deepspeed() -> None:
    """Checkpoints save the optimizer (ZeRO shards it) and the judge reads the policy on the main process only."""
    if os.environ.get("ACCELERATE_USE_DEEPSPEED", "false").lower() == "true":
        raise ParleyError("PPO runs data-parallel (DDP), not under DeepSpeed ZeRO: its checkpoints and judge watch "
                          "read the optimizer and policy on the main process only; launch it with "
                          "configs/accelerate/ddp-multigpu.yaml (the LoRA policy is small enough to replicate)")


def _prepare_for_ranks(trainer) -> None:
    """Let TRL 1.12 find ``model.policy`` when DDP wraps its policy-and-value module."""
    # DDP wraps PolicyAndValueWrapper, and TRL 1.12 reads ``model.policy`` off the wrapped model for the
    # reference forward pass (adapter disabled): make that attribute resolve to the wrapped policy.
    wrapped = trainer.model
    if not hasattr(wrapped, "policy"):
        object.__setattr__(wrapped, "policy", trainer.accelerator.unwrap_model(wrapped).policy)
