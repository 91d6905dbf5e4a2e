"""``parley reward train|score``: argument parsing only; the work lives in :mod:`train` and :mod:`score_file`."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

from groundwork.data_loading import OBJECTIVES
from groundwork.layout import RunLayout
from groundwork.recipe import load_recipe


def cmd_train(args: argparse.Namespace) -> int:
    from reward_models.train import run_reward_training

    recipe = load_recipe(args.config, args.overrides)
    objectives = OBJECTIVES if args.objective == "all" else (args.objective,)
    results = {o: run_reward_training(recipe, o, feedback=args.feedback) for o in objectives}
    print(json.dumps(results if len(results) > 1 else results[objectives[0]], indent=2, sort_keys=True, default=str))
    return 0


def cmd_score(args: argparse.Namespace) -> int:
    from reward_models.score_file import score_file
    from reward_models.scorer import RewardScorer

    recipe = load_recipe(args.config, args.overrides)
    reward_dir = Path(args.reward_dir or recipe.run.root)
    scorer = RewardScorer.from_pretrained(reward_dir)
    risk_dir = RunLayout(reward_dir).risk_model
    risk = None
    if risk_dir.is_dir():
        from reward_models.risk_model import RequestRiskModel

        risk = RequestRiskModel.from_pretrained(risk_dir)
    summary = score_file(scorer, args.input, args.output, recipe.reward.composite,
                         batch_size=args.batch_size or recipe.reward.score_batch_size,
                         on_bad_row=recipe.data.on_bad_row, risk=risk)
    print(f"parley: scored {summary['rows']} rows ({', '.join(scorer.objectives)}) into {args.output} in "
          f"{summary['seconds']} s; {summary['skipped']} malformed input rows skipped", file=sys.stderr)
    for problem in summary["problems"]:
        print(f"parley:   {problem}", file=sys.stderr)
    return 0


def add_reward_commands(sub, add_recipe_args: Callable[[argparse.ArgumentParser], None]) -> None:
    """Register ``reward train`` and ``reward score`` on the top-level subparsers."""
    reward = sub.add_parser("reward", help="reward models: train one per objective, score responses")
    reward_sub = reward.add_subparsers(dest="reward_command", required=True)

    train = reward_sub.add_parser("train", help="train a Bradley-Terry reward model (TRL RewardTrainer)")
    add_recipe_args(train)
    train.add_argument("--objective", required=True, choices=[*OBJECTIVES, "all"])
    train.add_argument("--feedback", action="append", metavar="PATH",
                       help="human-feedback preference rows to mix in (repeatable): the folder written by "
                       "'parley feedback export --out DIR' or its preferences-<objective>.jsonl files (each "
                       "objective trains on its own), or any JSONL of prompt/chosen/rejected/context rows "
                       "(a row's 'objective' field routes it; untagged rows go to every objective)")
    train.set_defaults(handler=cmd_train)

    score = reward_sub.add_parser("score", help="score JSONL rows with every trained objective")
    add_recipe_args(score)
    score.add_argument("--reward-dir", help="run folder holding reward-<objective>/model (default: runs/<run>)")
    score.add_argument("--input", "-i", required=True, help='JSONL {"prompt": str|messages, "response", "context"?}')
    score.add_argument("--output", "-o", required=True, help="JSONL: input rows plus quality/safety/"
                       "faithfulness/composite")
    score.add_argument("--batch-size", type=int, default=None)
    score.set_defaults(handler=cmd_score)
