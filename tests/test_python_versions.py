"""Parley installs on Python 3.11-3.13: the dependency set resolves for each, and the code compiles under each."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
VERSIONS = ("3.11", "3.12", "3.13")
UV = Path(sys.executable).parent / "uv"


def test_requires_python_admits_every_supported_version():
    spec = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["requires-python"]
    assert spec == ">=3.11", spec


@pytest.mark.parametrize("version", VERSIONS[1:])
def test_dependencies_resolve_for(version: str, tmp_path: Path) -> None:
    if not UV.is_file():
        pytest.skip("uv is not installed in this environment (the Makefile installs it)")
    out = tmp_path / "requirements.txt"
    done = subprocess.run([str(UV), "pip", "compile", str(ROOT / "pyproject.toml"), "--extra", "test",
                           "--python-version", version, "-q", "-o", str(out)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    pinned = out.read_text(encoding="utf-8")
    for package in ("trl==1.12.0", "torch==", "transformers==", "gradio==", "peft=="):
        assert package in pinned, (version, package)


def _interpreter(version: str) -> str | None:
    """A working ``python<version>``: on PATH, or a pyenv install (pyenv's shims fail for versions not selected)."""
    candidates = [shutil.which(f"python{version}"),
                  *map(str, sorted(Path.home().glob(f".pyenv/versions/{version}*/bin/python{version}")))]
    for candidate in filter(None, candidates):
        probe = subprocess.run([candidate, "-c", "import sys; print(sys.version_info[:2])"], capture_output=True,
                               text=True)
        if probe.returncode == 0 and probe.stdout.strip() == str(tuple(map(int, version.split(".")))):
            return candidate
    return None


@pytest.mark.parametrize("version", VERSIONS[1:])
def test_code_compiles_under(version: str, tmp_path: Path) -> None:
    python = _interpreter(version)
    if python is None:
        pytest.skip(f"no python{version} on this machine")
    packages = [str(ROOT / name) for name in ("groundwork", "dialogue", "reward_models", "serving", "parley")]
    # Compile into a throwaway prefix so no foreign-version bytecode lands in the tree.
    env = {**os.environ, "PYTHONPYCACHEPREFIX": str(tmp_path)}
    done = subprocess.run([python, "-m", "compileall", "-q", *packages], capture_output=True, text=True, timeout=300,
                          env=env)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
