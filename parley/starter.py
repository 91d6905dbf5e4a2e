"""``parley init DIR``: a starter project that runs as it is and shows where a user's own data goes."""

from __future__ import annotations

import shutil
from pathlib import Path

from groundwork.bundled import data_dir
from groundwork.errors import ConfigError

RECIPE = """\
# Starter recipe: the bundled cpu-demo recipe on this folder's data. Replace the files under data/ with your own
# (same formats; data/README.md describes every file) and change any key of the bundled recipe here.
# Run it:   parley pipeline --config recipe.yaml --serve
# Quick check with tiny random models:   parley pipeline --config smoke --set data.data_dir=data
extends: cpu-demo
run:
  name: starter
data:
  data_dir: data
serve:
  kb_dir: data/kb
"""

GUIDE = """\
# Your Parley project

- `recipe.yaml`: extends the bundled `cpu-demo` recipe (`parley recipes` lists the bundled ones); every key can
  be changed here or on the command line with `--set section.key=value`.
- `data/kb/`: your knowledge base, one JSON object per line: `id`, `title`, `topic`, `text`, `facts`.
- `data/support/`: support conversations for SFT (`messages` ending with the agent's answer, `context`).
- `data/translation/`: parallel sentences (`en`, `zh`, `es`, `fr`, `de`).
- `data/preferences/<objective>/`: chosen/rejected pairs for the quality, safety and faithfulness reward models.
- `data/ppo/`: prompts PPO practises on (`kind`, `messages`, `context`).
- `data/support/multilingual.jsonl`, `data/safety/jailbreak_wrappers.jsonl`: request-risk model data.

The files here are the bundled demo data (a fictional store); `data/README.md` documents every field. Feedback
collected by `parley serve` becomes more preference rows with `parley feedback export`.
"""


def write_starter(target: str | Path) -> list[Path]:
    """Write the starter project into ``target`` (created; must be empty if it exists). Returns the files."""
    target = Path(target)
    if target.exists() and any(target.iterdir()):
        raise ConfigError(f"{target} is not empty: parley init writes a new project into an empty folder")
    source = data_dir()
    shutil.copytree(source, target / "data", ignore=shutil.ignore_patterns("*.py", "__pycache__", "__init__.py"))
    (target / "recipe.yaml").write_text(RECIPE, encoding="utf-8")
    (target / "README.md").write_text(GUIDE, encoding="utf-8")
    return sorted(p for p in target.rglob("*") if p.is_file())
