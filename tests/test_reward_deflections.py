"""Deflection hard negatives: right rows, right rejected side, chosen untouched, wired into build_pairs."""

from __future__ import annotations

import random
from pathlib import Path

from dialogue.data_loading import BadRows
from reward_models.config import RewardSection
from reward_models.deflections import NON_ANSWERS, REFUSALS, deflection_pairs
from reward_models.pairs import build_pairs

DATA = Path(__file__).resolve().parents[1] / "data"


def _row(category: str, chosen: str) -> dict:
    return {"prompt": [{"role": "user", "content": "q"}], "chosen": [{"role": "assistant", "content": chosen}],
            "rejected": [{"role": "assistant", "content": "bad"}], "context": None, "category": category}


def test_refusal_is_never_the_rejected_side_of_a_request_to_refuse():
    rows = [_row("harmful", "I can't help with that request.")] * 50 + [_row("benign_risky", "Yes, 30 days.")] * 50
    pairs = deflection_pairs(rows, 100, random.Random(0))
    assert len(pairs) == 100
    harmful = [p for p in pairs if p["category"] == "deflection:harmful"]
    benign = [p for p in pairs if p["category"] == "deflection:benign_risky"]
    assert harmful and benign
    assert all(p["rejected"][0]["content"] in NON_ANSWERS for p in harmful)
    assert all(p["chosen"][0]["content"] == "I can't help with that request." for p in harmful)
    assert any(p["rejected"][0]["content"] in REFUSALS for p in benign)


def test_build_pairs_adds_deflections_to_training_and_a_heldout_set():
    cfg = RewardSection(train_rows=40, deflection_pairs=12)
    plain = build_pairs(RewardSection(train_rows=40), str(DATA), "quality", 3, BadRows())
    pairs = build_pairs(cfg, str(DATA), "quality", 3, BadRows())
    assert pairs.counts["deflection_train"] == 12
    assert len(pairs.train) == len(plain.train) + 12
    heldout = pairs.heldout["deflection"]
    assert len(heldout) == len(pairs.heldout["project"])
    assert all(r["rejected"][0]["content"] in NON_ANSWERS + REFUSALS for r in heldout)
    assert "deflection" not in plain.heldout


def test_refusal_balance_draws_as_many_wrong_refusals_as_right_ones():
    safety = {"harmful", "fraud", "other_customer_data", "prompt_injection"}
    plain = build_pairs(RewardSection(train_rows=100), str(DATA), "safety", 5, BadRows())
    balanced = build_pairs(RewardSection(train_rows=100, refusal_balance=True), str(DATA), "safety", 5, BadRows())
    count = {name: sum(r["category"] == "benign_risky" for r in p.train) for name, p in
             (("plain", plain), ("balanced", balanced))}
    assert len(balanced.train) == len(plain.train) == 100
    assert count["balanced"] == 50 == sum(r["category"] in safety for r in balanced.train)
    assert count["plain"] < 35  # one category of five: about 20 in a uniform draw
    again = build_pairs(RewardSection(train_rows=100, refusal_balance=True), str(DATA), "safety", 5, BadRows())
    assert again.train == balanced.train
    quality = build_pairs(RewardSection(train_rows=60, refusal_balance=True), str(DATA), "quality", 5, BadRows())
    assert len(quality.train) == 60  # no refusal categories there: a plain draw
