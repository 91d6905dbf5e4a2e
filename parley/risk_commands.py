"""``parley risk train|score``: argument parsing only; the work lives in :mod:`risk_train` and :mod:`risk_model`."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from groundwork.data_loading import BadRows, read_jsonl
from parley.flags import add_recipe_args, add_setting, recipe_from_args


def cmd_train(args: argparse.Namespace) -> int:
    from reward_models.risk_train import run_risk_training

    metrics = run_risk_training(recipe_from_args(args))
    print(json.dumps({k: v for k, v in metrics.items() if k != "dev_block_rates"}, indent=2, default=str))
    return 0


def _request_row(obj: dict) -> dict:
    if not isinstance(obj.get("text", obj.get("prompt")), str | list):
        raise ValueError("each row needs 'text' (a string) or 'prompt' (a string or messages)")
    return obj


def cmd_score(args: argparse.Namespace) -> int:
    from reward_models.risk_model import RequestRiskModel, request_text

    recipe = recipe_from_args(args)
    model = RequestRiskModel.from_pretrained(recipe.risk.score_model or recipe.run.layout.risk_model)
    bad = BadRows(recipe.data.on_bad_row)
    rows = read_jsonl(Path(args.input), _request_row, bad)
    bad.print_summary("risk score input")
    probs = model.probabilities([request_text(row.get("text", row.get("prompt"))) for row in rows])
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    with open(args.output, "w", encoding="utf-8") as handle:
        for row, p in zip(rows, probs, strict=True):
            handle.write(json.dumps({**row, "risk": round(p, 5), "risky": model.is_risky(p)}, ensure_ascii=False)
                         + "\n")
    print(f"parley: scored {len(rows)} requests into {args.output} (threshold {model.threshold:.3f}); "
          f"{len(bad.problems)} malformed rows skipped", file=sys.stderr)
    return 0


def add_risk_commands(sub) -> None:
    """Register ``risk train`` and ``risk score`` on the top-level subparsers."""
    risk = sub.add_parser("risk", help="request-risk model p(harmful | request): train, score requests")
    risk_sub = risk.add_subparsers(dest="risk_command", required=True)
    train = risk_sub.add_parser("train", help="train, calibrate and evaluate it (runs/<run>/risk/)")
    add_recipe_args(train)
    train.set_defaults(handler=cmd_train)
    score = risk_sub.add_parser("score", help="p(harmful) of every request in a JSONL file")
    add_recipe_args(score)
    add_setting(score, "--model", key="risk.score_model", help="risk model folder (none = runs/<run>/risk/model)")
    score.add_argument("--input", "-i", required=True, help='JSONL {"text": str} or {"prompt": str|messages}')
    score.add_argument("--output", "-o", required=True, help="JSONL: input rows plus risk and risky")
    score.set_defaults(handler=cmd_score)
