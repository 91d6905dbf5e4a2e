"""``parley pipeline``: data -> sft -> reward x3 -> ppo -> quantize -> evaluate, skipping what is current.

Each stage has a fingerprint: a hash of the recipe sections it takes (its ``@takes`` declaration, which is
also all it can read), the project data files and the
fingerprints of the stages it depends on. A stage that finishes writes ``stage.json`` with that
fingerprint; the next run skips it while the fingerprint is unchanged. A stage that was interrupted
has no ``stage.json`` and runs again (PPO resumes from its last checkpoint), so re-running the same
command after a crash finishes the loop without redoing completed stages. With
``pipeline.parallel_lanes`` SFT and the reward models, which do not depend on each other, run side by side
in child processes (:mod:`parley.pipeline_lanes`) that write the same markers.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

from dialogue.soup import soup_inputs_digest
from groundwork.config_io import to_dict
from groundwork.data_loading import OBJECTIVES
from groundwork.errors import ParleyError, UpstreamMissingError
from groundwork.recipe import Recipe, narrow, taken_sections, takes
from groundwork.runs import recipe_yaml, served_run_overrides, tuned_policy_adapter
from parley.pipeline_lanes import LANES, lanes_to_run, run_lanes

# The stage names in order, known without importing the stage modules (``parley pipeline --only/--force`` choices);
# a test keeps them equal to ``[s.name for s in stages()]``.
STAGE_NAMES: tuple[str, ...] = ("data", "sft", *(f"reward-{o}" for o in OBJECTIVES), "risk", "ppo", "soup",
                                "quantize", "evaluate")


@dataclass
class Stage:
    """One pipeline stage: how to run it (a ``@takes`` function: its sections), its upstream stages, its files."""

    name: str
    depends: tuple[str, ...]
    run: Callable[[Recipe, bool], dict[str, Any]]
    key_metrics: tuple[str, ...] = ()
    # Files outside this run that the stage reads (another run's PPO adapter for the soup), as one digest.
    external: Callable[[Recipe], str] | None = None

    @property
    def sections(self) -> tuple[str, ...]:
        """The recipe sections the stage's runner takes: exactly what its fingerprint hashes."""
        return taken_sections(self.run)


def _hash_files(root: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
        digest.update(str(path.relative_to(root)).encode())
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


# Keys no stage reads: where a run's files go (a copied run folder stays current) and what only a stand-alone
# command reads (``parley quantize --adapter``, ``reward score --reward-dir``, ``risk score --model``, ...).
_UNHASHED_KEYS = {"run": ("name", "output_dir"), "quantize": ("adapter", "reward_dir"), "reward": ("score_dir",),
                  "risk": ("score_model",), "serve": ("export_max_pairs_per_prompt",)}


def _section(recipe: Recipe, name: str) -> Any:
    values = to_dict(getattr(recipe, name))
    return {k: v for k, v in values.items() if k not in _UNHASHED_KEYS.get(name, ())}


def fingerprint(stage: Stage, recipe: Recipe, data_hash: str, upstream: dict[str, str]) -> str:
    payload = {
        "stage": stage.name,
        "sections": {s: _section(recipe, s) for s in stage.sections},
        "data": data_hash,
        "upstream": {d: upstream[d] for d in stage.depends},
    }
    if stage.external is not None:
        payload["external"] = stage.external(recipe)
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _stage_file(recipe: Recipe, name: str) -> Path:
    return recipe.run.layout.marker(name)


def _scalars(metrics: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in metrics.items() if not isinstance(v, dict | list) and not k.startswith("_")}


def _runner(stage_fn: Callable[..., dict[str, Any]], *args: Any,
            keep: Callable[[dict[str, Any]], dict[str, Any]] = dict) -> Callable[[Recipe, bool], dict[str, Any]]:
    """A pipeline runner for a ``@takes`` stage function; it takes (and is fingerprinted by) the same sections."""

    def run(recipe: Recipe, resume: bool) -> dict[str, Any]:
        return keep(stage_fn(recipe, *args))

    run.sections = taken_sections(stage_fn)  # type: ignore[attr-defined]
    return run


def _reward_runner(train: Callable[..., dict[str, Any]], objective: str) -> Callable[[Recipe, bool], dict[str, Any]]:
    """One objective's reward-model training, with the recipe's human-feedback files (``reward.feedback``)."""

    def run(recipe: Recipe, resume: bool) -> dict[str, Any]:
        return train(recipe, objective, feedback=recipe.reward.feedback or None)

    run.sections = taken_sections(train)  # type: ignore[attr-defined]
    return run


def _without_private(report: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in report.items() if not k.startswith("_")}


@takes("data")
def _run_data(recipe: Recipe, resume: bool) -> dict[str, Any]:
    from dialogue.data_stats import data_stats

    return data_stats(recipe.data.data_dir)


def _ppo_runner() -> Callable[[Recipe, bool], dict[str, Any]]:
    from dialogue.ppo.trainer import run_ppo

    def run(recipe: Recipe, resume: bool) -> dict[str, Any]:
        saved = recipe.run.layout.ppo_recipe
        # Continue an interrupted PPO run only if it was started by this same recipe (the sections PPO takes).
        same = saved.is_file() and saved.read_text(encoding="utf-8") == recipe_yaml(
            narrow(recipe, taken_sections(run_ppo), run_ppo.__qualname__))
        return run_ppo(recipe, resume=resume and same)

    run.sections = taken_sections(run_ppo)  # type: ignore[attr-defined]
    return run


@takes("run", "policy", "soup", "quantize", "data", "reward")
def _run_quantize(recipe: Recipe, resume: bool) -> dict[str, Any]:
    from parley.quantize_commands import plan_inputs, quantize_settings
    from serving.quantize.export import quantize

    prompts, scorer = (plan_inputs(recipe, recipe.run.layout.root) if recipe.quantize.plan == "auto"
                       else (None, None))
    manifest = quantize(recipe.policy.model, str(tuned_policy_adapter(recipe)), recipe.run.layout.quantize,
                        quantize_settings(recipe), plan_prompts=prompts, plan_scorer=scorer,
                        system_prompt=recipe.policy.system_prompt)
    sizes = {a["format"]: round(a["size_bytes"] / 1e6, 1) for a in manifest.get("artifacts", [])}
    # A GGUF the model's architecture or tokenizer cannot be written as is skipped, not a failure: say why here too.
    return {"artifacts_mb": sizes} | ({"gguf": manifest["gguf"]} if "gguf" in manifest else {})


def stages() -> list[Stage]:
    """The loop, in order. Importing the stage modules here keeps ``parley --help`` fast."""
    from dialogue.evaluation import run_evaluation
    from dialogue.sft import run_sft
    from dialogue.soup import run_soup
    from reward_models.risk_train import run_risk_training
    from reward_models.train import run_reward_training

    reward = [Stage(f"reward-{o}", ("data",), _reward_runner(run_reward_training, o), ("heldout_accuracy", "wall_s"))
              for o in OBJECTIVES]
    return [
        Stage("data", (), _run_data, ("kb_articles",)),
        Stage("sft", ("data",), _runner(run_sft), ("eval_loss_before", "eval_loss_after", "wall_s")),
        *reward,
        Stage("risk", ("data",), _runner(run_risk_training, keep=_scalars), ("dev_auc", "threshold", "wall_s")),
        Stage("ppo", ("sft", *[s.name for s in reward], "risk"), _ppo_runner(),
              ("best_judge_score", "wall_s_this_run")),
        Stage("soup", ("ppo",), _runner(run_soup), ("weights",), external=soup_inputs_digest),
        Stage("quantize", ("ppo", "soup"), _run_quantize, ("artifacts_mb",)),
        Stage("evaluate", ("ppo", "soup", "risk"), _runner(run_evaluation, keep=_without_private), ()),
    ]


def _format_metrics(stage: Stage, metrics: dict[str, Any]) -> str:
    if stage.name == "evaluate" and "ppo" in metrics:
        ppo = metrics["ppo"]
        keys = ("composite_gain_vs_sft", "win_rate_vs_sft", "harmful_refusal_rate", "over_refusal_rate")
        return ", ".join(f"{k}={ppo[k]:.3f}" for k in keys if isinstance(ppo.get(k), float))
    parts = []
    for key in stage.key_metrics:
        value = metrics.get(key)
        if isinstance(value, dict) and key != "artifacts_mb":
            value = next((v for v in value.values() if isinstance(v, float)), None)
        if isinstance(value, float):
            parts.append(f"{key}={value:.3f}")
        elif value is not None:
            parts.append(f"{key}={value}")
    return ", ".join(parts)


def _read_marker(recipe: Recipe, name: str) -> dict[str, Any] | None:
    """The ``stage.json`` a finished stage wrote, or None."""
    marker = _stage_file(recipe, name)
    return json.loads(marker.read_text(encoding="utf-8")) if marker.is_file() else None


def _is_current(done: dict[str, Any] | None, stage_print: str, name: str, force: list[str]) -> bool:
    """Finished with this fingerprint and not forced: the stage is skipped."""
    return bool(done) and done.get("fingerprint") == stage_print and name not in force


def run_pipeline(recipe: Recipe, only: list[str] | None = None, force: list[str] | None = None,
                 write=print) -> list[dict[str, Any]]:
    """Run every stage that is not current; return one summary row per stage."""
    data_hash = _hash_files(Path(recipe.data.data_dir))
    prints: dict[str, str] = {}
    summary = []
    plan = stages()
    by_name = {stage.name: stage for stage in plan}
    force = force or []
    lanes_checked = not recipe.pipeline.parallel_lanes
    ran_in_lanes: set[str] = set()
    started = time.time()
    for index, stage in enumerate(plan, start=1):
        stage_print = fingerprint(stage, recipe, data_hash, prints)
        prints[stage.name] = stage_print
        marker = _stage_file(recipe, stage.name)
        header = f"[{index}/{len(plan)}] {stage.name}"
        if only and stage.name not in only:
            summary.append({"stage": stage.name, "status": "not selected", "seconds": 0.0, "metrics": ""})
            continue
        if not lanes_checked and any(stage.name in lane for lane in LANES):
            lanes_checked = True  # the lane stages depend only on "data", whose fingerprint is known by now
            pending = [name for lane in LANES for name in lane if (not only or name in only) and not _is_current(
                _read_marker(recipe, name), fingerprint(by_name[name], recipe, data_hash, prints), name, force)]
            lanes = lanes_to_run(pending)
            if lanes:
                write(f"{header}: running {len(lanes)} lanes side by side ...")
                lanes_started = time.time()
                run_lanes(recipe, lanes, force, write=lambda line: write(f"  {line}"))
                ran_in_lanes.update(name for lane in lanes for name in lane)
                summary.append({"stage": "lanes", "status": "ran", "seconds": round(time.time() - lanes_started, 1),
                                "metrics": " beside ".join(" -> ".join(lane) for lane in lanes),
                                "path": str(recipe.run.layout.lane_log("*"))})
        done = _read_marker(recipe, stage.name)
        if stage.name in ran_in_lanes and done:
            summary.append({"stage": stage.name, "status": "ran (lane)", "seconds": done.get("seconds", 0.0),
                            "metrics": _format_metrics(stage, done.get("metrics", {})), "path": str(marker.parent)})
            continue
        if _is_current(done, stage_print, stage.name, force):
            write(f"{header}: up to date (skipped)")
            summary.append({"stage": stage.name, "status": "skipped (current)", "seconds": done.get("seconds", 0.0),
                            "metrics": _format_metrics(stage, done.get("metrics", {})),
                            "path": str(marker.parent)})
            continue
        resume = bool(done is None and marker.parent.exists())
        write(f"{header}: running{' (resuming)' if resume and stage.name == 'ppo' else ''} ...")
        marker.unlink(missing_ok=True)
        stage_started = time.time()
        try:
            metrics = stage.run(recipe, resume)
        except ParleyError as exc:
            missing = [name for name in stage.depends if _read_marker(recipe, name) is None]
            if not missing:
                raise
            raise UpstreamMissingError(
                f"{stage.name} needs the stages {', '.join(missing)}, not finished in {recipe.run.root} (run them "
                f"first: parley pipeline without --only, or with them in --only): {exc}") from exc
        seconds = round(time.time() - stage_started, 1)
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text(json.dumps({"fingerprint": stage_print, "seconds": seconds, "metrics": metrics},
                                     indent=2, default=str), encoding="utf-8")
        write(f"{header}: done in {seconds:.0f} s (total {time.time() - started:.0f} s)")
        summary.append({"stage": stage.name, "status": "ran", "seconds": seconds,
                        "metrics": _format_metrics(stage, metrics), "path": str(marker.parent)})
    return summary


def format_summary(rows: list[dict[str, Any]]) -> str:
    """A Markdown table of the pipeline's stages (printed at the end and saved as summary.md)."""
    lines = ["| stage | status | wall time (s) | key metrics | artifacts |", "|---|---|---|---|---|"]
    for row in rows:
        lines.append(f"| {row['stage']} | {row['status']} | {row['seconds']:.0f} | {row['metrics']} | "
                     f"{row.get('path', '')} |")
    total = sum(r["seconds"] for r in rows if r["status"] == "ran")
    if any(r["status"] == "ran (lane)" for r in rows):
        lines.append("\nStages marked 'ran (lane)' ran side by side (row 'lanes' is their wall time, counted once).")
    lines.append(f"\nWall time of the stages run now: {total:.0f} s")
    return "\n".join(lines)


def pipeline_main(recipe: Recipe, only: list[str] | None, force: list[str] | None, serve: bool = False,
                  config: str | None = None, overrides: list[str] | None = None) -> int:
    recipe.run.layout.root.mkdir(parents=True, exist_ok=True)  # before any stage, lane log or summary is written
    rows = run_pipeline(recipe, only, force, write=lambda s: print(f"parley pipeline: {s}", file=sys.stderr))
    table = format_summary(rows)
    recipe.run.layout.summary.write_text(table + "\n", encoding="utf-8")
    print(table, flush=True)
    if serve:
        serve_in_a_fresh_process(config, [*(overrides or []), *served_run_overrides(recipe)])
    return 0


def serve_in_a_fresh_process(config: str | None, overrides: list[str]) -> NoReturn:
    """Become ``parley serve`` with this run's results (the process is replaced: same PID, same terminal).

    Why not serve from this process: its stages ran torch on this thread at every core, and libgomp keeps that
    thread team for the thread's life. Beside the served engine's own worker team that is more OpenMP threads than
    cores, and libgomp then parks and wakes its threads around every op, which slowed the served model's
    generation (docs/results.md). A fresh process starts with no team.
    """
    command = [sys.executable, "-m", "parley.cli", "serve", *(["--config", config] if config else [])]
    for assignment in overrides:
        command += ["--set", assignment]
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, command)
