"""The three layers: groundwork (shared ground) <- stage packages <- parley (CLI, pipeline, lanes).

Parses every module's imports (top-level and inside functions) and fails on an import that points upward, and on
a cycle between stage packages.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LAYER = {"groundwork": 0, "dialogue": 1, "reward_models": 1, "serving": 1, "parley": 2}
# Stage packages may use each other's public APIs in one direction only: evaluation and PPO score with the reward
# models and drive the server; the server scores with the reward and request-risk models.
STAGE_USES = {"dialogue": {"reward_models", "serving"}, "serving": {"reward_models"}, "reward_models": set()}


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path}:{node.lineno}: relative import; name the package"
            found.append((node.lineno, node.module or ""))
    return found


def layer_violations(root: Path = ROOT) -> list[str]:
    problems = []
    for package, level in LAYER.items():
        for path in sorted((root / package).rglob("*.py")):
            for line, module in _imports(path):
                target = module.split(".")[0]
                if target not in LAYER or target == package:
                    continue
                where = f"{path.relative_to(root)}:{line} imports {module}"
                if LAYER[target] > level:
                    problems.append(f"{where} (upward: {package} is below {target})")
                elif level == 1 and LAYER[target] == 1 and target not in STAGE_USES[package]:
                    problems.append(f"{where} (stage {package} may use only {sorted(STAGE_USES[package])})")
    return problems


def test_no_module_imports_upward_or_across_the_allowed_stage_edges():
    assert layer_violations() == []


def test_the_check_catches_an_upward_import(tmp_path):
    for package in LAYER:
        (tmp_path / package).mkdir()
    (tmp_path / "groundwork" / "bad.py").write_text("def f():\n    from parley.cli import main\n", encoding="utf-8")
    (tmp_path / "reward_models" / "cycle.py").write_text("import dialogue.sft\n", encoding="utf-8")
    problems = layer_violations(tmp_path)
    assert len(problems) == 2
    assert "groundwork/bad.py:2 imports parley.cli (upward" in problems[0]
    assert "reward_models/cycle.py:1 imports dialogue.sft (stage reward_models" in problems[1]
