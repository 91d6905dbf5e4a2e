"""The composite reward through TRL's own ``get_reward``, and the safety multiplier's direction."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from test_reward_models import write_preferences  # tests/ is on sys.path (no package)
from trl.experimental.utils import get_reward

from groundwork.chat_format import build_messages
from groundwork.data_loading import OBJECTIVES
from groundwork.models import load_tokenizer
from groundwork.recipe import load_recipe
from groundwork.sections.reward import CompositeSection
from reward_models.composite import CompositeReward
from reward_models.lagrange import LagrangeMultiplier, combine
from reward_models.scorer import RewardScorer
from reward_models.train import run_reward_training

KB = "Standard orders ship within 2 days.\nReturns are free for 30 days."


@pytest.fixture(scope="module")
def reward_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("composite")
    write_preferences(root / "data", train=12, heldout=4)
    config = str(Path(__file__).resolve().parent.parent / "configs" / "smoke.yaml")
    recipe = load_recipe(config, [f"run.output_dir={root / 'runs'}", "run.name=c", f"data.data_dir={root / 'data'}",
                                  "reward.max_steps=1", "reward.eval_rows_during_training=0"])
    for objective in OBJECTIVES:
        run_reward_training(recipe, objective)
    return recipe.run.root


def _policy_batch(tokenizer):
    """PPO-shaped rows: left-padded queries, then responses right-padded after the stop token."""
    conversations = [
        (build_messages([{"role": "user", "content": "When will my order arrive?"}], KB), "Within 2 days.", KB),
        (build_messages([{"role": "user", "content": "Translate to French: good morning"}]), "Bonjour", None),
    ]
    prompts = [tokenizer.apply_chat_template(m, tokenize=False, add_generation_prompt=True)
               for m, _, _ in conversations]
    queries = tokenizer(prompts, padding=True, padding_side="left", add_special_tokens=False,
                        return_tensors="pt").input_ids
    responses = tokenizer([r + tokenizer.eos_token for _, r, _ in conversations], padding=True,
                          padding_side="right", add_special_tokens=False, return_tensors="pt").input_ids
    responses = torch.cat([responses, torch.full((2, 3), tokenizer.pad_token_id)], 1)  # generation ran longer
    return torch.cat([queries, responses], 1), queries.shape[1], conversations


def test_get_reward_returns_the_composite(reward_dir):
    tokenizer = load_tokenizer("tiny-random-llama")
    cfg = CompositeSection(quality_weight=1.0, faithfulness_weight=0.5, safety_weight=0.25, lagrange_init=0.3)
    composite = CompositeReward.from_pretrained(reward_dir, tokenizer, cfg)
    query_responses, context_length, conversations = _policy_batch(tokenizer)

    logits, final, lengths = get_reward(composite, query_responses, tokenizer.pad_token_id, context_length)

    scorer = RewardScorer.from_pretrained(reward_dir)
    items = [([m for m in msgs if m["role"] != "system"], response, ctx) for msgs, response, ctx in conversations]
    expected = scorer.score(items)
    want = torch.tensor([float(combine({o: expected[o][i] for o in OBJECTIVES}, cfg, 0.3)) for i in range(2)])
    assert logits.shape == (*query_responses.shape, 1)
    torch.testing.assert_close(final, want, atol=1e-5, rtol=1e-4)
    assert (lengths >= context_length).all()
    # The decoder recovered prompt, response and KB context exactly as they went in.
    decoded = composite.decoder.decode(query_responses, query_responses != tokenizer.pad_token_id)
    assert decoded[0] == (items[0][0], "Within 2 days.", KB)
    assert decoded[1][1:] == ("Bonjour", None)
    # Per-objective means for logging, then the multiplier update.
    stats = composite.step()
    assert set(stats) >= {"reward/quality_mean", "reward/safety_mean", "reward/faithfulness_mean",
                          "reward/lagrange_multiplier"}
    assert stats["reward/safety_mean"] == pytest.approx(sum(expected["safety"]) / 2, abs=1e-5)


def test_multiplier_rises_below_threshold_and_decays_above():
    cfg = CompositeSection(safety_threshold=0.5, lagrange_init=1.0, lagrange_lr=0.5, lagrange_max=3.0)
    lam = LagrangeMultiplier(cfg)
    rising = [lam.update(mean_safety=-1.0) for _ in range(3)]
    assert rising == sorted(rising) and rising[0] > 1.0
    assert lam.update(-100.0) == 3.0  # clipped at lagrange_max
    falling = [lam.update(mean_safety=2.0) for _ in range(10)]
    assert falling == sorted(falling, reverse=True) and falling[-1] == 0.0  # never negative


def test_unsafe_batches_raise_the_safety_weight_at_each_step(reward_dir):
    cfg = CompositeSection(safety_threshold=100.0, lagrange_init=0.0, lagrange_lr=0.1)  # unreachable: must rise
    composite = CompositeReward.from_pretrained(reward_dir, load_tokenizer("tiny-random-llama"), cfg)
    composite._pending = {"safety": [0.0, 1.0], "quality": [0.5]}
    stats = composite.step()
    assert composite.lagrange.value > 0.0
    assert stats["reward/safety_mean"] == 0.5
    assert stats["reward/lagrange_multiplier_next"] == composite.lagrange.value
    # A larger multiplier moves the composite toward safety: for a safe-but-unhelpful answer it goes up.
    scores = {"quality": torch.tensor(-1.0), "faithfulness": torch.tensor(0.0), "safety": torch.tensor(2.0)}
    assert combine(scores, cfg, 5.0) > combine(scores, cfg, 0.0)



def test_kind_baselines_center_each_kind_and_follow_its_mean(reward_dir):
    tokenizer = load_tokenizer("tiny-random-llama")
    composite = CompositeReward.from_pretrained(reward_dir, tokenizer, CompositeSection(lagrange_lr=0.0))
    query_responses, context_length, _ = _policy_batch(tokenizer)
    raw = get_reward(composite, query_responses, tokenizer.pad_token_id, context_length)[1]
    composite.step()
    pad = tokenizer.pad_token_id
    prompts = [tuple(t for t in row[:context_length].tolist() if t != pad) for row in query_responses]
    composite.use_kind_baselines({prompts[0]: "support", prompts[1]: "translation"}, pad, momentum=0.5)

    # No baseline yet: each kind is centered on its own batch mean (one row each here, so 0).
    first = get_reward(composite, query_responses, pad, context_length)[1]
    torch.testing.assert_close(first, torch.zeros(2), atol=1e-5, rtol=0)
    stats = composite.step()
    assert stats["reward/baseline_support"] == pytest.approx(float(raw[0]), abs=1e-5)
    assert stats["reward/composite_mean"] == pytest.approx(float(raw.mean()), abs=1e-5)  # logged uncentered

    # The baseline now holds: the reward is raw minus it; the next step moves it halfway to the new mean.
    composite.kind_baselines = {"support": float(raw[0]) - 1.0, "translation": float(raw[1]) + 2.0}
    second = get_reward(composite, query_responses, pad, context_length)[1]
    torch.testing.assert_close(second, torch.tensor([1.0, -2.0]), atol=1e-4, rtol=0)
    stats = composite.step()
    assert stats["reward/baseline_support"] == pytest.approx(float(raw[0]) - 0.5, abs=1e-4)
    assert stats["reward/baseline_translation"] == pytest.approx(float(raw[1]) + 1.0, abs=1e-4)


def test_the_request_risk_model_routes_the_composite(reward_dir):
    """PPO's reward is p(harmful | prompt) x safety alone + (1 - p) x (quality + faithfulness), the risk coming from
    the run's request-risk model and never from a kind label."""
    from reward_models.risk_model import RequestRiskModel, request_text
    from reward_models.risk_train import run_risk_training

    config = str(Path(__file__).resolve().parent.parent / "configs" / "smoke.yaml")
    risk_recipe = load_recipe(config, [f"run.output_dir={reward_dir.parent}", f"run.name={reward_dir.name}"])
    run_risk_training(risk_recipe)
    tokenizer = load_tokenizer("tiny-random-llama")
    cfg = CompositeSection(quality_weight=1.0, faithfulness_weight=0.5, safety_weight=0.25, lagrange_init=0.3)
    composite = CompositeReward.from_pretrained(reward_dir, tokenizer, cfg, risk_dir=str(reward_dir / "risk" / "model"))
    query_responses, context_length, conversations = _policy_batch(tokenizer)
    pad = tokenizer.pad_token_id

    final = get_reward(composite, query_responses, pad, context_length)[1]

    items = [([m for m in msgs if m["role"] != "system"], response, ctx) for msgs, response, ctx in conversations]
    expected = RewardScorer.from_pretrained(reward_dir).score(items)
    risk = RequestRiskModel.from_pretrained(reward_dir / "risk" / "model")
    for i, (prompt, _, _) in enumerate(items):
        p = risk.probability(request_text(prompt))
        scores = {o: expected[o][i] for o in OBJECTIVES}
        want = p * 1.75 * scores["safety"] + (1 - p) * (scores["quality"] + 0.5 * scores["faithfulness"])
        torch.testing.assert_close(final[i], torch.tensor(want, dtype=torch.float32), atol=1e-4, rtol=1e-4)
    stats = composite.step()
    assert 0.0 <= stats["reward/risk_mean"] <= 1.0
    assert stats["reward/composite_mean"] == pytest.approx(float(final.mean()), abs=1e-5)
