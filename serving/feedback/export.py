"""Write the feedback store's training rows as JSONL for the next reward-model (and policy) round.

:func:`export_feedback` writes a folder:

* ``preferences-<objective>.jsonl`` for each reward objective (quality, safety, faithfulness): TRL's
  conversational preference format (``prompt`` / ``chosen`` / ``rejected`` message lists, plus ``context``,
  ``objective``, ``reason``, ``source`` and row ids), each pair in the file of its objective tag;
* ``kto.jsonl``: TRL's unpaired (KTO) format (``prompt`` / ``completion`` message lists, ``label``), every
  single like, dislike, clear rating and correction;
* ``manifest.json``: the row count of each file.

:func:`export_preferences` writes all pairs to one file (the format before per-objective files; each row
still carries its ``objective`` tag). Files are byte-identical for the same database (sorted keys, id
order) and each is replaced atomically, so a reader never sees half an export.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from groundwork.data_loading import OBJECTIVES
from serving.feedback.pairs import DEFAULT_MAX_PAIRS_PER_PROMPT
from serving.feedback.store import FeedbackStore, FeedbackValueError

KTO_FILE = "kto.jsonl"
MANIFEST_FILE = "manifest.json"


def preference_file(objective: str) -> str:
    """The per-objective file name ``parley reward train --feedback DIR`` looks for."""
    return f"preferences-{objective}.jsonl"


def _write_atomic(path: Path, lines: Iterable[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            for line in lines:
                f.write(line + "\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _jsonl(rows: Iterable[dict[str, Any]]) -> Iterable[str]:
    return (json.dumps(row, ensure_ascii=False, sort_keys=True) for row in rows)


def export_preferences(
    url: str | Path, out_path: str | Path, max_pairs_per_prompt: int = DEFAULT_MAX_PAIRS_PER_PROMPT
) -> int:
    """Export all TRL preference rows (every objective) from the store at ``url`` to one ``out_path``."""
    out_path = Path(out_path)
    if out_path.is_dir():
        raise FeedbackValueError(f"output path {out_path} is a folder; give a .jsonl file name")
    with FeedbackStore(url, create=False) as store:
        rows = store.export_preferences(max_pairs_per_prompt=max_pairs_per_prompt)
    _write_atomic(out_path, _jsonl(rows))
    return len(rows)


def export_feedback(
    url: str | Path, out_dir: str | Path, max_pairs_per_prompt: int = DEFAULT_MAX_PAIRS_PER_PROMPT
) -> dict[str, int]:
    """Write per-objective preference files, the KTO file and a manifest into ``out_dir``; returns the counts.

    Every objective gets its file, empty when it has no pairs, so an older export's pairs never linger.
    """
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise FeedbackValueError(f"output path {out_dir} is a file; give a folder (or a .jsonl file name)")
    with FeedbackStore(url, create=False) as store:
        pairs, unpaired = store.export_all(max_pairs_per_prompt=max_pairs_per_prompt)
    counts: dict[str, int] = {}
    for objective in OBJECTIVES:
        rows = [r for r in pairs if r["objective"] == objective]
        _write_atomic(out_dir / preference_file(objective), _jsonl(rows))
        counts[objective] = len(rows)
    _write_atomic(out_dir / KTO_FILE, _jsonl(unpaired))
    counts["kto"] = len(unpaired)
    labels = [r["label"] for r in unpaired]
    manifest = {
        "files": {**{preference_file(o): counts[o] for o in OBJECTIVES}, KTO_FILE: counts["kto"]},
        "kto_desirable": labels.count(True),
        "kto_undesirable": labels.count(False),
    }
    _write_atomic(out_dir / MANIFEST_FILE, [json.dumps(manifest, indent=2, sort_keys=True)])
    return counts
