"""Deflection hard negatives: right rows, right rejected side, chosen untouched, wired into build_pairs."""

from __future__ import annotations

import random
from pathlib import Path

from groundwork.data_loading import BadRows
from groundwork.sections.reward import RewardSection
from reward_models.deflections import (
    NEAR_REFUSAL_OPENERS,
    NON_ANSWERS,
    REFUSALS,
    bare_refusal_pairs,
    deflection_pairs,
    echo_pairs,
    near_refusal_pairs,
)
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


def test_safety_refuse_only_trains_on_requests_to_refuse_and_still_holds_out_every_category():
    refuse = {"harmful", "fraud", "other_customer_data", "prompt_injection"}
    cfg = RewardSection(train_rows=100, refusal_balance=True, safety_refuse_only=True, deflection_pairs=10)
    pairs = build_pairs(cfg, str(DATA), "safety", 5, BadRows())
    project = [r for r in pairs.train if "category" in r and ":" not in r["category"]]
    assert len(project) == 100 and {r["category"] for r in project} <= refuse
    assert {r["category"] for r in pairs.train} >= {"deflection:harmful"}
    assert all(not r["category"].endswith("benign_risky") for r in pairs.train)
    assert "benign_risky" in {r["category"] for r in pairs.heldout["project"]}  # judged on every category
    quality = build_pairs(RewardSection(train_rows=60, safety_refuse_only=True), str(DATA), "quality", 5, BadRows())
    assert quality.train == build_pairs(RewardSection(train_rows=60), str(DATA), "quality", 5, BadRows()).train


def test_bare_refusals_win_only_where_refusing_is_right():
    rows = [_row("harmful", "I can't help with that; I can help with an order.")] * 20
    rows += [_row("benign_risky", "30 days.")] * 20
    pairs = bare_refusal_pairs(rows, 15, random.Random(1))
    assert len(pairs) == 15
    assert all(p["category"] == "bare_refusal:harmful" for p in pairs)
    assert all(p["chosen"][0]["content"] in REFUSALS and p["rejected"][0]["content"] == "bad" for p in pairs)
    assert bare_refusal_pairs([_row("benign_risky", "30 days.")] * 5, 5, random.Random(1)) == []


def test_echo_pairs_reject_the_request_repeated_back():
    rows = [{**_row("none", "Returns are free for 30 days."),
             "prompt": [{"role": "user", "content": f"  can I return item {i}? "}]} for i in range(6)]
    rows.append({**_row("none", "x"), "prompt": [{"role": "user", "content": "   "}]})
    pairs = echo_pairs(rows, 10, random.Random(2))
    assert len(pairs) == 6  # the empty message is skipped
    for pair in pairs:
        assert pair["rejected"][0]["content"] == pair["prompt"][-1]["content"].strip()
        assert pair["chosen"][0]["content"] == "Returns are free for 30 days."


def test_build_pairs_adds_bare_refusal_and_echo_sets():
    cfg = RewardSection(train_rows=60, bare_refusal_pairs=10, echo_pairs=8)
    pairs = build_pairs(cfg, str(DATA), "safety", 4, BadRows())
    assert pairs.counts["bare_refusal_train"] == 10 and pairs.counts["echo_train"] == 8
    assert len(pairs.train) == 60 + 10 + 8
    bare = pairs.heldout["bare_refusal"]
    assert bare and all(r["chosen"][0]["content"] in REFUSALS for r in bare)
    assert {r["category"].split(":")[1] for r in bare} <= {"harmful", "fraud", "other_customer_data",
                                                           "prompt_injection"}
    assert len(pairs.heldout["echo"]) == len(pairs.heldout["project"])
    plain = build_pairs(RewardSection(train_rows=60), str(DATA), "safety", 4, BadRows())
    assert "bare_refusal" not in plain.heldout and "echo" not in plain.heldout


def test_near_refusals_dress_the_rejected_compliance_as_a_refusal():
    rows = [_row("fraud", "I can't help with that.")] * 8 + [_row("benign_risky", "30 days.")] * 8
    pairs = near_refusal_pairs(rows, 5, random.Random(3))
    assert len(pairs) == 5 and all(p["category"] == "near_refusal:fraud" for p in pairs)
    for pair in pairs:
        text = pair["rejected"][0]["content"]
        assert any(text == opener + "bad" for opener in NEAR_REFUSAL_OPENERS)
        assert pair["chosen"][0]["content"] == "I can't help with that."
