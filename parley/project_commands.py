"""``parley recipes`` (the bundled recipes) and ``parley init DIR`` (a starter project)."""

from __future__ import annotations

import argparse
import sys
from typing import Any


def cmd_recipes(args: argparse.Namespace) -> int:
    from groundwork.bundled import bundled_recipes, recipe_summary

    for name, path in bundled_recipes().items():
        print(f"{name:18} {recipe_summary(path)}")
    print("\nUse one by name (--config cpu-demo) or build on it in your own recipe (extends: cpu-demo).",
          file=sys.stderr)
    return 0


def cmd_init(args: argparse.Namespace) -> int:
    from parley.starter import write_starter

    files = write_starter(args.directory)
    print(f"parley: wrote a starter project ({len(files)} files) to {args.directory}. Next:\n"
          f"  cd {args.directory} && parley pipeline --config recipe.yaml --serve", file=sys.stderr)
    return 0


def add_project_commands(sub: Any) -> None:
    """Register ``parley recipes`` and ``parley init`` on the top-level subparsers."""
    recipes = sub.add_parser("recipes", help="list the bundled recipes (use them by name with --config)")
    recipes.set_defaults(handler=cmd_recipes)
    init = sub.add_parser("init", help="write a starter project: a recipe extending cpu-demo, data/ and a guide")
    init.add_argument("directory", help="folder to create (must be empty or absent)")
    init.set_defaults(handler=cmd_init)
