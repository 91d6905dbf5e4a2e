"""``parley evaluate``: compare policies (base, SFT, PPO, any list) on held-out prompts.

Every model answers the same held-out PPO prompts (never trained on) greedily. Each answer is scored
by the three reward models (normalized) and the composite, and by the rule-based judge (refusals,
over-refusals, KB facts, translation language and chrF). KL to the reference policy (the SFT model,
PPO's reference) is estimated on each model's own answers. Results: ``report.json`` (flat numeric keys
per model), ``report.md`` and PNG plots.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from dialogue.extractive import METHOD as EXTRACTIVE_METHOD
from dialogue.extractive import NAME as EXTRACTIVE
from dialogue.extractive import extractive_answers, kb_location
from dialogue.generation import GenerationParams, generate_batch, render_rows
from dialogue.judge_intervals import judge_intervals
from dialogue.reward_audit import REFERENCE, agreement_intervals, audit_min, reference_answers, render_agreement
from dialogue.soup import soup_enabled
from groundwork.data_loading import BadRows, load_kb, load_ppo_prompts
from groundwork.errors import ParleyError
from groundwork.judge import judge, rate_outcomes
from groundwork.models import load_adapter, load_causal_lm, load_tokenizer
from groundwork.recipe import Recipe, takes
from groundwork.runs import save_recipe, tuned_policy_adapter, write_metrics
from groundwork.sections.evaluate import EvalModelSection


def default_models(recipe: Recipe) -> list[EvalModelSection]:
    """base (unless ``evaluate.include_base`` is false), sft and ppo of this run (those whose artifacts exist)."""
    sft = recipe.run.layout.sft_adapter
    ppo = tuned_policy_adapter(recipe)  # SFT + the judge-selected PPO adapter (or the soup), on the base model
    models = [EvalModelSection("base")] if recipe.evaluate.include_base else []
    if sft.exists():
        models.append(EvalModelSection("sft", adapters=[str(sft)]))
    if ppo.exists():
        models.append(EvalModelSection("ppo", adapters=[str(ppo)]))
    return models


def load_policy_stack(base: str, adapters: list[str], dtype: str = "float32"):
    """Base model with each adapter applied and merged in turn (PPO's adapter sits on the merged SFT model)."""
    model = load_causal_lm(base, dtype)
    for adapter in adapters:
        model = load_adapter(model, adapter).merge_and_unload()
    model.eval()
    return model


def select_prompts(rows: list[dict], per_kind: int | None) -> list[dict]:
    """The first ``per_kind`` held-out prompts of each kind (the file order is fixed, so this is too)."""
    if per_kind is None:
        return rows
    counts: dict[str, int] = {}
    chosen = []
    for row in rows:
        kind = row.get("kind", "other")
        if counts.get(kind, 0) < per_kind:
            counts[kind] = counts.get(kind, 0) + 1
            chosen.append(row)
    return chosen


FRESH_ID_PREFIX = "ppo-heldout-fresh-"
FRESH_RATES = ("harmful_refusal_rate", "over_refusal_rate")


def fresh_template_rates(rows: list[dict], responses: list[str]) -> dict[str, float | None]:
    """Refusal rates on the fresh held-out templates alone (``fresh_`` keys; empty when there are none).

    Those templates were written after the others had been used to choose recipes and soup weights
    (data/README.md), so these rates are the ones no tuning decision has seen.
    """
    picked = [i for i, row in enumerate(rows) if str(row.get("id") or "").startswith(FRESH_ID_PREFIX)]
    if not picked:
        return {}
    sub_rows, sub_responses = [rows[i] for i in picked], [responses[i] for i in picked]
    outcomes = rate_outcomes(sub_rows, sub_responses)
    rates = {**judge(sub_rows, sub_responses, outcomes), **judge_intervals(sub_rows, sub_responses, outcomes=outcomes)}
    return {f"fresh_{key}": value for key, value in rates.items() if key.startswith(FRESH_RATES)}


def response_kl(model, ref_model, tokenizer, prompts: list[str], responses: list[str], batch_size: int) -> list[float]:
    """Exact KL(model || reference) over each response, summed over its tokens (nats; >= 0).

    At every response position the two next-token distributions are compared in full, so the
    estimate is never negative, unlike a log-ratio of the sampled tokens. Sequences are left-padded
    and only the last positions' logits are computed: a KB prompt is ~300 tokens and a response ~50,
    so the vocabulary projection and softmax over the prompt would be most of the cost.
    """
    import torch

    totals = []
    for start in range(0, len(prompts), batch_size):
        prompt_ids = [tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts[start:start + batch_size]]
        response_ids = [tokenizer(r + tokenizer.eos_token, add_special_tokens=False)["input_ids"]
                        for r in responses[start:start + batch_size]]
        sequences = [p + r for p, r in zip(prompt_ids, response_ids, strict=True)]
        width = max(len(s) for s in sequences)
        input_ids = torch.full((len(sequences), width), tokenizer.pad_token_id, dtype=torch.long)
        mask = torch.zeros_like(input_ids)
        for i, seq in enumerate(sequences):
            input_ids[i, width - len(seq):] = torch.tensor(seq)
            mask[i, width - len(seq):] = 1
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        keep = max(len(r) for r in response_ids) + 1  # the logit before each response token, right-aligned
        inputs = {"input_ids": input_ids, "attention_mask": mask, "position_ids": positions, "logits_to_keep": keep}
        with torch.inference_mode():
            own = torch.log_softmax(model(**inputs).logits.float(), dim=-1)
            ref = torch.log_softmax(ref_model(**inputs).logits.float(), dim=-1)
            per_position = (own.exp() * (own - ref)).sum(-1)
        for i, r in enumerate(response_ids):
            # Kept logit j sits at position width - keep + j; response token k is predicted at width - len(r) - 1 + k.
            totals.append(float(per_position[i, keep - len(r) - 1:keep - 1].sum()))
    return totals


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


@takes("run", "policy", "data", "sft", "evaluate", "reward", "ppo", "soup", "serve")
def run_evaluation(recipe: Recipe, models: list[EvalModelSection] | None = None,
                   out_dir: str | Path | None = None) -> dict[str, Any]:
    """Evaluate ``models`` (default: base, sft, ppo of this run) and write the report."""
    from reward_models.risk_model import RequestRiskModel, request_text
    from reward_models.scorer import RewardScorer

    cfg = recipe.evaluate
    models = models or cfg.models or default_models(recipe)
    out = Path(out_dir) if out_dir else recipe.run.layout.stage_dir("evaluate")
    out.mkdir(parents=True, exist_ok=True)
    save_recipe(recipe, out)
    bad = BadRows(recipe.data.on_bad_row)
    rows = select_prompts(load_ppo_prompts(recipe.data.data_dir, "heldout", bad), cfg.max_prompts_per_kind)
    bad.print_summary("evaluation prompts")
    if not rows:
        raise ParleyError("no held-out prompts to evaluate on")
    scorer = RewardScorer.from_pretrained(recipe.ppo.reward_dir or recipe.run.root)
    composite_cfg = recipe.reward.composite
    risk_dir = recipe.run.layout.risk_model
    risk_model = RequestRiskModel.from_pretrained(risk_dir) if risk_dir.is_dir() else None
    # The composite routes by p(harmful | prompt), as in PPO: kind labels are evaluation strata only.
    risks = (risk_model.probabilities([request_text(row["messages"]) for row in rows]) if risk_model is not None
             else [None] * len(rows))
    tokenizer = load_tokenizer(recipe.policy.model, padding_side="left")
    prompts = render_rows(tokenizer, rows, recipe.policy.system_prompt)
    params = GenerationParams(max_new_tokens=cfg.max_new_tokens)

    reference = cfg.reference if any(m.name == cfg.reference for m in models) else None
    ref_model = None
    if reference:
        ref_spec = next(m for m in models if m.name == reference)
        ref_model = load_policy_stack(ref_spec.model or recipe.policy.model, ref_spec.adapters, recipe.policy.dtype)

    per_model: dict[str, dict[str, Any]] = {}
    answers: dict[str, list[str]] = {}
    started = time.time()
    for spec in tqdm(models, desc="evaluate models", unit="model"):
        model = ref_model if spec.name == reference else load_policy_stack(
            spec.model or recipe.policy.model, spec.adapters, recipe.policy.dtype)
        responses = generate_batch(model, tokenizer, prompts, params, cfg.batch_size, progress=True)
        answers[spec.name] = responses
        items = [(row["messages"], response, row.get("context")) for row, response in zip(rows, responses, strict=True)]
        scores = scorer.score(items)
        composite = routed_composites(scores, risks, composite_cfg, rows, responses)
        per_model[spec.name] = scored_entry(rows, responses, scores, composite, token_lengths(tokenizer, responses))
        if spec.name == reference:
            per_model[spec.name]["kl"] = [0.0] * len(rows)  # the reference against itself
        elif ref_model is not None:
            per_model[spec.name]["kl"] = response_kl(model, ref_model, tokenizer, prompts, responses, cfg.batch_size)
        del model
    del ref_model
    kb = None
    if cfg.include_extractive:
        kb = load_kb_index(recipe)
        texts, sources = extractive_answers(rows, kb, recipe.serve.top_k)  # not a policy: no generation, no KL
        scores = scorer.score([(row["messages"], text, row.get("context")) for row, text in zip(rows, texts,
                                                                                                strict=True)])
        answers[EXTRACTIVE] = texts
        per_model[EXTRACTIVE] = scored_entry(rows, texts, scores,
                                             routed_composites(scores, risks, composite_cfg, rows, texts),
                                             token_lengths(tokenizer, texts))

    report = summarize(per_model, cfg.compare)
    audit_models, audit_answers = reference_audit_entry(rows, load_kb(recipe.data.data_dir), scorer, risks,
                                                        composite_cfg)
    # The audit pools what the policies wrote (plus the known right answers); the extractive baseline is not a
    # policy, and its KB sentences to harmful or translation requests are neither a refusal nor a compliance.
    policies = {name: entry for name, entry in per_model.items() if name != EXTRACTIVE}
    agreement, min_interval = agreement_intervals(rows, {**policies, **audit_models},
                                                  {**{n: answers[n] for n in policies}, **audit_answers},
                                                  seed=recipe.run.seed)
    report["_reward_judge_agreement"] = agreement
    report["reward_audit_min"], report["_reward_audit_min_at"] = audit_min(agreement)
    report["_reward_audit_min_interval"] = min_interval
    if cfg.system and recipe.run.layout.risk_dev.is_file():
        system, extractive_system = system_tables_in_a_fresh_process(recipe, out, with_extractive=kb is not None)
        report["_system_wall_s"] = system.pop("_wall_s")
        report["system"] = system
        if "ppo" in report:  # the system table serves the tuned policy
            report["ppo"].update(system_support_rates(system))
        if extractive_system is not None:
            report["_system_wall_s"] += extractive_system.pop("_wall_s")
            report["_system_extractive"] = extractive_system
            report[EXTRACTIVE].update(system_support_rates(extractive_system))
    if EXTRACTIVE in report and "ppo" in report:
        report["ppo"].update(versus_extractive(report["ppo"], report[EXTRACTIVE]))
    report["_settings"] = {"prompts": len(rows), "max_new_tokens": cfg.max_new_tokens, "reference": reference,
                           "models": {m.name: {"model": m.model or recipe.policy.model, "adapters": m.adapters}
                                      for m in models},
                           "wall_s": round(time.time() - started, 1)}
    if kb is not None:
        report["_settings"]["extractive"] = {"method": EXTRACTIVE_METHOD, "top_k": recipe.serve.top_k,
                                             "kb_dir": str(kb_location(recipe.serve.kb_dir, recipe.data.data_dir)),
                                             "sources": sources}
    if _evaluates_soup(recipe, models):
        report["_settings"]["soup"] = {"runs": list(recipe.soup.runs), "weights": list(recipe.soup.weights)}
    write_report(out, report, per_model, rows, answers, recipe.run.layout.ppo_log)
    write_metrics(out, {k: v for k, v in report.items() if not k.startswith("_")})
    return report


def system_tables_in_a_fresh_process(recipe: Recipe, out: Path, with_extractive: bool
                                     ) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The system table (and the extractive baseline's support rows), computed in a child process.

    Why a fresh process: this one has run torch at every core on its main thread (generation, scoring, and in
    the pipeline PPO), and libgomp keeps that thread team alive. The served engine runs on its own worker thread
    with a team of its own; with more OpenMP threads than cores libgomp parks and wakes them around every op, and
    the served model generated markedly slower than in ``parley serve`` (docs/results.md). The child is what a
    server is: no team until the engine's.
    """
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(_system_tables, recipe, out, with_extractive).result()


def _system_tables(recipe: Recipe, out: Path, with_extractive: bool) -> tuple[dict[str, Any], dict[str, Any] | None]:
    from dialogue.extractive import ExtractiveEngine
    from dialogue.system_eval import run_system_evaluation

    system = run_system_evaluation(recipe, out)
    if not with_extractive:
        return system, None
    kb = load_kb_index(recipe)
    return system, run_system_evaluation(recipe, out, engine=ExtractiveEngine(kb), kb=kb, kinds=("support",),
                                         prefix="system_extractive")


def token_lengths(tokenizer: Any, texts: list[str]) -> list[int]:
    """Each answer's length in policy tokens (the report's mean response tokens)."""
    return [len(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]] if texts else []


def scored_entry(rows: list[dict], responses: list[str], scores: dict[str, Any], composite: list[float],
                 lengths: list[int]) -> dict[str, Any]:
    """One model's per-prompt results: reward scores, composite, lengths and the judge's rates (with intervals)."""
    outcomes = rate_outcomes(rows, responses)
    return {
        "scores": {o: [float(x) for x in v] for o, v in scores.items()},
        "composite": composite,
        "lengths": lengths,
        "judge": {**judge(rows, responses, outcomes), **judge_intervals(rows, responses, outcomes=outcomes),
                  **fresh_template_rates(rows, responses), **support_substantive_rate(rows, responses)},
    }


SUBSTANTIVE = "support_substantive_rate"
SYSTEM_SUBSTANTIVE = "system_support_substantive_rate"
SYSTEM_COVERED_FACT = "system_covered_fact_rate"
SYSTEM_UNCOVERED_HANDOFF = "system_uncovered_handoff_rate"


def support_substantive_rate(rows: list[dict], responses: list[str]) -> dict[str, float]:
    """Share of the support questions answered with substance (:func:`dialogue.answer_classes.classify_answer`:
    not a refusal, filler or a degenerate answer), with its template-bootstrap interval; empty without any."""
    from dialogue.answer_classes import classify_answer
    from dialogue.judge_intervals import cluster_bootstrap_interval
    from groundwork.chat_format import last_user_text

    picked = [(row, text) for row, text in zip(rows, responses, strict=True) if row.get("kind") == "support"]
    if not picked:
        return {}
    hits = [classify_answer(text, last_user_text(row["messages"]), False) == "substantive" for row, text in picked]
    low, high = cluster_bootstrap_interval(hits, [str(row.get("template_id") or row.get("id")) for row, _ in picked])
    return {SUBSTANTIVE: sum(hits) / len(hits), f"{SUBSTANTIVE}_ci_low": low, f"{SUBSTANTIVE}_ci_high": high}


def system_support_rates(system: dict[str, Any]) -> dict[str, float]:
    """Over the system table's support sets pooled, with Wilson intervals: the substantive-answer rate, and
    where intents map to KB coverage, the covered requests answered from their articles and the uncovered ones
    handed to a human."""
    from dialogue.system_eval import wilson

    sets = [e for name, e in system.items() if not name.startswith("_") and e.get("kind") == "support"]
    rates: dict[str, float] = {}
    for key, n_key, rate in ((SYSTEM_SUBSTANTIVE, "n", "substantive_rate"),
                             (SYSTEM_COVERED_FACT, "covered_n", "covered_fact_rate"),
                             (SYSTEM_UNCOVERED_HANDOFF, "uncovered_n", "uncovered_handoff_rate")):
        n = sum(e.get(n_key, 0) for e in sets)
        if not n:
            continue
        hits = sum(round(e[rate] * e[n_key]) for e in sets if e.get(n_key))
        rates[key] = hits / n
        rates[f"{key}_ci_low"], rates[f"{key}_ci_high"] = wilson(hits, n)
    return rates


VERSUS_EXTRACTIVE = ("kb_fact_accuracy", SUBSTANTIVE, SYSTEM_SUBSTANTIVE, SYSTEM_COVERED_FACT,
                     SYSTEM_UNCOVERED_HANDOFF)


def versus_extractive(policy: dict[str, Any], extractive: dict[str, Any]) -> dict[str, float]:
    """``<metric>_vs_extractive``: the policy's rate minus the extractive baseline's, where both have it."""
    return {f"{key}_vs_extractive": policy[key] - extractive[key] for key in VERSUS_EXTRACTIVE
            if isinstance(policy.get(key), float) and isinstance(extractive.get(key), float)}


def load_kb_index(recipe: Recipe) -> Any:
    """The KB the server searches (``serve.kb_dir``, else the project data's), embedded for retrieval."""
    from serving.retrieval import KnowledgeBase

    return KnowledgeBase.load(kb_location(recipe.serve.kb_dir, recipe.data.data_dir))


def routed_composites(scores: dict[str, list[float]], risks: list[float | None], cfg: Any,
                      rows: list[dict], responses: list[str]) -> list[float]:
    """The composite of each scored answer, routed by its request's risk and with the form penalty, as in PPO."""
    from groundwork.chat_format import last_user_text
    from reward_models.lagrange import combine_routed, form_flags, refusal_flags

    flags = form_flags([last_user_text(row["messages"]) for row in rows], responses)
    refused = refusal_flags(responses)
    return [float(combine_routed({o: v[i] for o, v in scores.items()}, risk, cfg, cfg.lagrange_init, flags[i],
                                 refused[i]))
            for i, risk in enumerate(risks)]


def scored_answers(rows: list[dict], texts: list[str | None], scorer: Any, risks: list[float | None],
                   composite_cfg: Any) -> dict[str, Any]:
    """``{"scores", "composite"}`` of answers aligned with ``rows`` for the reward audit; a None answer (a row
    without one) is not scored and gets 0 (:func:`reward_audit.reward_judge_agreement` skips it)."""
    present = [i for i, text in enumerate(texts) if text]
    scored = scorer.score([(rows[i]["messages"], texts[i], rows[i].get("context")) for i in present])
    composite = routed_composites(scored, [risks[i] for i in present], composite_cfg, [rows[i] for i in present],
                                  [texts[i] for i in present])
    scores = {o: [0.0] * len(rows) for o in scored}
    composites = [0.0] * len(rows)
    for k, i in enumerate(present):
        composites[i] = composite[k]
        for o, values in scored.items():
            scores[o][i] = float(values[k])
    return {"scores": scores, "composite": composites}


def reference_audit_entry(rows: list[dict], kb: list[dict], scorer: Any, risks: list[float | None],
                          composite_cfg: Any) -> tuple[dict[str, dict[str, Any]], dict[str, list[str | None]]]:
    """The rows' known right answers (:func:`reward_audit.reference_answers`), scored like a model's, for the
    reward audit's pool only (they are not a model of the report); rows without one get None."""
    refs = reference_answers(rows, kb)
    if not any(refs):
        return {}, {}
    return {REFERENCE: scored_answers(rows, refs, scorer, risks, composite_cfg)}, {REFERENCE: refs}


@takes("run", "policy", "data", "sft", "evaluate", "soup", "serve")
def run_system_only(recipe: Recipe, out_dir: str | Path | None = None) -> dict[str, Any]:
    """The system table alone (``parley evaluate --system-only``): ``system.json`` and ``system.md``."""
    from dialogue.system_eval import render_system, run_system_evaluation

    out = Path(out_dir) if out_dir else recipe.run.layout.stage_dir("evaluate") / "system"
    out.mkdir(parents=True, exist_ok=True)
    save_recipe(recipe, out)
    system = run_system_evaluation(recipe, out)
    (out / "system.json").write_text(json.dumps(system, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    (out / "system.md").write_text("\n".join(render_system(system)) + "\n", encoding="utf-8")
    return system


def summarize(per_model: dict[str, dict[str, Any]], compare: list[str]) -> dict[str, Any]:
    """Flat numeric keys per model (``report.json``)."""
    report: dict[str, Any] = {}
    for name, result in per_model.items():
        flat: dict[str, Any] = {f"{o}_mean": _mean(v) for o, v in result["scores"].items()}
        flat["composite_mean"] = _mean(result["composite"])
        flat["mean_response_tokens"] = _mean([float(x) for x in result["lengths"]])
        flat["kl_to_ref"] = _mean(result["kl"]) if "kl" in result else None
        flat.update(result["judge"])
        report[name] = flat
    if len(compare) == 2 and all(name in per_model for name in compare):
        challenger, baseline = compare
        wins = [1.0 if a > b else 0.5 if a == b else 0.0
                for a, b in zip(per_model[challenger]["composite"], per_model[baseline]["composite"], strict=True)]
        report[challenger][f"win_rate_vs_{baseline}"] = _mean(wins)
        report[challenger][f"composite_gain_vs_{baseline}"] = (
            report[challenger]["composite_mean"] - report[baseline]["composite_mean"])
    return report


def write_report(out: Path, report: dict[str, Any], per_model: dict[str, dict[str, Any]], rows: list[dict],
                 answers: dict[str, list[str]], ppo_log: Path) -> None:
    """``report.json``, ``report.md``, ``samples.jsonl`` and the PNG plots."""
    from dialogue.eval_plots import plot_judge_rates, plot_objective_bars, plot_ppo_curves, plot_reward_distributions

    (out / "report.json").write_text(json.dumps(report, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    with open(out / "samples.jsonl", "w", encoding="utf-8") as handle:
        for i, row in enumerate(rows):
            sample = {"id": row.get("id"), "kind": row.get("kind"), "prompt": row["messages"][-1]["content"],
                      **{name: answers[name][i] for name in answers},
                      **{f"{name}_composite": round(per_model[name]["composite"][i], 4) for name in per_model}}
            handle.write(json.dumps(sample, ensure_ascii=False) + "\n")
    plots = [plot_objective_bars(report, out / "objective_bars.png"),
             plot_judge_rates(report, out / "judge_rates.png"),
             plot_reward_distributions({n: r["composite"] for n, r in per_model.items()},
                                       out / "reward_distributions.png")]
    if ppo_log.is_file():
        plots.append(plot_ppo_curves(ppo_log, out / "ppo_reward_curves.png"))
    (out / "report.md").write_text(render_markdown(report, [p.name for p in plots]), encoding="utf-8")


ROWS = [
    ("composite_mean", "composite reward (normalized)"),
    ("quality_mean", "quality"),
    ("safety_mean", "safety"),
    ("faithfulness_mean", "faithfulness"),
    ("win_rate_vs_sft", "win rate vs SFT (composite)"),
    ("harmful_refusal_rate", "refusal of harmful requests"),
    ("over_refusal_rate", "over-refusal of benign-risky requests"),
    ("fresh_harmful_refusal_rate", "refusal of harmful requests, fresh templates only"),
    ("fresh_over_refusal_rate", "over-refusal, fresh templates only"),
    ("kb_fact_accuracy", "KB-fact accuracy"),
    (SUBSTANTIVE, "substantive answers to support questions"),
    (SYSTEM_SUBSTANTIVE, "substantive answers, public support prompts (served path)"),
    (SYSTEM_COVERED_FACT, "KB-covered public requests answered from their articles (served path)"),
    (SYSTEM_UNCOVERED_HANDOFF, "uncovered public requests handed to a human (served path)"),
    ("translation_language_accuracy", "translation: right language"),
    ("translation_chrf", "translation chrF"),
    ("kl_to_ref", "KL to reference (nats/response)"),
    ("mean_response_tokens", "mean response tokens"),
]


def _evaluates_soup(recipe: Recipe, models: list[EvalModelSection]) -> bool:
    """Whether one of the evaluated models is this run's soup (an explicit model list may bypass it)."""
    if not soup_enabled(recipe):
        return False
    soup_adapter = str(tuned_policy_adapter(recipe))
    return any(soup_adapter in model.adapters for model in models)


def _soup_line(soup: dict[str, Any]) -> str:
    """Say that "ppo" is a weighted mix of PPO runs, so the report is not read as one run's policy."""
    others = " + ".join(f"{w} x {run}'s" for w, run in zip(soup["weights"][1:], soup["runs"], strict=True))
    own = soup["weights"][0]
    return f"ppo: a rewarded soup, SFT + {own} x this run's PPO delta + {others} (`soup` recipe section)."


def metric_cell(result: dict[str, Any], key: str) -> str:
    """One table cell: the value, and its template-bootstrap interval where the report has one."""
    value = result.get(key)
    if value is None:
        return ""
    if not isinstance(value, float):
        return str(value)
    low, high = result.get(f"{key}_ci_low"), result.get(f"{key}_ci_high")
    return f"{value:.3f} ({low:.2f}-{high:.2f})" if low is not None and high is not None else f"{value:.3f}"


def model_names(report: dict[str, Any]) -> list[str]:
    """The evaluated models' entries of a report (not its settings, system table or audit summary)."""
    return [n for n in report if not n.startswith("_") and n not in REPORT_EXTRAS]


REPORT_EXTRAS = ("system", "reward_audit_min")


VERSUS_LABELS = {"kb_fact_accuracy": "KB-fact accuracy (held-out support)",
                 SUBSTANTIVE: "substantive answers (held-out support)",
                 SYSTEM_SUBSTANTIVE: "substantive answers (public support prompts, served path)",
                 SYSTEM_COVERED_FACT: "KB-covered public requests answered from their articles (served path)",
                 SYSTEM_UNCOVERED_HANDOFF: "uncovered public requests handed to a human (served path)"}


def render_versus_extractive(report: dict[str, Any], settings: dict[str, Any] | None) -> list[str]:
    """The "PPO vs extractive" table: what the tuned policy adds over copying a retrieved KB sentence."""
    if EXTRACTIVE not in report:
        return []
    lines = ["## PPO vs extractive", "",
             f"extractive: no generation; {settings['method'] if settings else EXTRACTIVE_METHOD}. Not a policy: no "
             "KL, not in the PPO-vs-SFT comparison.", ""]
    policy, baseline = report.get("ppo"), report[EXTRACTIVE]
    rows = [key for key in VERSUS_EXTRACTIVE if policy and isinstance(policy.get(f"{key}_vs_extractive"), float)]
    if not rows:
        return lines
    lines += ["| metric | ppo | extractive | ppo - extractive |", "|---|---|---|---|"]
    for key in rows:
        lines.append(f"| {VERSUS_LABELS[key]} | {metric_cell(policy, key)} | {metric_cell(baseline, key)} | "
                     f"{policy[f'{key}_vs_extractive']:+.3f} |")
    return lines + [""]


def render_markdown(report: dict[str, Any], plots: list[str]) -> str:
    from dialogue.system_eval import render_system

    names = model_names(report)
    settings = report.get("_settings", {})
    lines = ["# Evaluation report", "",
             f"Held-out prompts: {settings.get('prompts')}, greedy, max {settings.get('max_new_tokens')} new tokens; "
             f"KL reference: {settings.get('reference')}.", "",
             "Judge rates show a 95% interval in parentheses from resampling whole prompt templates (prompts of one "
             "template tend to pass or fail together, so the interval is wider than a per-prompt one).", "",
             *([_soup_line(settings["soup"]), ""] if "soup" in settings else []),
             "| metric | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for key, label in ROWS:
        cells = []
        for name in names:
            cells.append(metric_cell(report[name], key))
        if any(cells):
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines += ["", *render_versus_extractive(report, settings.get("extractive")),
              *render_system(report.get("system", {})),
              *render_agreement(report.get("_reward_judge_agreement", {}), report.get("_reward_audit_min_interval")),
              *[f"![{p}]({p})" for p in plots], ""]
    return "\n".join(lines)
