"""Write the feedback store's preference pairs as JSONL for the next reward-model round."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from .pairs import DEFAULT_MAX_PAIRS_PER_PROMPT
from .store import FeedbackStore, FeedbackValueError


def export_preferences(
    url: str | Path, out_path: str | Path, max_pairs_per_prompt: int = DEFAULT_MAX_PAIRS_PER_PROMPT
) -> int:
    """Export TRL preference rows from the store at ``url`` to ``out_path``; returns the row count.

    The file is byte-identical for the same database (sorted keys, ids order) and is replaced
    atomically, so a reader never sees half an export.
    """
    out_path = Path(out_path)
    if out_path.is_dir():
        raise FeedbackValueError(f"output path {out_path} is a folder; give a .jsonl file name")
    with FeedbackStore(url, create=False) as store:
        rows = store.export_preferences(max_pairs_per_prompt=max_pairs_per_prompt)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out_path.parent, prefix=f".{out_path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            for row in rows:
                f.write(json.dumps(row, ensure_ascii=False, sort_keys=True) + "\n")
        os.replace(tmp, out_path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return len(rows)
