"""SFT rows for public support requests the KB answers, answered with the KB's own facts.

The project's support questions are written as full questions ("What payment methods do you accept?"). Customers
also write terse requests ("help me seeing the accepted payment methods", "order 3707955617 status"); the policy
trained on the first kind met the second with an empty offer ("I can help with that."), which the server then
follows up with the way to a human, though the retrieved passages held the answer. These rows pair public
requests of intents the KB covers (train split only: the system evaluation's dev prompts stay unseen) with the
answer written from the KB facts the recipe maps that intent to, and the passages the server would retrieve
(the facts' articles put in when retrieval misses them, as for the project's own support rows).
"""

from __future__ import annotations

import random
import sys
from typing import Any

from dialogue.handoff_rows import draw_evenly
from groundwork.data_loading import load_kb
from groundwork.errors import ConfigError
from groundwork.recipe import Recipe
from groundwork.sections.sft import AnswerSourceSection


def intent_answers(source: AnswerSourceSection, facts: dict[str, tuple[str, str]]) -> dict[str, tuple[str, list[str]]]:
    """Intent -> (the answer its facts make, their article ids); an unknown fact key is a config error."""
    unknown = sorted({key for keys in source.intent_facts.values() for key in keys} - set(facts))
    if unknown:
        raise ConfigError(f"sft.answer_sources ({source.source.name}): unknown KB fact keys {unknown}; the keys are "
                          f"in data/kb/articles.jsonl")
    out = {}
    for intent, keys in source.intent_facts.items():
        articles = list(dict.fromkeys(facts[key][0] for key in keys))
        out[intent] = (" ".join(facts[key][1] for key in keys), articles)
    return out


def answer_requests(source: AnswerSourceSection) -> list[tuple[str, str]]:
    """(request, intent) of the source's train split, for the intents the source maps to facts."""
    from reward_models.risk_data import texts_with_field

    return sorted((text, intent) for text, intent, split in texts_with_field(source.source, source.intent_field)
                  if split == "train" and intent in source.intent_facts)


def answer_rows(recipe: Recipe, kb: Any | None, rng: random.Random) -> list[dict[str, Any]]:
    """``sft.answer_rows`` conversations, drawn evenly from the sources that have requests (none without any)."""
    from serving.retrieval import prompt_passage

    cfg = recipe.sft
    if not cfg.answer_rows:
        return []
    articles = {article["id"]: article for article in load_kb(recipe.data.data_dir)}
    facts = {fact["key"]: (article["id"], fact["answer"]) for article in articles.values()
             for fact in article["facts"]}
    answers = [intent_answers(source, facts) for source in cfg.answer_sources]
    pools = [[(index, intent, text) for text, intent in answer_requests(source)]
             for index, source in enumerate(cfg.answer_sources)]
    pools = [pool for pool in pools if pool]
    if not pools:
        print("parley: sft: no answer requests found (public copies absent?); training without them",
              file=sys.stderr)
        return []
    rows = []
    for index, intent, text in draw_evenly(pools, cfg.answer_rows, rng):
        answer, ids = answers[index][intent]
        if kb is not None and cfg.retrieved_passages:
            shown = [(hit.title, hit.text) for hit in kb.search_including(text, cfg.retrieved_passages, ids)]
        else:  # without retrieval, the answer's own articles
            shown = [(articles[i]["title"], articles[i]["text"]) for i in ids]
        rows.append({"messages": [{"role": "user", "content": text}, {"role": "assistant", "content": answer}],
                     "context": [prompt_passage(title, body) for title, body in shown], "kb_ids": ids,
                     "topic": "answer"})
    return rows
