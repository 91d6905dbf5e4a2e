"""Which public support requests the KB answers, by the intents the recipe maps (for the served-path table).

A support set's substantive-answer rate mixes two kinds of request: those the help articles answer (where a
substantive answer should state the article's fact) and those they do not (an invoice, a new account: the right
answer sends the customer to a human). The recipe already says which is which, per intent of the public sets
that carry one: ``sft.answer_sources`` maps covered intents to KB facts, ``sft.handoff_sources`` names the
uncovered ones. The system table uses the same maps to report, per set, how often a covered request got a
right answer (one that states a fact of the mapped facts' articles, by its answer patterns as the held-out
KB-fact accuracy checks, or whose content bigrams come mostly from those articles: "You can delete your account
from the Privacy page." answers a deletion request though no fact pattern is about the page) and how often an
uncovered one was handed to a human. Only dev rows are looked up; the maps come from the recipe, not from these
results.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from groundwork.data_loading import load_kb
from groundwork.judge import states_fact
from groundwork.recipe import Recipe
from reward_models.grounding import kb_support

# Share of an answer's content bigrams found in the mapped articles from which it counts as taken from them.
MIN_ARTICLE_SUPPORT = 0.5


@dataclass(frozen=True)
class Coverage:
    """A request's coverage; for a covered one, the answer patterns of its articles' facts and their text."""

    kind: str  # "covered" | "uncovered"
    patterns: tuple[str, ...] = ()
    articles: str = ""

    def right(self, answer_class: str, answer: str) -> bool:
        """Covered: a substantive answer taken from the articles; uncovered: a handoff to a human."""
        if self.kind == "uncovered":
            return answer_class == "handoff"
        if answer_class != "substantive":
            return False
        return states_fact(answer, self.patterns) or (kb_support(answer, self.articles) or 0.0) >= MIN_ARTICLE_SUPPORT


@dataclass
class KBCoverage:
    """Source name -> request text -> its :class:`Coverage`."""

    labels: dict[str, dict[str, Coverage]] = field(default_factory=dict)

    def label(self, source: str, text: str) -> Coverage | None:
        """The request's coverage, or None when its source has no intent map or the request is not found."""
        return self.labels.get(source, {}).get(text)

    def outcome(self, source: str, text: str, answer_class: str, answer: str) -> tuple[str, bool] | None:
        """(``covered`` | ``uncovered``, whether the answer was the right kind for it), or None without a label."""
        found = self.label(source, text)
        return None if found is None else (found.kind, found.right(answer_class, answer))


def kb_coverage(recipe: Recipe) -> KBCoverage:
    """Coverage labels for the dev rows of every public source the recipe's SFT intent maps name."""
    from reward_models.risk_data import texts_with_field

    cfg = recipe.sft
    if not cfg.answer_sources and not cfg.handoff_sources:
        return KBCoverage()
    articles = {article["id"]: article for article in load_kb(recipe.data.data_dir)}
    article_of = {fact["key"]: article["id"] for article in articles.values() for fact in article["facts"]}
    labels: dict[str, dict[str, Coverage]] = {}
    for answer in cfg.answer_sources:
        covered = {intent: _covered([articles[article_of[key]] for key in keys if key in article_of])
                   for intent, keys in answer.intent_facts.items()}
        rows = texts_with_field(answer.source, answer.intent_field)
        labels.setdefault(answer.source.name, {}).update(
            {text: covered[intent] for text, intent, split in rows if split == "dev" and intent in covered})
    for handoff in cfg.handoff_sources:
        keep = None if handoff.intents is None else set(handoff.intents)  # None: every intent not skipped
        skip = set(handoff.skip_intents)
        rows = texts_with_field(handoff.source, handoff.intent_field)
        labels.setdefault(handoff.source.name, {}).update(
            {text: Coverage("uncovered") for text, intent, split in rows
             if split == "dev" and (keep is None or intent in keep) and intent not in skip})
    return KBCoverage(labels)


def _covered(articles: list[dict[str, Any]]) -> Coverage:
    unique = list({article["id"]: article for article in articles}.values())
    patterns = tuple(p for article in unique for fact in article["facts"] for p in fact.get("answer_patterns") or ())
    return Coverage("covered", patterns, "\n\n".join(article["text"] for article in unique))


def coverage_rates(outcomes: list[tuple[str, bool]]) -> dict[str, Any]:
    """``covered_n``, ``covered_fact_rate`` and ``uncovered_n``, ``uncovered_handoff_rate`` with Wilson
    intervals; empty when no request had a coverage label."""
    from dialogue.system_eval import wilson

    entry: dict[str, Any] = {}
    for coverage, key in (("covered", "covered_fact_rate"), ("uncovered", "uncovered_handoff_rate")):
        hits = [ok for kind, ok in outcomes if kind == coverage]
        if not hits:
            continue
        entry[f"{coverage}_n"] = len(hits)
        entry[key] = sum(hits) / len(hits)
        entry[f"{key}_ci_low"], entry[f"{key}_ci_high"] = wilson(sum(hits), len(hits))
    return entry
