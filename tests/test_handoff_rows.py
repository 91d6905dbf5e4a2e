"""SFT handoff rows: uncovered support requests from a public source's train split, answered with a handoff."""

from __future__ import annotations

import csv
import random
from dataclasses import replace
from pathlib import Path

import pytest
from intent_fixtures import csv_source, intent_csv

from dialogue.answer_classes import classify_answer
from dialogue.handoff_rows import HANDOFF_ANSWERS, handoff_rows
from groundwork.recipe import load_recipe
from groundwork.sections.risk import RiskSourceSection
from groundwork.sections.sft import HandoffSourceSection
from reward_models.risk_data import public_rows, texts_with_field

ROOT = Path(__file__).resolve().parent.parent
INTENTS = ("get_invoice", "track_order", "newsletter")


def _support_csv(path: Path, rows: int = 120) -> Path:
    intent_csv(path, INTENTS, rows, text="question {index} about {intent}")
    with open(path, "a", encoding="utf-8", newline="") as handle:
        csv.writer(handle).writerow(["question 0 about get invoice", "get_invoice"])  # a duplicate
    return path


def _recipe(smoke_config: str, source: RiskSourceSection, rows: int, passages: int = 0, **handoff):
    recipe = load_recipe(smoke_config, [f"data.data_dir={ROOT / 'data'}"])
    sft = replace(recipe.sft, handoff_rows=rows, retrieved_passages=passages,
                  handoff_sources=[HandoffSourceSection(source=source, **handoff)])
    return replace(recipe, sft=sft)


def test_texts_with_field_split_like_the_request_model(tmp_path: Path) -> None:
    source = csv_source(_support_csv(tmp_path / "support.csv"))
    found = texts_with_field(source, "intent")
    assert len(found) == 120  # the duplicate is dropped
    splits = {row.text: row.split for row in public_rows(source)}
    assert {text: split for text, _, split in found} == splits
    assert {intent for _, intent, _ in found} == set(INTENTS)
    assert {"train", "dev"} <= set(splits.values())


def test_handoff_rows_draw_only_train_rows_of_the_kept_intents(smoke_config: str, tmp_path: Path) -> None:
    source = csv_source(_support_csv(tmp_path / "support.csv"))
    train = {text for text, intent, split in texts_with_field(source, "intent")
             if split == "train" and intent == "get_invoice"}
    recipe = _recipe(smoke_config, source, 10, intent_field="intent", intents=["get_invoice", "newsletter"],
                     skip_intents=["newsletter"])
    rows = handoff_rows(recipe, None, random.Random(0))
    assert len(rows) == 10
    assert {row["messages"][0]["content"] for row in rows} <= train  # never a calib / dev row, never a skipped intent
    for row in rows:
        answer = row["messages"][-1]["content"]
        assert answer in HANDOFF_ANSWERS and row["context"] is None and row["kb_ids"] == []
        assert classify_answer(answer, row["messages"][0]["content"], blocked=False) == "handoff"
    assert handoff_rows(recipe, None, random.Random(0)) == rows  # the same seed, the same rows


def test_handoff_rows_carry_the_passages_the_server_retrieves(smoke_config: str, tmp_path: Path) -> None:
    from serving.retrieval import KnowledgeBase, prompt_passage

    kb = KnowledgeBase.load(ROOT / "data" / "kb")
    source = csv_source(_support_csv(tmp_path / "support.csv"))
    [row] = handoff_rows(_recipe(smoke_config, source, 1, passages=2), kb, random.Random(1))
    question = row["messages"][0]["content"]
    assert row["context"] == [prompt_passage(hit.title, hit.text) for hit in kb.search(question, 2)]


def test_absent_copies_are_skipped_and_rows_need_sources(
        smoke_config: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = csv_source(_support_csv(tmp_path / "support.csv"))
    recipe = _recipe(smoke_config, source, 4)
    absent = _recipe(smoke_config, replace(source, local=str(tmp_path / "missing.csv")), 4)
    assert handoff_rows(absent, None, random.Random(0)) == []
    assert "no handoff requests" in capsys.readouterr().err
    with pytest.raises(ValueError, match="handoff_sources"):
        replace(recipe.sft, handoff_sources=[])


@pytest.mark.parametrize(("text", "expected"), [
    (HANDOFF_ANSWERS[0], "handoff"),
    ("Invoices are under Orders. A support agent can also email you a copy.", "handoff"),
    ("I'm sorry, I can't give a reliable answer to that. I can connect you with a human colleague if you like.",
     "refused"),
    ("Please contact our support team.", "non_answer"),
    ("Your invoice is in the Orders page of your account.", "substantive"),
])
def test_handoff_answers_are_their_own_class(text: str, expected: str) -> None:
    assert classify_answer(text, "Where is my invoice?", blocked=False) == expected


def test_the_demo_recipe_draws_handoffs_from_the_request_models_own_sources() -> None:
    recipe = load_recipe(str(ROOT / "configs" / "cpu-demo.yaml"), [])
    risk_sources = {source.name: source for source in recipe.risk.sources}
    for handoff in recipe.sft.handoff_sources:
        assert risk_sources[handoff.source.name] == handoff.source  # the same split, by the same hash
