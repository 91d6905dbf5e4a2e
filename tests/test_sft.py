"""SFT stage on the smoke recipe: a real TRL SFTTrainer run with a LoRA adapter on the project data."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from dialogue.sft import build_sft_datasets, run_sft
from groundwork.recipe import load_recipe

ROOT = Path(__file__).resolve().parent.parent


def test_sft_datasets_are_prompt_completion_with_system_and_kb(smoke_config: str) -> None:
    recipe = load_recipe(smoke_config, [f"data.data_dir={ROOT / 'data'}"])
    train, heldout, bad = build_sft_datasets(recipe)
    assert len(train) == recipe.sft.support_rows + recipe.sft.translation_rows + recipe.sft.safety_rows
    assert len(heldout) == recipe.sft.eval_rows
    assert not bad.problems
    for row in train + heldout:
        assert row["prompt"][0]["role"] == "system"
        assert row["completion"][0]["role"] == "assistant" and row["completion"][0]["content"].strip()
    assert any("<kb>" in row["prompt"][0]["content"] for row in train)
    assert any(row["prompt"][-1]["content"].startswith("Translate") for row in train)
    # The same seed gives the same sample.
    again, _, _ = build_sft_datasets(recipe)
    assert again == train


def test_sft_support_rows_can_read_retrieved_passages_like_the_server(smoke_config: str) -> None:
    from dialogue.sft import with_retrieved_context
    from serving.retrieval import KnowledgeBase, prompt_passage

    plain = load_recipe(smoke_config, [f"data.data_dir={ROOT / 'data'}"])
    recipe = load_recipe(smoke_config, [f"data.data_dir={ROOT / 'data'}", "sft.retrieved_passages=2"])
    before, _, _ = build_sft_datasets(plain)
    train, heldout, _ = build_sft_datasets(recipe)
    assert [r["completion"] for r in train] == [r["completion"] for r in before]  # same rows, same order
    support = [r for r in train + heldout if "[2] " in r["prompt"][0]["content"]]
    assert support  # two numbered passages where the row's own article was one block
    assert not any("[2] " in r["prompt"][0]["content"] for r in before)

    kb = KnowledgeBase.load(ROOT / "data" / "kb")
    titles = {p.id: prompt_passage(p.title, p.text) for p in kb.passages}
    row = {"messages": [{"role": "user", "content": "Can I return a book with notes written in it?"},
                        {"role": "assistant", "content": "No."}], "context": "x", "kb_ids": ["gift-cards-validity"]}
    [changed] = with_retrieved_context([row], kb, 2)
    assert len(changed["context"]) == 2 and changed["context"][-1] == titles["gift-cards-validity"]  # put in
    found = with_retrieved_context([{**row, "kb_ids": [kb.search("Can I return a book with notes written in it?",
                                                                 1)[0].id]}], kb, 2)[0]
    assert found["context"] == [prompt_passage(p.title, p.text)
                                for p in kb.search("Can I return a book with notes written in it?", 2)]
    assert with_retrieved_context([{**row, "context": None}], kb, 2)[0]["context"] is None


def test_sft_trains_adapter_writes_metrics_plot_and_tensorboard(smoke_config: str, smoke_overrides) -> None:
    recipe = load_recipe(smoke_config, [*smoke_overrides, f"data.data_dir={ROOT / 'data'}"])
    metrics = run_sft(recipe)
    out = recipe.run.root / "sft"
    assert (out / "adapter" / "adapter_config.json").is_file()
    assert (out / "adapter" / "adapter_model.safetensors").is_file()
    assert (out / "loss_curve.png").stat().st_size > 1000
    assert list((out / "tensorboard").glob("events.out.tfevents.*"))
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["steps"] == recipe.sft.max_steps == metrics["steps"]
    assert saved["eval_loss_before"] > 0 and saved["eval_loss_after"] > 0
    # With a high learning rate even the tiny model must move its held-out loss.
    assert saved["eval_loss_after"] != saved["eval_loss_before"]


def test_generate_cli_with_adapter(smoke_config: str, smoke_overrides, tmp_path: Path) -> None:
    recipe = load_recipe(smoke_config, [*smoke_overrides, f"data.data_dir={ROOT / 'data'}"])
    run_sft(recipe)
    rows = [{"prompt": "Where is my order KM-10001?"},
            {"messages": [{"role": "user", "content": "Can I return shoes?"}], "context": "Returns: 30 days."},
            "not an object"]
    src = tmp_path / "in.jsonl"
    src.write_text("\n".join(json.dumps(r) for r in rows) + "\n{broken\n", encoding="utf-8")
    out = tmp_path / "out.jsonl"
    result = subprocess.run(
        [sys.executable, "-m", "parley.cli", "generate", "-c", smoke_config,
         *[arg for o in smoke_overrides for arg in ("--set", o)],
         "--adapter", str(recipe.run.root / "sft" / "adapter"), "--input", str(src), "--output", str(out),
         "--max-new-tokens", "4"],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    written = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [{k: v for k, v in r.items() if k != "response"} for r in written] == rows[:2]
    assert all(isinstance(r["response"], str) for r in written)
    assert "skipped 2 malformed row(s)" in result.stderr


def test_chat_cli_runs_a_multi_turn_conversation_from_stdin(smoke_config: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "parley.cli", "chat", "-c", smoke_config, "--max-new-tokens", "3"],
        input="Hello there\n/reset\nWhere is my parcel?\n/quit\nnever read\n",
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.count("assistant:") == 2
    assert "(conversation cleared)" in result.stdout


def test_benign_risky_share_sets_the_mix_of_safety_rows(smoke_config: str) -> None:
    import random

    import pytest

    from dialogue.sft import _sample_safety
    from groundwork.errors import ConfigError

    rows = [{"category": "benign_risky", "i": i} for i in range(30)]
    rows += [{"category": "fraud", "i": i} for i in range(90)]
    recipe = load_recipe(smoke_config, ["sft.safety_rows=40", "sft.benign_risky_share=0.5"])
    picked = _sample_safety(rows, recipe.sft, random.Random(0))
    assert len(picked) == 40 and sum(r["category"] == "benign_risky" for r in picked) == 20
    too_many = load_recipe(smoke_config, ["sft.safety_rows=80", "sft.benign_risky_share=0.5"])
    with pytest.raises(ConfigError, match="40 benign-but-risky"):
        _sample_safety(rows, too_many.sft, random.Random(0))
    for bad in (["sft.benign_risky_share=1.5"], ["sft.safety_rows=0", "sft.benign_risky_share=0.3"]):
        with pytest.raises(ConfigError, match="benign_risky_share"):
            load_recipe(smoke_config, bad)
