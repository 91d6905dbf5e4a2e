"""Bundled recipes and demo data: by name in a checkout, and from the built wheel outside any checkout."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from groundwork.errors import ConfigError
from groundwork.recipe import load_recipe

ROOT = Path(__file__).resolve().parent.parent


def test_a_bundled_recipe_loads_by_name_and_can_be_extended(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no configs/ or data/ here
    by_name = load_recipe("cpu-demo")
    by_path = load_recipe(ROOT / "configs" / "cpu-demo.yaml")
    assert by_name == by_path
    assert Path(by_name.data.data_dir) == ROOT / "data"  # the default ./data is absent: the bundled demo data
    (tmp_path / "mine.yaml").write_text("extends: smoke\nsft:\n  epochs: 3\n", encoding="utf-8")
    mine = load_recipe(tmp_path / "mine.yaml")
    assert mine.sft.epochs == 3 and mine.policy.model == load_recipe("smoke").policy.model
    with pytest.raises(ConfigError, match="bundled recipes: cpu-demo, cpu-rlhf-strict, cpu-rlhf, gpu, smoke"):
        load_recipe("cpu-dmeo")


def test_an_existing_data_folder_wins_over_the_bundled_one(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    assert load_recipe("smoke").data.data_dir == "data"


def _run(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "parley", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)


def test_init_writes_a_starter_project_that_reads_its_own_data(tmp_path):
    done = _run(["init", "proj"], tmp_path)
    assert done.returncode == 0, done.stderr
    proj = tmp_path / "proj"
    assert "extends: cpu-demo" in (proj / "recipe.yaml").read_text(encoding="utf-8")
    # Edit the starter's KB: the project's data, not the bundled copy, is what the recipe reads.
    kb = proj / "data" / "kb" / "articles.jsonl"
    kb.write_text("".join(kb.read_text(encoding="utf-8").splitlines(keepends=True)[:5]), encoding="utf-8")
    stats = _run(["data", "stats", "--config", "recipe.yaml"], proj)
    assert stats.returncode == 0, stats.stderr
    assert json.loads(stats.stdout)["kb_articles"] == 5
    again = _run(["init", "proj"], tmp_path)
    assert again.returncode == 2 and "is not empty" in again.stderr and "Traceback" not in again.stderr


def test_the_wheel_carries_recipes_and_data_and_works_outside_a_checkout(tmp_path):
    wheels = tmp_path / "wheels"
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                            str(ROOT), "-w", str(wheels)], capture_output=True, text=True, timeout=600)
    assert built.returncode == 0, built.stderr[-2000:]
    (wheel,) = wheels.glob("parley-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for name in ("groundwork/bundled/configs/cpu-demo.yaml", "groundwork/bundled/configs/smoke.yaml",
                 "groundwork/bundled/data/kb/articles.jsonl", "groundwork/bundled/data/support/train.jsonl",
                 "groundwork/bundled/data/preferences/safety/heldout.jsonl", "serving/quantize/int8_native.cpp",
                 "parley/cli.py"):
        assert name in names, name
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    empty = tmp_path / "elsewhere"
    empty.mkdir()
    # The unpacked wheel comes first on the path, so its packages (not the checkout's) answer.
    env = {**os.environ, "PYTHONPATH": str(site)}
    where = subprocess.run([sys.executable, "-c", "import groundwork.bundled as b; print(b.recipes_dir())"],
                           cwd=empty, env=env, capture_output=True, text=True, timeout=120)
    assert where.returncode == 0 and where.stdout.strip().startswith(str(site)), where.stdout + where.stderr
    listed = _run(["recipes"], empty, env)
    assert listed.returncode == 0 and "cpu-demo" in listed.stdout, listed.stderr
    assert _run(["init", "proj"], empty, env).returncode == 0
    stats = _run(["data", "stats", "--config", "smoke"], empty, env)
    assert stats.returncode == 0, stats.stderr
    assert json.loads(stats.stdout)["kb_articles"] == 47
