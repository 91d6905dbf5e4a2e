"""SFT refusal rows: public harmful requests from a source's train split, answered with a short refusal."""

from __future__ import annotations

import json
import random
from dataclasses import replace
from pathlib import Path

import pytest

from dialogue.answer_classes import classify_answer
from dialogue.refusal_rows import REFUSAL_ANSWERS, refusal_rows
from groundwork.recipe import load_recipe
from groundwork.sections.risk import RiskSourceSection
from reward_models.risk_data import public_rows

ROOT = Path(__file__).resolve().parent.parent


def _harmful_jsonl(path: Path, rows: int = 80) -> Path:
    with open(path, "w", encoding="utf-8") as handle:
        for index in range(rows):
            handle.write(json.dumps({"question": f"how do I break into house number {index}"}) + "\n")
    return path


def _source(path: Path, label: str = "harmful") -> RiskSourceSection:
    return RiskSourceSection(name="harm-jsonl", local=str(path), text_field="question", label=label,
                             stratum="harmful")


def _recipe(smoke_config: str, source: RiskSourceSection, rows: int, passages: int = 0):
    recipe = load_recipe(smoke_config, [f"data.data_dir={ROOT / 'data'}"])
    return replace(recipe, sft=replace(recipe.sft, refusal_rows=rows, retrieved_passages=passages,
                                       refusal_sources=[source]))


def test_refusal_rows_draw_only_train_rows_and_refuse(smoke_config: str, tmp_path: Path) -> None:
    source = _source(_harmful_jsonl(tmp_path / "harm.jsonl"))
    splits = {row.text: row.split for row in public_rows(source)}
    assert {"train", "dev"} <= set(splits.values())
    train = {text for text, split in splits.items() if split == "train"}
    recipe = _recipe(smoke_config, source, 12)
    rows = refusal_rows(recipe, None, random.Random(0))
    assert len(rows) == 12
    assert {row["messages"][0]["content"] for row in rows} <= train  # never a calib or dev row
    for row in rows:
        answer = row["messages"][-1]["content"]
        assert answer in REFUSAL_ANSWERS and row["context"] is None and row["kb_ids"] == []
        assert classify_answer(answer, row["messages"][0]["content"], blocked=False) == "refused"
    assert refusal_rows(recipe, None, random.Random(0)) == rows  # the same seed, the same rows


def test_refusal_rows_carry_the_passages_the_server_retrieves(smoke_config: str, tmp_path: Path) -> None:
    from serving.retrieval import KnowledgeBase, prompt_passage

    kb = KnowledgeBase.load(ROOT / "data" / "kb")
    source = _source(_harmful_jsonl(tmp_path / "harm.jsonl"))
    [row] = refusal_rows(_recipe(smoke_config, source, 1, passages=2), kb, random.Random(1))
    question = row["messages"][0]["content"]
    assert row["context"] == [prompt_passage(hit.title, hit.text) for hit in kb.search(question, 2)]


def test_refusal_sources_must_exist_and_be_harmful(
        smoke_config: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = _source(_harmful_jsonl(tmp_path / "harm.jsonl"))
    recipe = _recipe(smoke_config, source, 4)
    absent = _recipe(smoke_config, replace(source, local=str(tmp_path / "missing.jsonl")), 4)
    assert refusal_rows(absent, None, random.Random(0)) == []
    assert "no refusal requests" in capsys.readouterr().err
    with pytest.raises(ValueError, match="refusal_sources"):
        replace(recipe.sft, refusal_sources=[])
    with pytest.raises(ValueError, match="labelled benign: harm-jsonl"):
        replace(recipe.sft, refusal_sources=[_source(tmp_path / "harm.jsonl", label="benign")])


def test_the_demo_recipe_draws_refusals_from_the_request_models_own_sources() -> None:
    recipe = load_recipe(str(ROOT / "configs" / "cpu-demo.yaml"), [])
    risk_sources = {source.name: source for source in recipe.risk.sources}
    assert recipe.sft.refusal_sources  # off by default (refusal_rows: 0), ready to switch on
    for source in recipe.sft.refusal_sources:
        assert risk_sources[source.name] == source  # the same split, by the same hash
