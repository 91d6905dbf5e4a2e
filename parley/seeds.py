"""One recipe, several seeds (``pipeline.seeds`` / ``--seeds``): a normal run per seed, then the aggregate.

Each seed is the recipe with ``run.seed`` set and ``run.name`` = ``<run.name>-s<seed>``, run by the ordinary
pipeline (so each resumes after a crash and skips what is current), and the last step aggregates their evaluation
reports into ``<run.name>-seeds/evaluate/report.json`` and ``report.md`` (:mod:`dialogue.seed_report`).
"""

from __future__ import annotations

import sys
from dataclasses import replace
from typing import Any

from groundwork.errors import ConfigError
from groundwork.layout import seed_run_name
from groundwork.recipe import Recipe


def seed_recipe(recipe: Recipe, seed: int) -> Recipe:
    """The recipe of one seed's run: ``run.seed`` = seed, ``run.name`` = ``<run.name>-s<seed>``, one seed."""
    return replace(recipe, run=replace(recipe.run, name=seed_run_name(recipe.run.name, seed), seed=seed),
                   pipeline=replace(recipe.pipeline, seeds=[]))


def aggregate(recipe: Recipe) -> dict[str, Any]:
    """The aggregate of the seed runs' evaluation reports (written to ``<run.name>-seeds/evaluate``)."""
    from dialogue.seed_report import aggregate_seed_runs

    return aggregate_seed_runs(recipe.run.output_dir, recipe.run.name, list(recipe.pipeline.seeds))


def seeds_pipeline_main(recipe: Recipe, only: list[str] | None, force: list[str] | None, serve: bool = False) -> int:
    """``parley pipeline --seeds``: the pipeline of every seed in turn, then the aggregate (when all evaluated)."""
    from parley.pipeline import pipeline_main

    if serve:
        raise ConfigError("--serve serves one run: drop --seeds, or serve one seed's run with "
                          "--set run.name=<name>-s<seed>")
    seeds = list(recipe.pipeline.seeds)
    for number, seed in enumerate(seeds, start=1):
        print(f"parley pipeline: seed {seed} ({number}/{len(seeds)}): run {seed_run_name(recipe.run.name, seed)}",
              file=sys.stderr)
        code = pipeline_main(seed_recipe(recipe, seed), only, force)
        if code:
            return code
    if only and "evaluate" not in only:
        print("parley pipeline: evaluate not selected: no aggregate across seeds", file=sys.stderr)
        return 0
    report = aggregate(recipe)
    print(f"parley pipeline: aggregate of seeds {report['seeds']} in "
          f"{recipe.run.output_dir}/{recipe.run.name}-seeds/evaluate/report.md", file=sys.stderr)
    return 0


def seeds_evaluate(recipe: Recipe) -> dict[str, Any]:
    """``parley evaluate --seeds``: evaluate every seed's run (trained beforehand), then aggregate."""
    from dialogue.evaluation import run_evaluation

    for seed in recipe.pipeline.seeds:
        run_evaluation(seed_recipe(recipe, seed))
    return aggregate(recipe)
