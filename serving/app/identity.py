"""Which model answered: a name and a content hash of the adapter (or artifact), stored with every conversation.

Feedback is only useful for training when it can be traced to the exact weights that produced the answer;
a path is not enough (adapters are overwritten in place by a new SFT or PPO run), so we hash the files.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

HASH_CHARS = 16


def content_hash(path: str | Path) -> str:
    """Short SHA-256 over a file, or over every file of a folder (relative names included, sorted)."""
    path = Path(path)
    digest = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for file in files:
        digest.update(str(file.relative_to(path) if file != path else file.name).encode())
        with open(file, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()[:HASH_CHARS]


def model_identity(model: str, adapter: str | None, artifact: str | None) -> tuple[str, str | None]:
    """(model name to store, hash of the adapter or artifact or None)."""
    if artifact:
        return f"{model}@{Path(artifact).name}" if model else Path(artifact).name, content_hash(artifact)
    if adapter:
        return model, content_hash(adapter)
    return model, None
