"""``parley reward train|score``: argument parsing only; the work lives in :mod:`train` and :mod:`score_file`."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from groundwork.data_loading import OBJECTIVES
from groundwork.layout import RunLayout
from parley.flags import add_recipe_args, add_setting, recipe_from_args


def cmd_train(args: argparse.Namespace) -> int:
    from reward_models.train import run_reward_training

    recipe = recipe_from_args(args)
    objectives = OBJECTIVES if args.objective == "all" else (args.objective,)
    results = {o: run_reward_training(recipe, o, feedback=recipe.reward.feedback or None) for o in objectives}
    print(json.dumps(results if len(results) > 1 else results[objectives[0]], indent=2, sort_keys=True, default=str))
    return 0


def cmd_score(args: argparse.Namespace) -> int:
    from reward_models.score_file import score_file
    from reward_models.scorer import RewardScorer

    recipe = recipe_from_args(args)
    reward_dir = Path(recipe.reward.score_dir or recipe.run.root)
    scorer = RewardScorer.from_pretrained(reward_dir)
    risk_dir = RunLayout(reward_dir).risk_model
    risk = None
    if risk_dir.is_dir():
        from reward_models.risk_model import RequestRiskModel

        risk = RequestRiskModel.from_pretrained(risk_dir)
    summary = score_file(scorer, args.input, args.output, recipe.reward.composite,
                         batch_size=recipe.reward.score_batch_size,
                         on_bad_row=recipe.data.on_bad_row, risk=risk)
    print(f"parley: scored {summary['rows']} rows ({', '.join(scorer.objectives)}) into {args.output} in "
          f"{summary['seconds']} s; {summary['skipped']} malformed input rows skipped", file=sys.stderr)
    for problem in summary["problems"]:
        print(f"parley:   {problem}", file=sys.stderr)
    return 0


def add_reward_commands(sub) -> None:
    """Register ``reward train`` and ``reward score`` on the top-level subparsers."""
    reward = sub.add_parser("reward", help="reward models: train one per objective, score responses")
    reward_sub = reward.add_subparsers(dest="reward_command", required=True)

    train = reward_sub.add_parser("train", help="train a Bradley-Terry reward model (TRL RewardTrainer)")
    add_recipe_args(train)
    train.add_argument("--objective", required=True, choices=[*OBJECTIVES, "all"])
    add_setting(train, "--feedback", key="reward.feedback", action="append", metavar="PATH",
                help="human-feedback preference rows to mix in (repeatable): the folder written by "
                     "'parley feedback export --out DIR' or its preferences-<objective>.jsonl files (each "
                     "objective trains on its own), or any JSONL of prompt/chosen/rejected/context rows "
                     "(a row's 'objective' field routes it; untagged rows go to every objective)")
    train.set_defaults(handler=cmd_train)

    score = reward_sub.add_parser("score", help="score JSONL rows with every trained objective")
    add_recipe_args(score)
    add_setting(score, "--reward-dir", key="reward.score_dir",
                help="run folder holding reward-<objective>/model (none = runs/<run>)")
    score.add_argument("--input", "-i", required=True, help='JSONL {"prompt": str|messages, "response", "context"?}')
    score.add_argument("--output", "-o", required=True, help="JSONL: input rows plus quality/safety/"
                       "faithfulness/composite")
    add_setting(score, "--batch-size", key="reward.score_batch_size", type=int, help="rows scored at once")
    score.set_defaults(handler=cmd_score)
