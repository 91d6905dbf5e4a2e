"""Evidence across seeds: the evaluation reports of one recipe run with several seeds, aggregated.

``parley pipeline --seeds 42,43,44`` runs the recipe once per seed (runs ``<run.name>-s<seed>``) and then
:func:`aggregate_seed_runs` writes ``<run.name>-seeds/evaluate/report.json`` and ``report.md``:

* per model, each numeric metric's median, min and max over seeds (``<metric>_median``, ``_min``, ``_max``), and
  for the judge rates the median width of the per-run template-bootstrap interval (``<metric>_ci_width_median``),
  so the seed spread can be read beside the spread one run's templates allow; the per-seed values with their
  intervals are in report.md;
* the system table's rates the same way, per set;
* ``comparisons``: per metric the PPO-minus-SFT difference in every seed (and PPO minus the extractive baseline
  for KB-fact accuracy and substantive answers), its median and range, and ``exceeds_seed_spread``: the
  difference has the same sign in every seed, i.e. its min..max range over seeds excludes 0 (needs two seeds or
  more). With few seeds this is a weak filter, not a significance test: it says which differences no seed
  contradicted.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

from dialogue.evaluation import ROWS, VERSUS_EXTRACTIVE, metric_cell
from dialogue.extractive import NAME as EXTRACTIVE
from groundwork.errors import ParleyError
from groundwork.layout import RunLayout, seed_run_name, seeds_run_name

NOT_MODELS = ("system", "comparisons", "seeds", "runs")
CI_SUFFIXES = ("_ci_low", "_ci_high")
SYSTEM_RATES = ("blocked_rate", "refusal_rate", "handoff_rate", "non_answer_rate", "degenerate_rate",
                "substantive_rate")
LABELS = dict(ROWS)


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


MODEL_ORDER = ("base", "sft", "ppo", EXTRACTIVE)


def _models(report: dict[str, Any]) -> list[str]:
    """The models of a report, base / sft / ppo / extractive first (report.json is written with sorted keys)."""
    names = [k for k, v in report.items() if isinstance(v, dict) and not k.startswith("_") and k not in NOT_MODELS]
    return sorted(names, key=lambda n: (MODEL_ORDER.index(n) if n in MODEL_ORDER else len(MODEL_ORDER), n))


def _in_table_order(keys: list[str]) -> list[str]:
    """The report's table rows first (``dialogue.evaluation.ROWS``), then the other keys as they come."""
    rows = [k for k, _ in ROWS if k in keys]
    return rows + [k for k in keys if k not in rows]


def _metric_keys(entries: list[dict[str, Any]]) -> list[str]:
    """Numeric keys of the entries, in first-seen order, without the interval bounds."""
    keys: dict[str, None] = {}
    for entry in entries:
        keys.update({k: None for k, v in entry.items() if _number(v) and not k.endswith(CI_SUFFIXES)})
    return list(keys)


def _spread(values: list[float]) -> dict[str, float]:
    return {"median": float(statistics.median(values)), "min": float(min(values)), "max": float(max(values))}


def _aggregate_entry(entries: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in _metric_keys(entries):
        values = [float(e[key]) for e in entries if _number(e.get(key))]
        if not values:
            continue
        for stat, value in _spread(values).items():
            out[f"{key}_{stat}"] = value
        widths = [float(e[f"{key}_ci_high"]) - float(e[f"{key}_ci_low"]) for e in entries
                  if _number(e.get(f"{key}_ci_low")) and _number(e.get(f"{key}_ci_high"))]
        if widths:
            out[f"{key}_ci_width_median"] = float(statistics.median(widths))
    return out


def compare_across_seeds(reports: dict[int, dict[str, Any]], challenger: str, baseline: str,
                         keys: tuple[str, ...] | None = None) -> dict[str, dict[str, Any]]:
    """Per metric both models have in every seed: the differences, their spread and whether they exceed it."""
    seeds = sorted(reports)
    if not all(challenger in reports[s] and baseline in reports[s] for s in seeds):
        return {}
    candidates = keys or _in_table_order([k for k in _metric_keys([reports[s][challenger] for s in seeds])
                                          if "_vs_" not in k])
    out: dict[str, dict[str, Any]] = {}
    for key in candidates:
        pairs = [(reports[s][challenger].get(key), reports[s][baseline].get(key)) for s in seeds]
        if not all(_number(a) and _number(b) for a, b in pairs):
            continue
        differences = [float(a) - float(b) for a, b in pairs]
        spread = _spread(differences)
        out[key] = {"differences": {str(s): d for s, d in zip(seeds, differences, strict=True)}, **spread,
                    "exceeds_seed_spread": len(seeds) >= 2 and (spread["min"] > 0 or spread["max"] < 0)}
    return out


def aggregate_reports(reports: dict[int, dict[str, Any]]) -> dict[str, Any]:
    """The aggregate of per-seed ``report.json`` contents (``{seed: report}``), as described in the module doc."""
    if not reports:
        raise ParleyError("no seed reports to aggregate")
    seeds = sorted(reports)
    names: list[str] = []
    for seed in seeds:
        names += [n for n in _models(reports[seed]) if n not in names]
    out: dict[str, Any] = {"seeds": seeds}
    for name in names:
        present = [reports[s][name] for s in seeds if name in reports[s]]
        out[name] = {"n_seeds": len(present), **_aggregate_entry(present)}
    sets: list[str] = []
    for seed in seeds:
        sets += [n for n in reports[seed].get("system", {}) if not n.startswith("_") and n not in sets]
    if sets:
        out["system"] = {}
        for set_name in sets:
            present = [reports[s]["system"][set_name] for s in seeds if set_name in reports[s].get("system", {})]
            out["system"][set_name] = {"kind": present[0].get("kind"), "n_seeds": len(present),
                                       **_aggregate_entry([{k: v for k, v in e.items() if k != "n"} for e in present])}
    out["comparisons"] = {"ppo_vs_sft": compare_across_seeds(reports, "ppo", "sft"),
                          f"ppo_vs_{EXTRACTIVE}": compare_across_seeds(reports, "ppo", EXTRACTIVE, VERSUS_EXTRACTIVE)}
    return out


def _fmt(value: float) -> str:
    return f"{value:.3f}"


def _summary_cell(entry: dict[str, Any], key: str) -> str:
    if f"{key}_median" not in entry:
        return ""
    text = f"{_fmt(entry[f'{key}_median'])} [{_fmt(entry[f'{key}_min'])} - {_fmt(entry[f'{key}_max'])}]"
    width = entry.get(f"{key}_ci_width_median")
    return f"{text} (run interval width {width:.2f})" if width is not None else text


def _ordered_keys(aggregate: dict[str, Any], names: list[str]) -> list[str]:
    keys = [k for k, _ in ROWS]
    for name in names:
        keys += [k.removesuffix("_median") for k in aggregate[name] if k.endswith("_median")
                 and k.removesuffix("_median") not in keys and not k.endswith("_ci_width_median")]
    return keys


def _comparison_lines(title: str, note: str, comparison: dict[str, dict[str, Any]], seeds: list[int]) -> list[str]:
    if not comparison:
        return []
    lines = [f"## {title}", "", note, "",
             "| metric | median difference | min .. max over seeds | per seed | exceeds seed spread |",
             "|---|---|---|---|---|"]
    for key, c in comparison.items():
        per_seed = ", ".join(f"s{s}: {c['differences'][str(s)]:+.3g}" for s in seeds)
        lines.append(f"| {LABELS.get(key, key)} | {c['median']:+.3g} | {c['min']:+.3g} .. {c['max']:+.3g} | "
                     f"{per_seed} | {'yes' if c['exceeds_seed_spread'] else 'no'} |")
    return lines + [""]


def render_seed_markdown(aggregate: dict[str, Any], reports: dict[int, dict[str, Any]], runs: dict[int, str]) -> str:
    """``report.md`` of the aggregate: summary table, comparisons, per-seed values with their run intervals."""
    seeds = aggregate["seeds"]
    names = _models(aggregate)
    keys = _ordered_keys(aggregate, names)
    lines = ["# Evaluation report across seeds", "",
             f"Seeds: {', '.join(map(str, seeds))} (runs: {', '.join(runs[s] for s in seeds)}). Each cell: the "
             "median over seeds [min - max]; for judge rates, also the median width of one run's 95% template "
             "interval, to read the seed spread against. Per-seed values with their intervals are further down.", "",
             "| metric | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for key in keys:
        cells = [_summary_cell(aggregate[name], key) for name in names]
        if any(cells):
            lines.append(f"| {LABELS.get(key, key)} | " + " | ".join(cells) + " |")
    lines.append("")
    comparisons = aggregate.get("comparisons", {})
    rule = ("A difference exceeds the seed spread when it has the same sign in every seed (its min .. max over seeds "
            "excludes 0); with few seeds that says no seed contradicted it, not that it is significant.")
    lines += _comparison_lines("PPO vs SFT across seeds", rule, comparisons.get("ppo_vs_sft", {}), seeds)
    lines += _comparison_lines("PPO vs extractive across seeds", rule + " The extractive baseline copies the most "
                               "relevant sentence of the top retrieved KB passage (no generation).",
                               comparisons.get(f"ppo_vs_{EXTRACTIVE}", {}), seeds)
    lines += ["## Per seed, with each run's template interval", "",
              "| metric | model | " + " | ".join(f"s{s}" for s in seeds) + " |", "|---|---|" + "---|" * len(seeds)]
    for key in keys:
        for name in names:
            cells = [metric_cell(reports[s][name], key) if name in reports[s] else "" for s in seeds]
            if any(cells):
                lines.append(f"| {LABELS.get(key, key)} | {name} | " + " | ".join(cells) + " |")
    lines.append("")
    system = aggregate.get("system", {})
    if system:
        lines += ["## System evaluation across seeds", "",
                  "The served path on public dev prompts (see each run's report); median [min - max] over seeds.", "",
                  "| set | kind | " + " | ".join(r.removesuffix("_rate").replace("_", "-") for r in SYSTEM_RATES)
                  + " |", "|---|---|" + "---|" * len(SYSTEM_RATES)]
        for set_name, entry in system.items():
            cells = [_summary_cell({k: v for k, v in entry.items() if not k.endswith("_ci_width_median")}, r)
                     for r in SYSTEM_RATES]
            lines.append(f"| {set_name} | {entry.get('kind')} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def seed_runs(output_dir: str | Path, name: str, seeds: list[int]) -> dict[int, RunLayout]:
    """The layout of each seed's run (``<output_dir>/<name>-s<seed>``)."""
    return {seed: RunLayout(Path(output_dir) / seed_run_name(name, seed)) for seed in seeds}


def aggregate_seed_runs(output_dir: str | Path, name: str, seeds: list[int]) -> dict[str, Any]:
    """Read every seed run's ``evaluate/report.json``, write the aggregate to ``<name>-seeds/evaluate``."""
    layouts = seed_runs(output_dir, name, seeds)
    missing = [str(layout.evaluate / "report.json") for layout in layouts.values()
               if not (layout.evaluate / "report.json").is_file()]
    if missing:
        raise ParleyError(f"no evaluation report to aggregate at {', '.join(missing)}: run those seeds' evaluate "
                          "stage first")
    reports = {seed: json.loads((layout.evaluate / "report.json").read_text(encoding="utf-8"))
               for seed, layout in layouts.items()}
    runs = {seed: str(layout.root) for seed, layout in layouts.items()}
    aggregate = aggregate_reports(reports)
    aggregate["runs"] = {str(seed): path for seed, path in runs.items()}
    out = RunLayout(Path(output_dir) / seeds_run_name(name)).stage_dir("evaluate")
    (out / "report.json").write_text(json.dumps(aggregate, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    (out / "report.md").write_text(render_seed_markdown(aggregate, reports, runs), encoding="utf-8")
    return aggregate
