"""``manifest.json``: what an export directory holds and exactly how it was made."""

from __future__ import annotations

import json
import platform
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

MANIFEST_FILE = "manifest.json"
SCHEMA = "parley-quantize-v1"


def dir_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def versions() -> dict[str, str]:
    from importlib.metadata import version

    import peft
    import torch
    import transformers

    return {"python": platform.python_version(), "torch": torch.__version__, "transformers": transformers.__version__,
            "peft": peft.__version__, "gguf": version("gguf")}


def write_manifest(out_dir: str | Path, *, base: str, adapter: str | None, adapter_sha256: str | None,
                   artifacts: list[dict[str, Any]], settings: dict[str, Any],
                   skipped: dict[str, dict[str, Any]] | None = None) -> Path:
    """Write the manifest; ``artifacts`` entries carry ``format``, ``method``, ``path``, ``size_bytes``.

    ``skipped`` records requested formats that could not be made, e.g. ``{"gguf": {"skipped": "<reason>"}}``.
    """
    out = Path(out_dir)
    data = {
        "schema": SCHEMA,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "base": base,
        "adapter": adapter,
        "adapter_sha256": adapter_sha256,
        "artifacts": artifacts,
        "settings": settings,
        "versions": versions(),
    }
    data.update(skipped or {})
    path = out / MANIFEST_FILE
    path.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    return path


def read_manifest(out_dir: str | Path) -> dict[str, Any]:
    return json.loads((Path(out_dir) / MANIFEST_FILE).read_text(encoding="utf-8"))
