"""The recipes and demo data Parley ships, so a plain install works outside a checkout.

``--config cpu-demo`` names a bundled recipe; ``extends: cpu-demo`` builds on one; the default ``data.data_dir``
(``data``) falls back to the bundled demo data when the working folder has none. In a checkout the repository's
``configs/`` and ``data/`` are used as they are; an installed wheel carries copies under this package
(``setup.py`` maps them here).
"""

from __future__ import annotations

from pathlib import Path

from groundwork.errors import ConfigError

DEFAULT_DATA_DIR = "data"
_HERE = Path(__file__).resolve().parent
_CHECKOUT = _HERE.parents[1]


def _asset_dir(kind: str, marker: str) -> Path:
    """``configs`` or ``data``: the checkout's folder next to the packages, else the wheel's packaged copy."""
    for candidate in (_CHECKOUT / kind, _HERE / kind):
        if (candidate / marker).exists():
            return candidate
    raise ConfigError(f"Parley's bundled {kind}/ is missing from this installation (looked in {_CHECKOUT / kind} "
                      f"and {_HERE / kind}); reinstall the package")


def recipes_dir() -> Path:
    return _asset_dir("configs", "cpu-demo.yaml")


def data_dir() -> Path:
    return _asset_dir("data", "kb/articles.jsonl")


def bundled_recipes() -> dict[str, Path]:
    """Recipe name -> file, for the recipes shipped with Parley."""
    return {path.stem: path for path in sorted(recipes_dir().glob("*.yaml"))}


def recipe_summary(path: Path) -> str:
    """The first comment line of a recipe file: what it is for."""
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("#"):
            return line.lstrip("# ").strip()
        if line.strip():
            break
    return ""


def resolve_recipe(reference: str | Path, relative_to: Path | None = None) -> Path:
    """A recipe file: a path as given (relative to ``relative_to`` for ``extends``), else a bundled recipe's name."""
    path = Path(reference)
    if relative_to is not None and not path.is_absolute():
        path = relative_to / path
    if path.is_file():
        return path
    name = Path(reference).name.removesuffix(".yaml").removesuffix(".yml")
    if str(reference) in (name, f"{name}.yaml", f"{name}.yml"):
        bundled = bundled_recipes()
        if name in bundled:
            return bundled[name]
        raise ConfigError(f"config file not found: {path} (bundled recipes: {', '.join(bundled)})")
    raise ConfigError(f"config file not found: {path}")


def resolve_data_dir(configured: str) -> str:
    """The data folder a recipe names; the default ``data`` falls back to the bundled demo data when absent here."""
    if configured != DEFAULT_DATA_DIR or Path(configured).is_dir():
        return configured
    return str(data_dir())
