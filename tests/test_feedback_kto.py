"""The exported KTO file is TRL's unpaired preference format: it loads with ``datasets`` and one ``KTOTrainer``
step runs on it (tiny random Llama built in the test, CPU)."""

from __future__ import annotations

import json
from pathlib import Path

from serving.feedback.export import KTO_FILE, export_feedback, preference_file
from serving.feedback.store import FeedbackStore

QUESTIONS = ["Where is my order?", "How do I reset my password?", "Can I return shoes?", "Do you ship to Spain?"]


def _fill(store: FeedbackStore) -> None:
    for i, question in enumerate(QUESTIONS):
        conv = store.create_conversation("support", "tiny")
        store.add_message(conv, "user", question)
        good = store.add_message(conv, "assistant", f"Here is how: step {i}.")
        store.record_feedback(good, "ann", like=True)
        conv = store.create_conversation("support", "tiny")
        store.add_message(conv, "user", question)
        bad = store.add_message(conv, "assistant", "I cannot help with that.")
        store.record_feedback(bad, "bob", reason="over_refusal" if i % 2 else "unhelpful",
                              correction=f"Sure: step {i} explains it.")


def test_kto_export_trains_one_step_with_trl(tmp_path: Path) -> None:
    import torch
    from datasets import load_dataset
    from trl import KTOConfig, KTOTrainer
    from trl.data_utils import is_conversational

    from groundwork.models import load_causal_lm, load_tokenizer

    url = f"sqlite:///{tmp_path / 'feedback.db'}"
    with FeedbackStore(url) as store:
        _fill(store)
    counts = export_feedback(url, tmp_path / "out")
    assert counts == {"quality": 4, "safety": 4, "faithfulness": 0, "kto": 12}

    dataset = load_dataset("json", data_files=str(tmp_path / "out" / KTO_FILE), split="train")
    assert len(dataset) == 12 and sum(dataset["label"]) == 8
    assert is_conversational(dataset[0]) and dataset[0]["completion"][0]["role"] == "assistant"
    pairs = load_dataset("json", data_files=str(tmp_path / "out" / preference_file("safety")), split="train")
    assert is_conversational(pairs[0]) and set(pairs.column_names) >= {"prompt", "chosen", "rejected"}

    torch.manual_seed(0)
    model = load_causal_lm("tiny-random-llama")
    tokenizer = load_tokenizer("tiny-random-llama", padding_side="left")
    args = KTOConfig(output_dir=str(tmp_path / "kto"), max_steps=1, per_device_train_batch_size=4,
                     learning_rate=1e-3, max_length=128, report_to="none", logging_steps=1, save_strategy="no",
                     dataloader_num_workers=0, use_cpu=True, disable_tqdm=True)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    trainer = KTOTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer)
    result = trainer.train()
    assert trainer.state.global_step == 1 and torch.isfinite(torch.tensor(result.training_loss))
    assert any(not torch.equal(before[n], p) for n, p in trainer.model.named_parameters()), "no weight changed"
    logged = json.dumps(trainer.state.log_history)
    assert "rewards/chosen" in logged or "logps/chosen" in logged
