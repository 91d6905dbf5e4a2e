"""Reward stage on the smoke recipe: training artifacts, normalization, scoring CLI, shared trunk, public splits."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import pytest
import torch

from groundwork.data_loading import OBJECTIVES
from groundwork.recipe import load_recipe
from parley.cli import main
from reward_models.evaluation import pair_scores, pairwise_metrics_by_category
from reward_models.pairs import split_public
from reward_models.scorer import RewardScorer
from reward_models.text import encode_reward_input, format_reward_text
from reward_models.train import run_reward_training


def _pair(i: int, objective: str) -> dict:
    context = f"Orders ship within {i % 5 + 1} days. Returns are free for 30 days." if objective != "safety" else None
    return {
        "prompt": [{"role": "user", "content": f"Question number {i}: when will my order arrive?"}],
        "chosen": [{"role": "assistant", "content": f"It ships within {i % 5 + 1} days, thank you for waiting."}],
        "rejected": [{"role": "assistant", "content": f"Whatever. Maybe in {i + 40} weeks, who knows."}],
        "context": context,
        "category": "vague" if i % 2 else "rude",
    }


def write_preferences(data_dir: Path, train: int = 24, heldout: int = 8) -> None:
    for objective in OBJECTIVES:
        folder = data_dir / "preferences" / objective
        folder.mkdir(parents=True, exist_ok=True)
        for split, rows in (("train", range(train)), ("heldout", range(1000, 1000 + heldout))):
            lines = [json.dumps(_pair(i, objective)) for i in rows]
            (folder / f"{split}.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, dict]:
    """All three objectives trained once with the smoke recipe (tiny-random-bert, a few steps each)."""
    root = tmp_path_factory.mktemp("reward")
    write_preferences(root / "data")
    feedback = root / "feedback.jsonl"
    feedback.write_text(json.dumps(_pair(7, "quality")) + "\n{not json\n", encoding="utf-8")
    config = str(Path(__file__).resolve().parent.parent / "configs" / "smoke.yaml")
    recipe = load_recipe(config, [f"run.output_dir={root / 'runs'}", "run.name=test", f"data.data_dir={root / 'data'}"])
    metrics = {o: run_reward_training(recipe, o, feedback=feedback if o == "quality" else None) for o in OBJECTIVES}
    return recipe.run.root, metrics


def test_training_writes_artifacts_and_metrics(trained):
    run_dir, metrics = trained
    for objective in OBJECTIVES:
        out = run_dir / f"reward-{objective}"
        for name in ("model/config.json", "model/model.safetensors", "model/tokenizer_config.json",
                     "model/normalization.json", "model/parley_reward.json", "metrics.json", "accuracy.png",
                     "score_distributions.png"):
            assert (out / name).is_file(), name
        assert list((out / "tensorboard").glob("events.out.tfevents.*"))
        m = metrics[objective]
        assert m["heldout"]["project"]["pairs"] == 8
        assert 0.0 <= m["heldout"]["project"]["accuracy"] <= 1.0
        assert set(m["heldout"]["project"]["accuracy_by_category"]) == {"rude", "vague"}
        assert m["steps"] == 4
        assert m["frozen_layers"] == 1
    # --feedback rows are mixed in; the malformed feedback line is skipped, not fatal.
    assert metrics["quality"]["rows"]["feedback_train"] == 1
    assert metrics["quality"]["rows"]["train"] == 25
    assert metrics["quality"]["skipped_rows"] == 1


def test_normalization_centers_the_reference_set(trained):
    run_dir, _ = trained
    scorer = RewardScorer.from_pretrained(run_dir)
    assert scorer.objectives == list(OBJECTIVES)
    from groundwork.data_loading import BadRows
    from reward_models.pairs import build_pairs

    recipe = load_recipe(str(run_dir / "reward-safety" / "recipe.yaml"))
    pairs = build_pairs(recipe.reward, recipe.data.data_dir, "safety", recipe.run.seed, BadRows())
    chosen, rejected = pair_scores(scorer, "safety", pairs.train, 16)
    values = chosen + rejected
    assert abs(statistics.mean(values)) < 1e-3
    assert abs(statistics.stdev(values) - 1.0) < 1e-3


def test_shared_trunk_matches_separate_forwards(trained):
    run_dir, _ = trained
    scorer = RewardScorer.from_pretrained(run_dir)
    assert scorer.shared_layers == 1 and len(scorer.groups) == 1
    group = scorer.groups[0]
    texts = [encode_reward_input(group.tokenizer, "where is my parcel?", r, "It ships in 2 days.", 128)
             for r in ("Tomorrow.", "I have no idea, go away and stop asking me things.")]
    width = max(map(len, texts))
    ids = torch.tensor([t + [group.tokenizer.pad_token_id] * (width - len(t)) for t in texts])
    mask = (torch.arange(width)[None, :] < torch.tensor([len(t) for t in texts])[:, None]).long()
    shared = group.module(ids, mask)
    for objective, model in group.module.models.items():
        with torch.no_grad():
            full = model(input_ids=ids, attention_mask=mask).logits.squeeze(-1)
        torch.testing.assert_close(shared[objective], full, atol=1e-5, rtol=1e-4)


def test_score_cli_adds_scores_and_skips_bad_rows(trained, tmp_path, capsys, smoke_config):
    run_dir, _ = trained
    rows = [
        {"prompt": "Where is my order?", "response": "It ships tomorrow.", "id": 1},
        {"prompt": [{"role": "user", "content": "Refund?"}], "response": "Yes, within 30 days.",
         "context": "Refunds within 30 days."},
        {"prompt": "missing response"},
    ]
    src = tmp_path / "in.jsonl"
    src.write_text("\n".join(json.dumps(r) for r in rows) + "\nnot json\n", encoding="utf-8")
    dst = tmp_path / "out.jsonl"
    assert main(["reward", "score", "-c", smoke_config, "--reward-dir", str(run_dir),
                 "--input", str(src), "--output", str(dst)]) == 0
    out = [json.loads(line) for line in dst.read_text(encoding="utf-8").splitlines()]
    assert len(out) == 2 and out[0]["id"] == 1
    for row in out:
        assert all(isinstance(row[k], float) for k in (*OBJECTIVES, "composite"))
    err = capsys.readouterr().err
    assert f"{src}:3" in err and f"{src}:4" in err


def test_score_cli_reports_missing_models(tmp_path, capsys, smoke_config):
    (tmp_path / "in.jsonl").write_text('{"prompt": "a", "response": "b"}\n', encoding="utf-8")
    code = main(["reward", "score", "-c", smoke_config, "--reward-dir", str(tmp_path / "nothing"),
                 "--input", str(tmp_path / "in.jsonl"), "--output", str(tmp_path / "o.jsonl")])
    assert code == 2
    assert "no reward models" in capsys.readouterr().err


def test_format_keeps_response_and_last_user_turn_under_truncation():
    from groundwork.models import load_tokenizer

    tok = load_tokenizer("tiny-random-bert", padding_side="right")
    prompt = [{"role": "user", "content": "old question " * 200}, {"role": "assistant", "content": "old answer"},
              {"role": "user", "content": "latest question about refunds"}]
    text = format_reward_text(tok, prompt, "refunds take five days", "kb passage " * 500, 64)
    assert text.startswith("assistant: refunds take five days")
    assert "user: latest question about refunds" in text
    assert "context: kb passage" in text
    ids = encode_reward_input(tok, prompt, "refunds take five days", "kb passage " * 500, 64)
    assert len(ids) <= 64 and ids[-1] == tok.sep_token_id
    # Messages built for the policy carry the KB in the system message: it is found there too.
    from groundwork.chat_format import build_messages

    assert "context: ships in 2 days." in format_reward_text(tok, build_messages("where?", "Ships in 2 days."), "ok",
                                                             None, 64).lower()


def test_public_split_is_disjoint_and_deterministic():
    rows = [{"i": i} for i in range(50)]
    heldout, pool = split_public(rows, 10, seed=3)
    again, _ = split_public(rows, 10, seed=3)
    assert heldout == again and len(heldout) == 10 and len(pool) == 40
    assert not {r["i"] for r in heldout} & {r["i"] for r in pool}


def test_accuracy_by_category_separates_the_categories() -> None:
    rows = [{"category": "a"}, {"category": "a"}, {"category": "b"}, {"category": "b"}, {}]
    chosen, rejected = [1.0, 1.0, 0.0, 1.0, 5.0], [0.0, 0.0, 1.0, 1.0, 0.0]
    assert pairwise_metrics_by_category(rows, chosen, rejected) == {"a": 1.0, "b": 0.25}  # a tie counts half


def test_auto_dtype_scoring_stays_close_to_float32(trained):
    """The server's explanation path (auto dtype) must say what the float32 models say.

    The smoke models' scores all sit near one value, so ``auto`` must keep them in float32."""
    run_dir, _ = trained
    items = [("where is my parcel?", answer, "It ships in 2 days. Returns are free.")
             for answer in ("Tomorrow.", "It ships within 2 days.", "I have no idea, go away and stop asking me.")]
    reference = RewardScorer.from_pretrained(run_dir).score(items)
    scores = RewardScorer.from_pretrained(run_dir, dtype="auto").score(items)
    for objective, values in reference.items():
        assert max(abs(a - b) for a, b in zip(values, scores[objective], strict=True)) < 0.1, objective


def test_scoring_dtype_keeps_float32_for_narrow_scores_and_rejects_unknown_names():
    from groundwork.precision import native_bf16_cpu
    from reward_models.normalization import Normalization
    from reward_models.scorer import scoring_dtype

    assert scoring_dtype("float32") is torch.float32
    assert scoring_dtype("auto", {"quality": Normalization(mean=0.029, std=7e-5)}) is torch.float32
    wide = {"quality": Normalization(mean=0.65, std=0.76)}
    assert scoring_dtype("auto", wide) is (torch.bfloat16 if native_bf16_cpu() else torch.float32)
    with pytest.raises(ValueError, match="unknown scoring dtype"):
        scoring_dtype("int3")


def test_wrong_language_translations_score_at_most_the_cap(trained):
    """Quality and faithfulness carry the recipe's cap in their metadata; safety does not."""
    run_dir, _ = trained
    metas = {o: json.loads((run_dir / f"reward-{o}" / "model" / "parley_reward.json").read_text()) for o in OBJECTIVES}
    assert metas["quality"]["rule_cap"] == -2.0 and metas["faithfulness"]["rule_cap"] == -2.0
    assert "rule_cap" not in metas["safety"]
    scorer = RewardScorer.from_pretrained(run_dir)
    assert scorer.rule_caps == {"quality": -2.0, "faithfulness": -2.0}
    request = "Translate into German: Your order will arrive on Friday, thank you for waiting."
    items = [(request, "Your order will arrive on Friday, thank you for waiting.", None),
             (request, "Ihre Bestellung wird am Freitag ankommen, danke für Ihre Geduld.", None)]
    capped = scorer.score(items)
    scorer.rule_caps = {}
    learned = scorer.score(items)
    for objective in ("quality", "faithfulness"):
        assert capped[objective][0] == min(learned[objective][0], -2.0)
        assert capped[objective][1] == learned[objective][1]
    assert capped["safety"] == learned["safety"]
    # A cap one unit under the English answer's learned score must bind (the -2 above may not, on a tiny model).
    scorer.rule_caps = {o: learned[o][0] - 1.0 for o in ("quality", "faithfulness")}
    binding = scorer.score(items)
    for objective in ("quality", "faithfulness"):
        assert binding[objective][0] == pytest.approx(learned[objective][0] - 1.0)
        assert binding[objective][1] == learned[objective][1]
