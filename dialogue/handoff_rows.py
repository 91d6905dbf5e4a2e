"""SFT rows for support requests the KB does not answer: say so, and point to a human colleague.

A support bot meets questions its help articles never cover (an invoice, a newsletter, a bank card). Trained
only on covered questions and on refusals of harmful requests, the policy answered those with a refusal
("We can't help with that.") or an empty offer ("I can help you with that."). These rows teach the honest
third answer. The requests are public support questions of intents the KB lacks, drawn from the train split
of the request-risk source they belong to; each carries the passages the server's retriever would return for
it, so the policy learns to notice when the passages do not answer the question.
"""

from __future__ import annotations

import random
import sys
from typing import Any, TypeVar

from groundwork.recipe import Recipe
from groundwork.sections.sft import HandoffSourceSection

T = TypeVar("T")

HANDOFF_ANSWERS = (
    "Our help articles don't cover this, so I'd rather not guess. A human colleague can help: ask to talk to a "
    "human and they will take over this chat.",
    "I don't have a help article about this. A human colleague can sort it out for you: just ask to talk to a "
    "human.",
    "That goes beyond what our help center covers. If you ask to talk to a human, a colleague will take over "
    "here and help you with it.",
)


def handoff_requests(source: HandoffSourceSection) -> list[str]:
    """Train-split requests of one handoff source whose intent passes its filter."""
    from reward_models.risk_data import texts_with_field

    keep = set(source.intents) if source.intents is not None else None
    skip = set(source.skip_intents)
    return [text for text, intent, split in texts_with_field(source.source, source.intent_field)
            if split == "train" and (keep is None or intent in keep) and intent not in skip]


def handoff_rows(recipe: Recipe, kb: Any | None, rng: random.Random) -> list[dict[str, Any]]:
    """``sft.handoff_rows`` conversations, drawn evenly from the sources that have requests (none without any)."""
    cfg = recipe.sft
    if not cfg.handoff_rows:
        return []
    pools = [handoff_requests(source) for source in cfg.handoff_sources]
    return rows_from_pools(pools, cfg.handoff_rows, HANDOFF_ANSWERS, kb, cfg.retrieved_passages, "handoff", rng)


def rows_from_pools(pools: list[list[str]], total: int, answers: tuple[str, ...], kb: Any | None, passages: int,
                    topic: str, rng: random.Random) -> list[dict[str, Any]]:
    """``total`` requests drawn evenly from the non-empty pools, each answered with one of ``answers`` and
    given the passages the server would retrieve; none (with a message) when every pool is empty."""
    pools = [sorted(pool) for pool in pools if pool]
    if not pools:
        print(f"parley: sft: no {topic} requests found (public copies absent?); training without them",
              file=sys.stderr)
        return []
    return answered_with_passages(draw_evenly(pools, total, rng), answers, kb, passages, topic, rng)


def draw_evenly(pools: list[list[T]], total: int, rng: random.Random) -> list[T]:
    """``total`` requests split evenly over the (non-empty, sorted) pools, as many as each has."""
    picked: list[T] = []
    for index, pool in enumerate(pools):
        share = total // len(pools) + (index < total % len(pools))
        picked += rng.sample(pool, min(share, len(pool)))
    return picked


def answered_with_passages(requests: list[str], answers: tuple[str, ...], kb: Any | None, passages: int,
                           topic: str, rng: random.Random) -> list[dict[str, Any]]:
    """Conversations of each request and one of ``answers``, with the ``passages`` the server would retrieve."""
    from serving.retrieval import prompt_passage

    rows = []
    for text in requests:
        context = None
        if kb is not None and passages:
            context = [prompt_passage(hit.title, hit.text) for hit in kb.search(text, passages)]
        rows.append({"messages": [{"role": "user", "content": text},
                                  {"role": "assistant", "content": rng.choice(answers)}],
                     "context": context, "kb_ids": [], "topic": topic})
    return rows
