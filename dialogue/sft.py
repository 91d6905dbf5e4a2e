"""Supervised fine-tuning stage: TRL ``SFTTrainer`` + a PEFT LoRA adapter.

Trains on grounded support conversations and translation requests (plus any
``data.sft_sources``), with the loss on the assistant's final turn only
(TRL's conversational prompt/completion format). Eval loss on held-out rows is
measured before training (adapter initialized to zero = the base model) and
after, so the stage shows whether it helped.
"""

from __future__ import annotations

import random
import shutil
import time
from pathlib import Path
from typing import Any

from dialogue.answer_rows import answer_rows
from dialogue.handoff_rows import handoff_rows
from dialogue.refusal_rows import refusal_rows
from groundwork.data_loading import (
    BadRows,
    load_preferences,
    load_source,
    load_support,
    load_translation,
    preference_to_conversation,
    to_prompt_completion,
)
from groundwork.distributed import distributed_state, trainable_digest, write_rank_report
from groundwork.errors import ConfigError
from groundwork.lane_threads import lane_threads_callback
from groundwork.models import load_causal_lm, load_tokenizer
from groundwork.plots import plot_log_history
from groundwork.precision import trainer_precision
from groundwork.recipe import Recipe, SFTSection, takes
from groundwork.runs import recipe_yaml, save_recipe, write_metrics
from groundwork.sections.lora import peft_lora_config


def _sample(rows: list[dict], limit: int | None, rng: random.Random) -> list[dict]:
    if limit is None or limit >= len(rows):
        return list(rows)
    return rng.sample(rows, limit)


def _sample_safety(rows: list[dict], cfg: SFTSection, rng: random.Random) -> list[dict]:
    """``cfg.safety_rows`` safety pairs, with ``cfg.benign_risky_share`` of them benign-but-risky when set."""
    if cfg.benign_risky_share is None:
        return _sample(rows, cfg.safety_rows, rng)
    benign = [r for r in rows if r.get("category") == "benign_risky"]
    risky = [r for r in rows if r.get("category") != "benign_risky"]
    wanted = round(cfg.safety_rows * cfg.benign_risky_share)
    if wanted > len(benign) or cfg.safety_rows - wanted > len(risky):
        raise ConfigError(f"sft.benign_risky_share={cfg.benign_risky_share} of {cfg.safety_rows} safety rows needs "
                          f"{wanted} benign-but-risky and {cfg.safety_rows - wanted} other pairs; the data has "
                          f"{len(benign)} and {len(risky)}")
    return _sample(benign, wanted, rng) + _sample(risky, cfg.safety_rows - wanted, rng)


def with_retrieved_context(rows: list[dict], kb: Any, passages: int) -> list[dict]:
    """Support rows whose context is what the server would retrieve for their question (see
    ``SFTSection.retrieved_passages``); rows without a KB article or a context are left as they are."""
    from groundwork.chat_format import last_user_text
    from serving.retrieval import prompt_passage

    articles = {passage.id for passage in kb.passages}
    out = []
    for row in rows:
        own = next((i for i in row.get("kb_ids") or [] if i in articles), None)
        if own is None or not row.get("context"):
            out.append(row)
            continue
        hits = kb.search_including(last_user_text(row["messages"]), passages, [own])
        out.append({**row, "context": [prompt_passage(hit.title, hit.text) for hit in hits]})
    return out


def build_sft_datasets(recipe: Recipe) -> tuple[list[dict], list[dict], BadRows]:
    """Train and held-out rows in prompt/completion form, deterministically sampled by the run seed."""
    cfg, data = recipe.sft, recipe.data
    bad = BadRows(data.on_bad_row)
    rng = random.Random(recipe.run.seed)
    support = _sample(load_support(data.data_dir, "train", bad), cfg.support_rows, rng)
    others = _sample(load_translation(data.data_dir, "train", bad), cfg.translation_rows, rng)
    if cfg.safety_rows != 0:
        # The chosen side of safety pairs: refusals of harmful requests and help with benign-but-risky ones.
        safety = load_preferences(data.data_dir, "safety", "train", bad)
        others += [preference_to_conversation(r) for r in _sample_safety(safety, cfg, rng)]
    for source in data.sft_sources:
        extra = load_source(source.kind, source.path, source.split, source.max_rows, bad)
        others += [row for row in extra if "messages" in row and row["messages"][-1]["role"] == "assistant"]
    half = cfg.eval_rows // 2
    heldout_support = _sample(load_support(data.data_dir, "heldout", bad), half, rng)
    heldout_translation = _sample(load_translation(data.data_dir, "heldout", bad), cfg.eval_rows - half, rng)
    kb = None
    if cfg.retrieved_passages:
        from serving.retrieval import KnowledgeBase

        kb = KnowledgeBase.load(Path(data.data_dir) / "kb")
        support = with_retrieved_context(support, kb, cfg.retrieved_passages)
        heldout_support = with_retrieved_context(heldout_support, kb, cfg.retrieved_passages)
    # Drawn in this order so that a recipe without answer rows draws what it drew before they existed.
    train = support + handoff_rows(recipe, kb, rng) + refusal_rows(recipe, kb, rng) + answer_rows(recipe, kb, rng)
    train += others
    heldout = heldout_support + heldout_translation
    rng.shuffle(train)
    system = recipe.policy.system_prompt
    return ([to_prompt_completion(r, system) for r in train], [to_prompt_completion(r, system) for r in heldout], bad)


def _discard_stale_checkpoints(recipe: Recipe, out: Path) -> None:
    """Resume only checkpoints written by this same recipe; a changed recipe starts over."""
    saved = recipe.run.layout.recipe("sft")
    if saved.is_file() and saved.read_text(encoding="utf-8") != recipe_yaml(recipe):
        shutil.rmtree(out / "trainer", ignore_errors=True)


def _latest_checkpoint(trainer_dir: Path) -> str | None:
    checkpoints = sorted(trainer_dir.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[-1]))
    return str(checkpoints[-1]) if checkpoints else None


@takes("run", "policy", "data", "sft")
def run_sft(recipe: Recipe) -> dict[str, Any]:
    """Run the SFT stage and return its metrics (also written to ``runs/<run>/sft/metrics.json``).

    Under ``accelerate launch`` the Trainer runs data-parallel (``sft.batch_size`` is per process); only the
    main process writes the adapter, plots, TensorBoard and metrics.
    """
    from datasets import Dataset
    from torch.utils.tensorboard import SummaryWriter
    from transformers.integrations import TensorBoardCallback
    from trl import SFTConfig, SFTTrainer

    ranks = distributed_state()
    main = ranks.is_main_process
    cfg = recipe.sft
    out = recipe.run.layout.stage_dir("sft")
    if main:
        _discard_stale_checkpoints(recipe, out)
        save_recipe(recipe, out)
    ranks.wait_for_everyone()  # no rank looks for a checkpoint to resume while stale ones are being removed
    train_rows, eval_rows, bad = build_sft_datasets(recipe)
    if main:
        bad.print_summary("sft data")
    tokenizer = load_tokenizer(recipe.policy.model, padding_side="right")
    model = load_causal_lm(recipe.policy.model, recipe.policy.dtype)
    model.train()

    args = SFTConfig(
        output_dir=str(out / "trainer"),
        per_device_train_batch_size=cfg.batch_size,
        per_device_eval_batch_size=cfg.batch_size,
        gradient_accumulation_steps=cfg.grad_accum,
        learning_rate=cfg.learning_rate,
        num_train_epochs=cfg.epochs,
        max_steps=cfg.max_steps,
        warmup_steps=cfg.warmup_ratio,
        lr_scheduler_type="cosine",
        max_length=cfg.max_length,
        logging_steps=cfg.logging_steps,
        save_steps=cfg.save_steps,
        save_total_limit=2,
        seed=recipe.run.seed,
        data_seed=recipe.run.seed,
        report_to="none",
        # A bf16 policy trains in bf16; a float32 one in bf16 mixed precision per run.mixed_precision.
        **trainer_precision(recipe.run.mixed_precision, recipe.policy.dtype),
        dataloader_num_workers=0,
        completion_only_loss=True,
        # Recomputing activations doubles step time on CPU; a 135M policy's activations fit in memory.
        gradient_checkpointing=cfg.gradient_checkpointing,
        # Batches of similar length: support prompts carry KB passages, translations are short.
        train_sampling_strategy="group_by_length",
    )
    lora = peft_lora_config(cfg.lora, model.config)
    writer = SummaryWriter(log_dir=str(recipe.run.layout.tensorboard("sft"))) if main else None
    trainer = SFTTrainer(
        model=model,
        args=args,
        train_dataset=Dataset.from_list(train_rows),
        eval_dataset=Dataset.from_list(eval_rows),
        processing_class=tokenizer,
        peft_config=lora,
        callbacks=[lane_threads_callback(),
                   *([TensorBoardCallback(tb_writer=writer)] if writer is not None else [])],
    )
    started = time.time()
    # With several processes, evaluate() before train() marks the model as prepared and train() then skips the
    # DDP wrap, so each rank would train its own copy (transformers 5.24 / accelerate 1.15). There the base model
    # is measured after training with the adapter disabled: the same model, as a fresh LoRA adapter is zero.
    distributed = ranks.num_processes > 1
    before = None if distributed else trainer.evaluate(metric_key_prefix="eval_before")
    result = trainer.train(resume_from_checkpoint=_latest_checkpoint(out / "trainer"))
    after = trainer.evaluate(metric_key_prefix="eval_after")
    if distributed:
        with trainer.model.disable_adapter():
            before = trainer.evaluate(metric_key_prefix="eval_before")
    write_rank_report(out, stage="sft", trainable_sha256=trainable_digest(trainer.model),
                      steps=trainer.state.global_step)
    if trainer.is_deepspeed_enabled or trainer.is_fsdp_enabled:
        # collective: gathers sharded weights, the main process writes
        trainer.save_model(str(recipe.run.layout.sft_adapter))
    elif main:
        trainer.model.save_pretrained(recipe.run.layout.sft_adapter)
    if main:
        tokenizer.save_pretrained(recipe.run.layout.sft_adapter)
        writer.close()
        plot_log_history(trainer.state.log_history, ["loss"], out / "loss_curve.png", "SFT training loss")

    metrics = {
        "base_model": recipe.policy.model,
        "adapter_dir": str(recipe.run.layout.sft_adapter),
        "train_rows": len(train_rows),
        "eval_rows": len(eval_rows),
        "skipped_rows": len(bad.problems),
        "eval_loss_before": before["eval_before_loss"],
        "eval_loss_after": after["eval_after_loss"],
        "train_loss": result.training_loss,
        "steps": trainer.state.global_step,
        "train_tokens_per_s": _tokens_per_s(trainer.state.log_history, result.metrics),
        "wall_s": round(time.time() - started, 1),
    }
    if ranks.num_processes > 1:
        metrics["processes"] = ranks.num_processes
    if main:
        write_metrics(out, metrics)
    ranks.wait_for_everyone()  # the next stage (often launched right after) finds the adapter complete
    return metrics


def _tokens_per_s(log_history: list[dict], train_metrics: dict) -> float | None:
    tokens = max((e.get("num_tokens", 0) for e in log_history), default=0)
    runtime = train_metrics.get("train_runtime")
    return round(tokens / runtime, 1) if tokens and runtime else None
