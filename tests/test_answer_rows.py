"""SFT answer rows: covered support requests from a public source's train split, answered with the KB's facts."""

from __future__ import annotations

import random
from dataclasses import replace
from pathlib import Path

import pytest
from intent_fixtures import csv_source, intent_csv

from dialogue.answer_rows import answer_rows
from groundwork.data_loading import load_kb
from groundwork.errors import ConfigError
from groundwork.recipe import load_recipe
from groundwork.sections.risk import RiskSourceSection
from groundwork.sections.sft import AnswerSourceSection
from reward_models.risk_data import texts_with_field

ROOT = Path(__file__).resolve().parent.parent
INTENTS = ("check_payment_methods", "track_order", "get_invoice")
FACTS = {"check_payment_methods": ["paypal_accepted"], "track_order": ["tracking_email", "split_packages"]}


def _support_csv(path: Path, rows: int = 120) -> Path:
    return intent_csv(path, INTENTS, rows)


def _recipe(smoke_config: str, source: RiskSourceSection, rows: int, passages: int = 0,
            facts: dict[str, list[str]] | None = None):
    recipe = load_recipe(smoke_config, [f"data.data_dir={ROOT / 'data'}"])
    answer = AnswerSourceSection(source=source, intent_field="intent", intent_facts=facts or FACTS)
    return replace(recipe, sft=replace(recipe.sft, answer_rows=rows, retrieved_passages=passages,
                                       answer_sources=[answer]))


def _facts() -> dict[str, tuple[str, str]]:
    return {fact["key"]: (article["id"], fact["answer"]) for article in load_kb(ROOT / "data")
            for fact in article["facts"]}


def test_answer_rows_answer_train_requests_of_mapped_intents_with_their_facts(
        smoke_config: str, tmp_path: Path) -> None:
    source = csv_source(_support_csv(tmp_path / "support.csv"))
    intent_of = {text: intent for text, intent, split in texts_with_field(source, "intent") if split == "train"}
    recipe = _recipe(smoke_config, source, 12)
    rows = answer_rows(recipe, None, random.Random(0))
    assert len(rows) == 12
    facts = _facts()
    for row in rows:
        request, answer = (message["content"] for message in row["messages"])
        intent = intent_of[request]  # a train row (KeyError for a calib / dev row)
        assert intent in FACTS  # never an unmapped intent
        keys = FACTS[intent]
        assert answer == " ".join(facts[key][1] for key in keys)
        assert row["kb_ids"] == list(dict.fromkeys(facts[key][0] for key in keys))
        assert len(row["context"]) == len(row["kb_ids"])  # without retrieval: the answer's own articles
    assert {intent_of[row["messages"][0]["content"]] for row in rows} == set(FACTS)
    assert answer_rows(recipe, None, random.Random(0)) == rows  # the same seed, the same rows


def test_answer_rows_carry_the_retrieved_passages_with_their_articles(smoke_config: str, tmp_path: Path) -> None:
    from serving.retrieval import KnowledgeBase, prompt_passage

    kb = KnowledgeBase.load(ROOT / "data" / "kb")
    articles = {passage.id: passage for passage in kb.passages}
    source = csv_source(_support_csv(tmp_path / "support.csv"))
    rows = answer_rows(_recipe(smoke_config, source, 20, passages=2), kb, random.Random(1))
    for row in rows:
        own = [prompt_passage(articles[i].title, articles[i].text) for i in row["kb_ids"]]
        assert len(row["context"]) == 2 and set(own) <= set(row["context"])
        retrieved = [prompt_passage(hit.title, hit.text) for hit in kb.search(row["messages"][0]["content"], 2)]
        kept = [passage for passage in row["context"] if passage not in own]
        assert kept == [passage for passage in retrieved if passage not in own][: len(kept)]


def test_unknown_fact_keys_and_empty_maps_are_config_errors(smoke_config: str, tmp_path: Path) -> None:
    source = csv_source(_support_csv(tmp_path / "support.csv"))
    with pytest.raises(ConfigError, match="no_such_fact"):
        answer_rows(_recipe(smoke_config, source, 4, facts={"track_order": ["no_such_fact"]}), None,
                    random.Random(0))
    with pytest.raises(ValueError, match="intent_facts"):
        AnswerSourceSection(source=source, intent_field="intent", intent_facts={"track_order": []})
    with pytest.raises(ValueError, match="answer_sources"):
        replace(_recipe(smoke_config, source, 4).sft, answer_sources=[])


def test_absent_copies_train_without_answer_rows(
        smoke_config: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    absent = csv_source(tmp_path / "missing.csv")
    assert answer_rows(_recipe(smoke_config, absent, 4), None, random.Random(0)) == []
    assert "no answer requests" in capsys.readouterr().err


def test_the_demo_recipe_maps_intents_to_real_facts_of_the_request_models_sources() -> None:
    recipe = load_recipe(str(ROOT / "configs" / "cpu-demo.yaml"), [])
    risk_sources = {source.name: source for source in recipe.risk.sources}
    facts = _facts()
    handoffs = {source.source.name: source for source in recipe.sft.handoff_sources}
    assert recipe.sft.answer_rows and recipe.sft.answer_sources
    for answer in recipe.sft.answer_sources:
        assert risk_sources[answer.source.name] == answer.source  # the same split, by the same hash
        assert {key for keys in answer.intent_facts.values() for key in keys} <= set(facts)
        handoff = handoffs.get(answer.source.name)  # an intent is answered or handed off, not both
        if handoff is not None and handoff.intents is not None:
            assert not set(answer.intent_facts) & set(handoff.intents)
        elif handoff is not None:
            assert set(answer.intent_facts) <= set(handoff.skip_intents)
