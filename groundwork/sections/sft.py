"""Supervised fine-tuning settings."""

from __future__ import annotations

from dataclasses import dataclass, field

from groundwork.sections.lora import LoraSection
from groundwork.sections.risk import RiskSourceSection


@dataclass
class HandoffSourceSection:
    """Public support requests that the KB does not answer, taught as a handoff to a human colleague.

    ``source`` is a request set as ``risk.sources`` lists them (recipes give both the same YAML anchor): its
    copy (local, else hub) is read and split by the same hash, and only its train rows are drawn, so the system
    evaluation's dev prompts stay unseen. ``intents`` keeps rows whose ``intent_field`` is listed (None: all);
    ``skip_intents`` drops the listed ones.
    """

    source: RiskSourceSection
    intent_field: str | None = None
    intents: list[str] | None = None
    skip_intents: list[str] = field(default_factory=list)


@dataclass
class AnswerSourceSection:
    """Public support requests that the KB does answer, taught with the KB's own answer.

    ``source`` is a request set as ``risk.sources`` lists them; only its train rows are drawn (as for handoff
    sources). ``intent_facts`` maps an intent (the value of ``intent_field``) to the KB fact keys
    (``data/kb/articles.jsonl``) whose answers, joined, answer a request of that intent; other intents are not
    drawn.
    """

    source: RiskSourceSection
    intent_field: str
    intent_facts: dict[str, list[str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        empty = [intent for intent, keys in self.intent_facts.items() if not keys]
        if not self.intent_facts or empty:
            raise ValueError(f"answer source {self.source.name}: intent_facts needs at least one intent, each with "
                             f"at least one KB fact key{f' (none for {empty})' if empty else ''}")


@dataclass
class SFTSection:
    """Supervised fine-tuning on support + translation conversations."""

    support_rows: int | None = None
    translation_rows: int | None = None
    safety_rows: int | None = 0
    # Share of the safety rows that are benign-but-risky requests answered helpfully (the rest are refusals).
    # None samples the data as it is, one benign-but-risky pair in five, which teaches "scary word -> refuse".
    benign_risky_share: float | None = None
    # Support rows: 0 = each row's own KB article as its context (as written); N = the N passages the server's
    # retriever returns for the row's question, the row's article put in place of the last one when retrieval
    # misses it, in the server's passage format. The served policy reads retrieved passages with its article
    # among others; trained on its own article alone, it answers from whichever passage comes first.
    retrieved_passages: int = 0
    # Support requests outside the KB (drawn evenly from handoff_sources) answered "our help articles do not
    # cover this; ask for a human colleague": without them the policy meets an uncovered question (an invoice,
    # a newsletter, a bank card) with a refusal learned from the safety rows or with "I can help you with that."
    handoff_rows: int = 0
    handoff_sources: list[HandoffSourceSection] = field(default_factory=list)
    # Harmful requests from public sets (``risk.sources`` entries; only their train rows are drawn) answered with
    # a short refusal, each with the passages the server retrieves for it (``retrieved_passages``): a harmful
    # request the guard lets through reaches the policy looking like a support question with help articles.
    refusal_rows: int = 0
    refusal_sources: list[RiskSourceSection] = field(default_factory=list)
    # Public support requests of intents the KB covers (drawn evenly from answer_sources) answered with the KB
    # fact: the project's own questions are full sentences, customers also write "help me seeing the accepted
    # payment methods" or "order 3707955617 status", which the policy otherwise meets with an empty offer.
    answer_rows: int = 0
    answer_sources: list[AnswerSourceSection] = field(default_factory=list)
    eval_rows: int = 64
    epochs: float = 1.0
    max_steps: int = -1
    learning_rate: float = 2e-4
    batch_size: int = 8
    grad_accum: int = 1
    max_length: int = 512
    warmup_ratio: float = 0.05
    gradient_checkpointing: bool = False
    logging_steps: int = 5
    save_steps: int = 200
    lora: LoraSection = field(default_factory=LoraSection)

    def __post_init__(self) -> None:
        share = self.benign_risky_share
        if share is not None and not 0.0 <= share <= 1.0:
            raise ValueError(f"benign_risky_share must be in [0, 1], got {share}")
        if self.retrieved_passages < 0:
            raise ValueError(f"retrieved_passages must be >= 0, got {self.retrieved_passages}")
        if self.handoff_rows < 0:
            raise ValueError(f"handoff_rows must be >= 0, got {self.handoff_rows}")
        if self.handoff_rows and not self.handoff_sources:
            raise ValueError("handoff_rows needs handoff_sources to draw the requests from")
        if self.answer_rows < 0:
            raise ValueError(f"answer_rows must be >= 0, got {self.answer_rows}")
        if self.answer_rows and not self.answer_sources:
            raise ValueError("answer_rows needs answer_sources to draw the requests from")
        if self.refusal_rows < 0:
            raise ValueError(f"refusal_rows must be >= 0, got {self.refusal_rows}")
        if self.refusal_rows and not self.refusal_sources:
            raise ValueError("refusal_rows needs refusal_sources to draw the requests from")
        benign = [source.name for source in self.refusal_sources if source.label != "harmful"]
        if benign:
            raise ValueError(f"refusal_sources must be harmful request sets; labelled benign: {', '.join(benign)}")
        if share is not None and not self.safety_rows:
            raise ValueError("benign_risky_share needs a number of safety_rows to split")

