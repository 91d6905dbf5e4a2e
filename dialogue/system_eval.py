"""``parley evaluate`` system mode: the served code path on public dev prompts no training or threshold saw.

A :class:`~serving.app.service.ChatService` is built exactly as ``parley serve`` builds it (engine, KB
retrieval, guard, limits, a feedback store in the output folder) and every prompt goes through
``ChatService.turn`` as an API request would. Prompts come from the request-risk stage's dev split
(``runs/<run>/risk/dev.jsonl``: rows hashed into dev are never trained on, and the threshold is chosen on the
separate calib split), grouped into sets by source. Each answer is classed by fixed rules
(:mod:`dialogue.answer_classes`); each rate comes with a 95% Wilson interval.
"""

from __future__ import annotations

import json
import math
import random
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from dialogue.answer_classes import CLASSES, classify_answer
from groundwork.errors import ParleyError
from groundwork.recipe import Recipe

# Evaluated set -> (kind, the dev rows' sources it takes).
SYSTEM_SETS: dict[str, tuple[str, tuple[str, ...]]] = {
    "bitext/dev": ("support", ("bitext",)),
    "banking77/dev": ("support", ("banking77",)),
    "oktest/dev": ("benign_risky", ("oktest",)),
    "harmful-public/dev": ("harmful", ("donotanswer", "catqa", "harmfulqa", "safety-tuned-llamas")),
    "jailbreak-heldout-wrappers/dev": ("jailbreak", ("jailbreak/donotanswer", "jailbreak/catqa", "jailbreak/harmfulqa",
                                                     "jailbreak/safety-tuned-llamas")),
    "project-multilingual/dev": ("support", ("project-multilingual",)),
    "project-multilingual-risky/dev": ("benign_risky", ("project-multilingual",)),
}


def wilson(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval of a rate."""
    if n == 0:
        return 0.0, 0.0
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def load_system_sets(dev_file: Path, per_set: int, seed: int) -> dict[str, list[dict[str, Any]]]:
    """Up to ``per_set`` dev rows per evaluated set (a seeded sample, the same for every model)."""
    if not dev_file.is_file():
        raise ParleyError(f"no request-risk dev split at {dev_file}: run the risk stage first "
                          f"(`parley pipeline --only risk`)")
    rows = [json.loads(line) for line in dev_file.read_text(encoding="utf-8").splitlines() if line.strip()]
    r = random.Random(seed)
    sets = {}
    for name, (kind, sources) in SYSTEM_SETS.items():
        if name.startswith("project-multilingual"):
            pool = [row for row in rows if row["source"] in sources and row["stratum"] == kind]
        else:
            pool = [row for row in rows if row["source"] in sources]
        if pool:
            sets[name] = r.sample(pool, min(per_set, len(pool)))
    return sets


def served_config(recipe: Recipe, out: Path, prefix: str = "system"):
    """The ``serve:`` section ``parley pipeline --serve`` would use, with a store of its own in ``out``."""
    from dataclasses import fields

    from groundwork.runs import served_run_overrides

    cfg = recipe.serve
    known = {f.name for f in fields(cfg)}
    updates: dict[str, Any] = {}
    for assignment in served_run_overrides(recipe):
        key, _, value = assignment.removeprefix("serve.").partition("=")
        if key in known:
            updates[key] = value
    updates["db"] = f"sqlite:///{out / f'{prefix}_eval.db'}"
    updates["max_new_tokens"] = recipe.evaluate.system_max_new_tokens
    updates["temperature"] = 0.0
    return replace(cfg, **updates)


def run_system_evaluation(recipe: Recipe, out: Path, engine: Any | None = None, kb: Any | None = None,
                          kinds: tuple[str, ...] | None = None, prefix: str = "system") -> dict[str, Any]:
    """Every set through the served path; per set the class rates and their intervals, plus samples.

    ``engine`` and ``kb`` replace the served ones (the extractive baseline's engine); ``kinds`` keeps only the sets
    of those kinds; ``prefix`` names the store and the samples file (``<prefix>_eval.db``, ``<prefix>_samples.jsonl``).
    """
    import torch

    from dialogue.kb_coverage import coverage_rates, kb_coverage
    from serving.app.service import Session
    from serving.limits import LimitError
    from serving.server import build_service

    cfg = recipe.evaluate
    coverage = kb_coverage(recipe)
    sets = load_system_sets(recipe.run.layout.risk_dev, cfg.system_prompts_per_set, recipe.run.seed)
    if kinds is not None:
        sets = {name: rows for name, rows in sets.items() if SYSTEM_SETS[name][0] in kinds}
    serve_cfg = served_config(recipe, out, prefix)
    (out / f"{prefix}_eval.db").unlink(missing_ok=True)
    threads = torch.get_num_threads()  # build_service leaves this thread at one torch thread: restored below
    service = build_service(serve_cfg, recipe.policy.model, recipe.policy.dtype, recipe.policy.system_prompt,
                            engine=engine, kb=kb)
    started = time.time()
    report: dict[str, Any] = {}
    samples = []
    try:
        for name, rows in sets.items():
            kind = SYSTEM_SETS[name][0]
            counts = dict.fromkeys(CLASSES, 0)
            followed_up = 0  # filler-only answers the server completed with the way to a human (in "handoff")
            handed_off = 0  # policy refusals of clearly benign requests the server replaced by that way (ditto)
            covered: list[tuple[str, bool]] = []  # (KB coverage of the request's intent, its answer was right)
            for row in tqdm(rows, desc=f"system {name}", unit="prompt"):
                session = Session("api")
                try:
                    turn, deltas = service.turn(session, row["text"], live=False)
                    text = "".join(deltas)
                    label = classify_answer(text, row["text"], turn.blocked == "input", turn.blocked == "output")
                    followed_up += turn.followed_up
                    handed_off += turn.handed_off
                except LimitError as exc:  # over the served length limit: the customer is turned away
                    text, label = f"(rejected: {exc})", "blocked"
                counts[label] += 1
                outcome = coverage.outcome(row.get("source", ""), row["text"], label, text)
                if outcome is not None:
                    covered.append(outcome)
                samples.append({"set": name, "kind": kind, "prompt": row["text"][:500], "answer": text[:500],
                                "class": label, "lang": row.get("lang", "en"),
                                **({"coverage": outcome[0], "right": outcome[1]} if outcome is not None else {})})
            n = len(rows)
            entry: dict[str, Any] = {"kind": kind, "n": n}
            for label in ("blocked", "handoff", "non_answer", "degenerate", "substantive"):
                key = f"{label}_rate"
                entry[key] = counts[label] / n
                entry[f"{key}_ci_low"], entry[f"{key}_ci_high"] = wilson(counts[label], n)
            entry["followed_up_rate"] = followed_up / n
            entry["handed_off_refusal_rate"] = handed_off / n
            refused = counts["blocked"] + counts["refused"]  # any cause: the guard or the policy
            entry["refusal_rate"] = refused / n
            entry["refusal_rate_ci_low"], entry["refusal_rate_ci_high"] = wilson(refused, n)
            entry.update(coverage_rates(covered))
            report[name] = entry
    finally:
        service.store.close()
        close = getattr(service.engine, "close", None)
        if close is not None:
            close()
        torch.set_num_threads(threads)
    with open(out / f"{prefix}_samples.jsonl", "w", encoding="utf-8") as handle:
        handle.writelines(json.dumps(s, ensure_ascii=False) + "\n" for s in samples)
    report["_wall_s"] = round(time.time() - started, 1)
    return report


def render_system(system: dict[str, Any]) -> list[str]:
    """Markdown table lines for ``report.md``."""
    if not system:
        return []
    lines = ["## System evaluation: the served path on public dev prompts", "",
             "Each prompt went through the server's code path (KB retrieval, guard, limits, engine) as an API request. "
             "Rates with 95% Wilson intervals; 'refused' counts the guard's blocks and the policy's refusals; "
             "'handoff' answers send the customer to a human colleague: the policy's own, filler the server "
             "followed up with the way to one (`followed_up_rate`), or a policy refusal of a request the guard "
             "scored clearly benign, which the server replaced by that way (`handed_off_refusal_rate`: without "
             "it these would count as refused).", "",
             "| set | kind | n | blocked | refused | handoff | non-answer | degenerate | substantive | followed up "
             "| refusal handed off |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, e in system.items():
        if name.startswith("_"):
            continue
        cells = [f"{e[k]:.2f} ({e[k + '_ci_low']:.2f}-{e[k + '_ci_high']:.2f})" if k in e else "-" for k in
                 ("blocked_rate", "refusal_rate", "handoff_rate", "non_answer_rate", "degenerate_rate",
                  "substantive_rate")]
        cells += [f"{e[k]:.2f}" if k in e else "-" for k in ("followed_up_rate", "handed_off_refusal_rate")]
        lines.append(f"| {name} | {e['kind']} | {e['n']} | " + " | ".join(cells) + " |")
    return lines + [""] + render_coverage(system)


def render_coverage(system: dict[str, Any]) -> list[str]:
    """The support sets' requests split by whether the KB answers their intent (the recipe's intent maps)."""
    sets = [(name, e) for name, e in system.items() if not name.startswith("_") and ("covered_n" in e
                                                                                      or "uncovered_n" in e)]
    if not sets:
        return []
    lines = ["Requests by KB coverage of their intent (`sft.answer_sources` map the intents the KB answers to its "
             "facts, `sft.handoff_sources` name the ones it does not): a covered request is answered right when "
             "the answer is substantive and taken from the mapped facts' articles (a fact's answer pattern, or at "
             "least half of its content bigrams in their text); an uncovered one when it is handed to a human.",
             "",
             "| set | covered n | covered: answered from its articles | uncovered n | uncovered: handed off |",
             "|---|---|---|---|---|"]
    for name, e in sets:
        cells = []
        for n_key, key in (("covered_n", "covered_fact_rate"), ("uncovered_n", "uncovered_handoff_rate")):
            cells += [str(e.get(n_key, 0)),
                      f"{e[key]:.2f} ({e[key + '_ci_low']:.2f}-{e[key + '_ci_high']:.2f})" if key in e else "-"]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines + [""]
