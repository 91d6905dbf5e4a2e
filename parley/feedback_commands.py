"""``parley feedback export``: the command that turns collected feedback into reward-model data."""

from __future__ import annotations

import argparse
from typing import Any

from parley.flags import add_recipe_args, add_setting, recipe_from_args


def add_feedback_commands(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``feedback export [--db URL] --out DIR`` to a parser's subcommands."""
    feedback = subparsers.add_parser("feedback", help="work with the human-feedback store")
    commands = feedback.add_subparsers(dest="feedback_command", metavar="COMMAND", required=True)
    export = commands.add_parser(
        "export",
        help="write TRL training files from collected feedback: per-objective preference pairs and KTO rows",
        description="With --out DIR: DIR/preferences-{quality,safety,faithfulness}.jsonl (TRL conversational "
        "preference rows, each in the file of its objective tag), DIR/kto.jsonl (TRL unpaired rows: every like, "
        "dislike, clear rating and correction) and DIR/manifest.json. With --out FILE.jsonl: all preference "
        "pairs in one file (each row tagged with its objective).",
    )
    add_recipe_args(export)
    add_setting(export, "--db", key="serve.db",
                help="store URL: sqlite:///feedback.db or postgresql+psycopg://... (the server's store)")
    export.add_argument("--out", required=True, help="output folder, or a .jsonl file for all pairs in one file")
    add_setting(export, "--max-pairs-per-prompt", key="serve.export_max_pairs_per_prompt", type=int,
                help="cap on comparison pairs from one prompt")
    export.set_defaults(handler=run_export)
    return feedback


def run_export(args: argparse.Namespace) -> int:
    """Run the export and print one summary line; returns the process exit code."""
    from serving.feedback.export import (  # SQLAlchemy only loads when the command runs
        export_feedback,
        export_preferences,
    )

    cfg = recipe_from_args(args).serve
    db, cap = cfg.db, cfg.export_max_pairs_per_prompt
    if str(args.out).endswith(".jsonl"):
        n = export_preferences(db, args.out, max_pairs_per_prompt=cap)
        print(f"wrote {n} preference pairs to {args.out}")
        return 0
    counts = export_feedback(db, args.out, max_pairs_per_prompt=cap)
    pairs = ", ".join(f"{o} {n}" for o, n in counts.items() if o != "kto")
    print(f"wrote {sum(n for o, n in counts.items() if o != 'kto')} preference pairs ({pairs}) and "
          f"{counts['kto']} KTO rows to {args.out}")
    return 0
