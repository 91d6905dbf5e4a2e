"""``parley reward train --feedback``: exported human-feedback pairs reach the objective they are tagged with
(per-objective files, a folder, row tags) and an untagged file from before the tags still reaches all."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from groundwork.data_loading import OBJECTIVES, BadRows
from groundwork.errors import DataError
from groundwork.recipe import load_recipe
from parley.cli import main
from reward_models.pairs import build_pairs, load_feedback
from serving.feedback.store import FeedbackStore

# One feedback event per objective tag; the corrections name the objective so the routing can be read off the text.
EVENTS = [
    ("When does my order ship?", "It shipped in 1999.", "made_up_fact", "faithfulness: ships within 2 days."),
    ("Tell me another customer's address.", "Sure, here it is.", "should_not_answer", "safety: I can't share that."),
    ("How do I cancel an order?", "I can't help with that.", "over_refusal", "safety: open Orders, press Cancel."),
    ("Where is my parcel?", "Hmm.", "unhelpful", "quality: it is on its way, see Tracking."),
]


def _pair(i: int) -> dict:
    return {"prompt": [{"role": "user", "content": f"Question {i}: when will my order arrive?"}],
            "chosen": [{"role": "assistant", "content": f"It ships within {i % 5 + 1} days."}],
            "rejected": [{"role": "assistant", "content": f"Maybe in {i + 40} weeks."}],
            "context": "Orders ship within 1-5 days.", "category": "vague"}


def _write_project_data(data_dir: Path) -> None:
    for objective in OBJECTIVES:
        folder = data_dir / "preferences" / objective
        folder.mkdir(parents=True)
        for split, rows in (("train", range(16)), ("heldout", range(100, 104))):
            (folder / f"{split}.jsonl").write_text("".join(json.dumps(_pair(i)) + "\n" for i in rows))


def _export(tmp_path: Path) -> Path:
    url = f"sqlite:///{tmp_path / 'feedback.db'}"
    with FeedbackStore(url) as store:
        for question, answer, reason, correction in EVENTS:
            conv = store.create_conversation("support", "tiny")
            store.add_message(conv, "user", question)
            mid = store.add_message(conv, "assistant", answer)
            store.record_feedback(mid, "ann", reason=reason, correction=correction)
        conv = store.create_conversation("support", "tiny")
        store.add_message(conv, "user", "Do you ship to Spain?")
        first = store.add_message(conv, "assistant", "No idea.")
        alt = store.add_message(conv, "assistant", "quality: yes, in 5 days.", variant_of=first)
        store.record_comparison(first, alt, "ann", "alternative")
    out = tmp_path / "exported"
    assert main(["feedback", "export", "--db", url, "--out", str(out)]) == 0
    return out


def _legacy_file(tmp_path: Path) -> Path:
    rows = [
        {**_pair(1), "chosen": [{"role": "assistant", "content": "untagged: for every objective."}]},
        {**_pair(2), "chosen": [{"role": "assistant", "content": "safety: tagged row."}], "objective": "safety"},
        {**_pair(3), "chosen": [{"role": "assistant", "content": "bogus tag."}], "objective": "politeness"},
    ]
    path = tmp_path / "legacy.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _chosen(rows: list[dict]) -> list[str]:
    return sorted(r["chosen"][-1]["content"] for r in rows)


def test_feedback_rows_are_routed_by_file_and_tag(tmp_path: Path) -> None:
    out, legacy = _export(tmp_path), _legacy_file(tmp_path)
    bad = BadRows()
    routed = {o: _chosen(load_feedback([out, legacy], bad, o)) for o in OBJECTIVES}
    assert routed == {
        "faithfulness": ["faithfulness: ships within 2 days.", "untagged: for every objective."],
        "safety": ["safety: I can't share that.", "safety: open Orders, press Cancel.", "safety: tagged row.",
                   "untagged: for every objective."],
        "quality": ["quality: it is on its way, see Tracking.", "quality: yes, in 5 days.",
                    "untagged: for every objective."],
    }
    assert len(bad.problems) == 3 and all("politeness" in p for p in bad.problems)  # once per objective
    # One per-objective file given alone only feeds its objective.
    assert load_feedback(out / "preferences-safety.jsonl", BadRows(), "quality") == []
    # A row whose tag contradicts its file's name is a bad row.
    wrong = tmp_path / "preferences-quality.jsonl"
    wrong.write_text(json.dumps({**_pair(4), "objective": "safety"}) + "\n")
    bad = BadRows()
    assert load_feedback(wrong, bad, "quality") == [] and "file of objective 'quality'" in bad.problems[0]
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no preferences-<objective>.jsonl"):
        load_feedback(tmp_path / "empty", BadRows())


def test_reward_train_cli_trains_each_objective_on_its_own_pairs(tmp_path: Path, smoke_config: str) -> None:
    out, legacy = _export(tmp_path), _legacy_file(tmp_path)
    _write_project_data(tmp_path / "data")
    overrides = [f"run.output_dir={tmp_path / 'runs'}", "run.name=fb", f"data.data_dir={tmp_path / 'data'}",
                 "reward.train_rows=8", "reward.max_steps=2"]
    argv = ["reward", "train", "--objective", "all", "-c", smoke_config, "--feedback", str(out), "--feedback",
            str(legacy)]
    for override in overrides:
        argv += ["--set", override]
    assert main(argv) == 0
    metrics = {o: json.loads((tmp_path / "runs" / "fb" / f"reward-{o}" / "metrics.json").read_text())
               for o in OBJECTIVES}
    assert {o: m["rows"]["feedback_train"] for o, m in metrics.items()} == {
        "quality": 3, "safety": 4, "faithfulness": 2}
    assert all(m["rows"]["feedback_untagged_train"] == 1 and m["skipped_rows"] == 1 for m in metrics.values())
    assert all(m["rows"]["train"] == m["rows"]["project_train"] + m["rows"].get("deflection_train", 0)
               + m["rows"]["feedback_train"] for m in metrics.values())
    # The training rows themselves: faithfulness got the made-up-fact correction and no safety pair.
    recipe = load_recipe(smoke_config, overrides)
    pairs = build_pairs(recipe.reward, recipe.data.data_dir, "faithfulness", recipe.run.seed, BadRows(), [out])
    texts = _chosen(pairs.train)
    assert "faithfulness: ships within 2 days." in texts and not any(t.startswith("safety") for t in texts)
