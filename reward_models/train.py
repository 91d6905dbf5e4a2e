"""``parley reward train``: one Bradley-Terry reward model per objective with TRL ``RewardTrainer``.

Pairs are pre-tokenized with :func:`reward_models.text.encode_reward_input` (the same layout scoring
and PPO use), so RewardTrainer's own text handling only sees ready ``chosen_ids``/``rejected_ids``.
After training: normalization on the train responses, held-out accuracy per eval set, plots, metrics.
"""

from __future__ import annotations

import json
import random
import time
from pathlib import Path
from typing import Any

from groundwork.data_loading import OBJECTIVES, BadRows, Row
from groundwork.distributed import distributed_state, trainable_digest, write_rank_report
from groundwork.errors import DataError
from groundwork.lane_threads import lane_threads_callback
from groundwork.precision import trainer_precision
from groundwork.recipe import Recipe, takes
from groundwork.runs import read_metrics, save_recipe, write_metrics
from reward_models.backbone import freeze_lower_layers, load_for_training, trunk_fingerprint
from reward_models.evaluation import pair_scores, pairwise_metrics, pairwise_metrics_by_category
from reward_models.grounding import META_KEY as GROUNDING_KEY
from reward_models.normalization import Normalization
from reward_models.pairs import FeedbackPaths, build_pairs
from reward_models.plots import plot_accuracy, plot_score_distributions
from reward_models.rule_gate import META_KEY as RULE_CAP_KEY
from reward_models.rule_gate import RULE_OBJECTIVES
from reward_models.scorer import META_FILE, RewardScorer
from reward_models.text import encode_reward_input

REFERENCE_PAIRS = 128  # train pairs whose chosen + rejected answers define the normalization


def tokenize_pairs(rows: list[Row], tokenizer, max_length: int) -> list[dict[str, list[int]]]:
    """RewardTrainer's pre-tokenized format."""
    out = []
    for row in rows:
        prompt, context = row["prompt"], row.get("context")
        out.append({
            "chosen_ids": encode_reward_input(tokenizer, prompt, row["chosen"][-1]["content"], context, max_length),
            "rejected_ids": encode_reward_input(tokenizer, prompt, row["rejected"][-1]["content"], context,
                                                max_length),
        })
    return out


def _reward_config(recipe: Recipe, out: Path, tokenizer, has_eval: bool):
    from trl import RewardConfig

    cfg = recipe.reward
    return RewardConfig(
        output_dir=str(out / "trainer"),
        # BERT-style tokenizers have no EOS; RewardTrainer needs one (our ids already end in [SEP]).
        eos_token=tokenizer.eos_token or tokenizer.sep_token,
        max_length=cfg.max_length,
        per_device_train_batch_size=cfg.batch_size,
        per_device_eval_batch_size=cfg.eval_batch_size,
        learning_rate=cfg.learning_rate,
        num_train_epochs=cfg.epochs,
        max_steps=cfg.max_steps,
        warmup_steps=cfg.warmup_ratio,
        lr_scheduler_type="linear",
        logging_steps=cfg.logging_steps,
        eval_strategy="steps" if has_eval else "no",
        eval_steps=cfg.eval_steps,
        save_strategy="no",
        report_to="none",
        seed=recipe.run.seed,
        data_seed=recipe.run.seed,
        dataloader_num_workers=0,
        disable_tqdm=False,
        # A 22M-parameter encoder needs no activation checkpointing (TRL turns it on by default; it costs ~30%).
        gradient_checkpointing=False,
        **trainer_precision(recipe.run.mixed_precision),
    )


@takes("run", "data", "reward")
def run_reward_training(recipe: Recipe, objective: str, feedback: FeedbackPaths | None = None) -> dict[str, Any]:
    """Train, normalize, evaluate and save one objective's reward model under ``runs/<run>/reward-<objective>/``.

    Under ``accelerate launch`` only training is data-parallel (``reward.batch_size`` is per process). Saving,
    normalization and the held-out evaluation run once, on the main process; the other ranks wait for it and
    return the metrics it wrote.
    """
    from datasets import Dataset
    from torch.utils.tensorboard import SummaryWriter
    from transformers.integrations import TensorBoardCallback
    from trl import RewardTrainer

    if objective not in OBJECTIVES:
        raise DataError(f"unknown objective {objective!r}; expected one of {OBJECTIVES}")
    ranks = distributed_state()
    main = ranks.is_main_process
    cfg = recipe.reward
    stage = recipe.run.layout.reward_stage(objective)
    out = recipe.run.layout.stage_dir(stage)
    if main:
        save_recipe(recipe, out)
    bad = BadRows(recipe.data.on_bad_row)
    pairs = build_pairs(cfg, recipe.data.data_dir, objective, recipe.run.seed, bad, feedback)
    if main:
        bad.print_summary(f"{stage} data")

    model, tokenizer = load_for_training(cfg.model)
    frozen = freeze_lower_layers(model, cfg.train_top_layers)
    fingerprint = trunk_fingerprint(model, frozen)
    train_ds = Dataset.from_list(tokenize_pairs(pairs.train, tokenizer, cfg.max_length))
    monitor_name = "project" if "project" in pairs.heldout else next(iter(pairs.heldout), None)
    eval_ds = None
    if monitor_name is not None and cfg.eval_rows_during_training > 0:
        monitor = random.Random(recipe.run.seed).sample(
            pairs.heldout[monitor_name], min(cfg.eval_rows_during_training, len(pairs.heldout[monitor_name])))
        eval_ds = Dataset.from_list(tokenize_pairs(monitor, tokenizer, cfg.max_length))

    writer = SummaryWriter(log_dir=str(recipe.run.layout.tensorboard(stage))) if main else None
    trainer = RewardTrainer(
        model=model,
        args=_reward_config(recipe, out, tokenizer, eval_ds is not None),
        train_dataset=train_ds,
        eval_dataset=eval_ds,
        processing_class=tokenizer,
        callbacks=[lane_threads_callback(),
                   *([TensorBoardCallback(tb_writer=writer)] if writer is not None else [])],
    )
    started = time.time()
    result = trainer.train()
    train_s = time.time() - started
    model = trainer.model.eval()
    write_rank_report(out, stage=stage, trainable_sha256=trainable_digest(model),
                      steps=trainer.state.global_step)
    if not main:
        ranks.wait_for_everyone()  # the main process saves, normalizes and evaluates
        return read_metrics(out)

    model_dir = recipe.run.layout.reward_model(objective)
    model.save_pretrained(model_dir)
    tokenizer.save_pretrained(model_dir)
    meta = {"objective": objective, "backbone": cfg.model, "max_length": cfg.max_length, "frozen_layers": frozen,
            "trunk_fingerprint": fingerprint}
    if objective in RULE_OBJECTIVES and cfg.rule_cap is not None:
        meta[RULE_CAP_KEY] = cfg.rule_cap
    if objective in RULE_OBJECTIVES and cfg.grounding_weight:
        meta[GROUNDING_KEY] = cfg.grounding_weight
    (model_dir / META_FILE).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")

    # Normalization is fitted on the learned scores alone; the KB-support blend and the rule cap (in
    # normalized units) then apply to the held-out evaluation below, as they will wherever the model is loaded.
    uncapped = {k: v for k, v in meta.items() if k not in (RULE_CAP_KEY, GROUNDING_KEY)}
    scorer = RewardScorer.from_models({objective: model}, {objective: tokenizer}, {objective: uncapped},
                                      {objective: Normalization()})
    reference = pairs.train[:REFERENCE_PAIRS]
    ref_chosen, ref_rejected = pair_scores(scorer, objective, reference, cfg.eval_batch_size)
    norm = Normalization.fit(ref_chosen + ref_rejected, f"chosen+rejected answers of {len(reference)} train pairs")
    norm.save(model_dir)
    scorer.norms[objective] = norm
    if RULE_CAP_KEY in meta:
        scorer.rule_caps[objective] = float(meta[RULE_CAP_KEY])
    if GROUNDING_KEY in meta:
        scorer.grounding_weights[objective] = float(meta[GROUNDING_KEY])

    heldout, distributions = {}, {}
    for name, rows in pairs.heldout.items():
        chosen, rejected = pair_scores(scorer, objective, rows, cfg.eval_batch_size)
        heldout[name] = pairwise_metrics(chosen, rejected)
        by_category = pairwise_metrics_by_category(rows, chosen, rejected)
        if len(by_category) > 1:
            heldout[name]["accuracy_by_category"] = by_category
        distributions[name] = (chosen, rejected)
        writer.add_scalar(f"heldout/{name}/accuracy", heldout[name]["accuracy"], trainer.state.global_step)
    writer.close()
    plot_accuracy(trainer.state.log_history, out / "accuracy.png", objective)
    if distributions:
        plot_score_distributions(distributions, out / "score_distributions.png", objective)

    metrics = {
        "objective": objective,
        "backbone": cfg.model,
        "model_dir": str(model_dir),
        "frozen_layers": frozen,
        "trainable_params": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "rows": pairs.counts,
        "skipped_rows": len(bad.problems),
        "heldout": heldout,
        "train_loss": result.training_loss,
        "steps": trainer.state.global_step,
        "normalization": {"mean": norm.mean, "std": norm.std},
        "train_s": round(train_s, 1),
        "wall_s": round(time.time() - started, 1),
    }
    if ranks.num_processes > 1:
        metrics["processes"] = ranks.num_processes
    write_metrics(out, metrics)
    ranks.wait_for_everyone()
    return metrics
