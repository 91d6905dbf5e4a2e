"""Why this answer: one explanation per answer, built once when the answer is stored.

An explanation holds

* the three objective scores of the reward models (quality, safety, faithfulness; normalized so 0 is the
  reference mean and 1 one standard deviation) and the composite routed by the request risk, as PPO sees it
  (:func:`reward_models.lagrange.combine_routed`), when the server was started with ``--reward-dir``;
  otherwise ``scores`` is None and ``scores_note`` says "reward models not loaded";
* the request risk p(harmful | request) from the guard's input check;
* the guard's decision (``input_blocked``, ``output_replaced``, ``refusal_handed_off``, ``passed``; ``off``
  without a risk model, ``not_checked`` for a handoff notice) with its reason and the response class (refusal /
  harmful_compliance / answer);
* the KB passages the answer was given, each with the sentence that best supports the answer. Support is
  lexical: the token-set F1 between a passage sentence's content words and the answer's (stop words dropped,
  each CJK character a word), computed for every sentence; the best sentence, its score and the shared words
  are kept. The explanation says so (:data:`HIGHLIGHT_METHOD`): a high overlap means shared words, not a
  checked entailment.

Cost (``benchmarks/explain_cost.py``, the stored copy included): the string work and the store write are small;
the reward models' one forward pass (all three objectives together when they share a trunk; a support answer
with three KB passages fills the models' ``max_length``, 192 tokens in cpu-demo) is the rest. The scorer runs
in bfloat16 where the CPU multiplies it natively (AVX-512 BF16 / AMX), which halves the MiniLM pass at scores
within 0.05 standard deviations of float32 (:func:`reward_models.scorer.scoring_dtype`).
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

VERSION = 1
NO_REWARD_MODELS = "reward models not loaded"
SCORES_NOTE = ("reward-model scores, normalized (0 = the reference mean, 1 = one standard deviation); the "
               "composite is routed by the request risk")
HIGHLIGHT_METHOD = ("highlighted by word overlap with the answer: token-set F1 of content words per passage "
                    "sentence (each CJK character counts as a word)")

_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af"
_TOKEN = re.compile(rf"[{_CJK}]|[^\W_{_CJK}]+")
_SENTENCE_END = re.compile(r"[.!?]+(?=\s|$)|[。！？]+|\n")
# Function words of the five chat languages that say nothing about support on their own.
STOP_WORDS = frozenset("""
a an the and or but if then of to in on at by for with from as is are was were be been being it its this that
these those there here i you he she we they me my your our their his her them us do does did done have has had
not no yes can could will would shall should may might must so than too very just also about into over under
up down out off again only own same such what which who whom whose when where why how all any both each few
more most other some nor s t don y o el la los las un una unos unas de del al y o en por para con sin que se su
sus es son lo le les como mas más pero si no muy ya le la les des du un une et ou en dans par pour avec sans
que qui se sa son ses est sont ce cette ces au aux ne pas plus mais très der die das den dem des ein eine
einer eines einem und oder in im am an auf für mit ohne von zu zum zur ist sind war es sie er wir ihr ich du
nicht kein keine auch nur noch wie als
的 了 是 在 我 你 他 她 它 们 吗 呢 吧 啊 和 与 也 就 都 而 及 或 这 那 个 有 不 之 于 把 被
""".split())


def content_words(text: str) -> list[str]:
    """Lowercased words of ``text`` minus stop words; each CJK character is one word."""
    return [w for w in (m.group(0).casefold() for m in _TOKEN.finditer(text)) if w not in STOP_WORDS]


def sentences(text: str) -> list[tuple[int, int]]:
    """``[start, end)`` spans of the sentences of ``text`` (split at . ! ? 。！？ and line breaks), stripped."""
    spans, start = [], 0
    for end in [m.end() for m in _SENTENCE_END.finditer(text)] + [len(text)]:
        begin, stop = start, end
        start = end
        while begin < stop and text[begin].isspace():
            begin += 1
        while stop > begin and text[stop - 1].isspace():
            stop -= 1
        if stop > begin:
            spans.append((begin, stop))
    return spans


def overlap_f1(sentence: set[str], answer: set[str]) -> float:
    """Token-set F1 of two content-word sets (0 when either is empty)."""
    shared = len(sentence & answer)
    if not shared:
        return 0.0
    precision, recall = shared / len(sentence), shared / len(answer)
    return 2 * precision * recall / (precision + recall)


def best_sentence(passage: str, answer_words: set[str]) -> dict[str, Any]:
    """The passage sentence with the highest overlap with the answer: text, span, overlap, shared words."""
    best: dict[str, Any] = {"sentence": None, "start": None, "end": None, "overlap": 0.0, "matched": []}
    for start, end in sentences(passage):
        words = set(content_words(passage[start:end]))
        score = overlap_f1(words, answer_words)
        if score > best["overlap"]:
            best = {"sentence": passage[start:end], "start": start, "end": end, "overlap": round(score, 4),
                    "matched": sorted(words & answer_words)}
    return best


def guard_decision(turn: Any) -> dict[str, Any]:
    """What the guard decided about this answer and why (from the service's :class:`Turn`)."""
    verdict = turn.guard
    kind = getattr(verdict, "kind", None)
    if turn.blocked == "input":
        return {"decision": "input_blocked", "reason": turn.input_reason or "request risk reached the threshold",
                "response_class": None, "score": turn.request_risk,
                "summary": "The request was blocked before it reached the model; a fixed refusal was sent."}
    if turn.blocked == "output":
        return {"decision": "output_replaced", "reason": getattr(verdict, "reason", "") or "", "response_class": kind,
                "score": getattr(verdict, "score", None),
                "summary": "The model's answer failed the output check and was replaced by a safe one."}
    if verdict is None:
        reason = ("handoff notice: the customer asked for a human agent" if turn.finish_reason == "handoff"
                  else "no model answer was checked")
        return {"decision": "not_checked", "reason": reason, "response_class": None, "score": None,
                "summary": "A fixed notice, not a model answer: the guard did not check it."}
    if getattr(verdict, "score", None) is None:  # the guard is off (no request-risk model)
        return {"decision": "off", "reason": "guard off: the server runs without a request-risk model",
                "response_class": None, "score": None, "summary": "The answer was not screened (guard off)."}
    if getattr(turn, "handed_off", False):
        reason = "; ".join(r for r in (turn.input_reason, verdict.reason) if r)
        return {"decision": "refusal_handed_off", "reason": reason, "response_class": kind, "score": verdict.score,
                "summary": "The model refused a request the guard scored clearly benign; the way to a human "
                           "colleague was shown instead."}
    summary = "The answer passed the guard's output check."
    if turn.replaced:
        summary += " The model's answer was empty, so a fixed notice was shown."
    reason = "; ".join(r for r in (turn.input_reason, verdict.reason) if r)
    return {"decision": "passed", "reason": reason, "response_class": kind, "score": verdict.score,
            "summary": summary}


def composite_of(reward_dir: str | Path) -> Any:
    """The composite weights of the run's reward recipe (``reward-<objective>/recipe.yaml``), else the defaults."""
    from groundwork.sections.reward import CompositeSection

    for recipe in sorted(Path(reward_dir).glob("reward-*/recipe.yaml")):
        try:
            from groundwork.recipe import load_recipe

            return load_recipe(recipe).reward.composite
        except Exception:  # noqa: BLE001 - an unreadable recipe falls back to the default weights
            continue
    return CompositeSection()


class Explainer:
    """Builds the explanation of one answer; ``scorer`` None = no reward models (the scores say so)."""

    def __init__(self, scorer: Any | None = None, composite: Any | None = None) -> None:
        from groundwork.sections.reward import CompositeSection

        self.scorer = scorer
        self.composite = composite or CompositeSection()

    @classmethod
    def load(cls, reward_dir: str | Path | None, dtype: str = "auto") -> Explainer:
        """Load the reward models of ``reward_dir`` once (none when it is empty); ``dtype`` as in
        :func:`reward_models.scorer.scoring_dtype`."""
        if not reward_dir:
            return cls(None)
        from reward_models.scorer import RewardScorer

        scorer = RewardScorer.from_pretrained(reward_dir, dtype=dtype)
        scorer.score_one("warm up", "warm up")  # the first forward pass is slow; not on a customer's answer
        return cls(scorer, composite_of(reward_dir))

    def scores(self, prompt: Any, response: str, context: str | None, risk: float | None) -> dict[str, float] | None:
        if self.scorer is None:
            return None
        from groundwork.chat_format import last_user_text
        from reward_models.lagrange import combine_routed, form_flags, refusal_flags

        values = self.scorer.score_one(prompt, response, context)
        out = {o: round(float(v), 4) for o, v in values.items()}
        flag = form_flags([last_user_text(prompt)], [response])[0]
        refused = refusal_flags([response])[0]
        out["composite"] = round(float(combine_routed(values, risk, self.composite, 0.0, flag, refused)), 4)
        return out

    def explain(self, turn: Any, conversation: Sequence[dict[str, str]]) -> dict[str, Any]:
        """The explanation of ``turn`` (text, citations, guard verdicts filled in) for ``conversation``, the
        messages up to and including the customer's last one."""
        started = time.perf_counter()
        prompt = [dict(m) for m in conversation if m["role"] != "system"]
        context = "\n\n".join(f"{c['title']}: {c['text']}" for c in turn.citations) or None
        scores = self.scores(prompt, turn.text, context, turn.request_risk)
        answer_words = set(content_words(turn.text))
        sources = []
        for c in turn.citations:
            best = best_sentence(c["text"], answer_words)
            sources.append({"id": c["id"], "title": c["title"], "retrieval_score": c.get("score"), **best})
        ranked = [s for s in sources if s["sentence"]]
        top = max(ranked, key=lambda s: s["overlap"]) if ranked else None
        return {
            "version": VERSION,
            "scores": scores,
            "scores_note": SCORES_NOTE if scores is not None else NO_REWARD_MODELS,
            "composite_weights": (None if scores is None else {
                k: v for k, v in asdict(self.composite).items() if k.endswith("_weight")}),
            "request_risk": None if turn.request_risk is None else round(float(turn.request_risk), 4),
            "guard": guard_decision(turn),
            "sources": sources,
            "highlight": None if top is None else {
                "source_id": top["id"], "sentence": top["sentence"], "overlap": top["overlap"]},
            "highlight_method": HIGHLIGHT_METHOD,
            "elapsed_ms": round((time.perf_counter() - started) * 1000, 2),
        }

