"""KB coverage of public support requests: the recipe's intent maps label dev rows for the served-path table."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from intent_fixtures import csv_source, intent_csv

from dialogue.evaluation import SYSTEM_COVERED_FACT, SYSTEM_UNCOVERED_HANDOFF, system_support_rates
from dialogue.kb_coverage import coverage_rates, kb_coverage
from dialogue.system_eval import render_coverage, render_system
from groundwork.recipe import load_recipe
from groundwork.sections.risk import RiskSourceSection
from groundwork.sections.sft import AnswerSourceSection, HandoffSourceSection
from reward_models.risk_data import texts_with_field

ROOT = Path(__file__).resolve().parent.parent
INTENTS = ("check_payment_methods", "get_invoice", "newsletter")


def _source(tmp_path: Path) -> RiskSourceSection:
    return csv_source(intent_csv(tmp_path / "support.csv", INTENTS, 150))


def _recipe(smoke_config: str, source: RiskSourceSection):
    recipe = load_recipe(smoke_config, [f"data.data_dir={ROOT / 'data'}"])
    sft = replace(recipe.sft,
                  answer_sources=[AnswerSourceSection(source=source, intent_field="intent",
                                                      intent_facts={"check_payment_methods": ["paypal_accepted"]})],
                  handoff_sources=[HandoffSourceSection(source=source, intent_field="intent",
                                                        intents=["get_invoice"])])
    return replace(recipe, sft=sft)


def test_dev_rows_are_labelled_by_the_recipes_intent_maps(smoke_config: str, tmp_path: Path) -> None:
    source = _source(tmp_path)
    coverage = kb_coverage(_recipe(smoke_config, source))
    rows = texts_with_field(source, "intent")
    for text, intent, split in rows:
        found = coverage.label(source.name, text)
        if split != "dev" or intent == "newsletter":
            assert found is None  # train / calib rows and unmapped intents get no label
        elif intent == "get_invoice":
            assert found is not None and found.kind == "uncovered"
        else:  # the answer patterns and text of the fact's article
            assert found is not None and found.kind == "covered" and found.patterns
            assert found.articles.startswith("Kestrel Market accepts Visa")
    assert any(split == "dev" for _, _, split in rows)
    assert coverage.label("another-source", rows[0][0]) is None


def test_outcomes_score_the_fact_for_covered_and_the_handoff_for_uncovered(
        smoke_config: str, tmp_path: Path) -> None:
    source = _source(tmp_path)
    coverage = kb_coverage(_recipe(smoke_config, source))
    dev = {intent: text for text, intent, split in texts_with_field(source, "intent") if split == "dev"}
    paid, invoice = dev["check_payment_methods"], dev["get_invoice"]
    fact = "Yes, we accept PayPal, as well as Visa and Mastercard."
    assert coverage.outcome(source.name, paid, "substantive", fact) == ("covered", True)
    assert coverage.outcome(source.name, paid, "substantive", "You can pay at checkout.") == ("covered", False)
    # No fact pattern, but taken from the article ("...single order." is its sentence); another article's is not.
    assert coverage.outcome(source.name, paid, "substantive",
                            "You can combine one gift card with one other payment method.") == ("covered", True)
    assert coverage.outcome(source.name, paid, "substantive",
                            "Most items can be returned within 30 days of delivery.") == ("covered", False)
    assert coverage.outcome(source.name, paid, "non_answer", fact) == ("covered", False)
    assert coverage.outcome(source.name, invoice, "handoff", "A colleague will help.") == ("uncovered", True)
    assert coverage.outcome(source.name, invoice, "substantive", fact) == ("uncovered", False)
    assert coverage.outcome(source.name, dev["newsletter"], "substantive", fact) is None


def test_rates_render_and_pool_over_support_sets() -> None:
    first = coverage_rates([("covered", True), ("covered", False), ("uncovered", True)])
    assert first["covered_n"] == 2 and first["covered_fact_rate"] == 0.5
    assert first["uncovered_n"] == 1 and first["uncovered_handoff_rate"] == 1.0
    assert first["covered_fact_rate_ci_low"] < 0.5 < first["covered_fact_rate_ci_high"]
    assert coverage_rates([]) == {}
    second = coverage_rates([("covered", True), ("covered", True), ("uncovered", False)])
    base = {"kind": "support", "n": 4, "substantive_rate": 0.5, "substantive_rate_ci_low": 0.15,
            "substantive_rate_ci_high": 0.85}
    system = {"a/dev": {**base, **first}, "b/dev": {**base, **second}, "c/dev": {**base, "kind": "harmful"}}
    pooled = system_support_rates(system)
    assert pooled[SYSTEM_COVERED_FACT] == 0.75 and pooled[SYSTEM_UNCOVERED_HANDOFF] == 0.5
    lines = render_coverage(system)
    assert [line.split(" | ")[:3] for line in lines if line.startswith("| ") and "/dev" in line] == [
        ["| a/dev", "2", "0.50 (0.09-0.91)"], ["| b/dev", "2", "1.00 (0.34-1.00)"]]  # c/dev has no labels
    assert lines[-len(lines):] == render_system(system)[-len(lines):]  # the system table ends with it


def test_the_demo_recipe_labels_public_dev_requests() -> None:
    recipe = load_recipe(str(ROOT / "configs" / "cpu-demo.yaml"), [])
    coverage = kb_coverage(recipe)
    kinds = {name: {found.kind for found in labels.values()} for name, labels in coverage.labels.items()}
    assert kinds.get("bitext") == {"covered", "uncovered"}
