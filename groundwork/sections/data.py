"""Where the project data lives and which public sets are mixed in."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal


@dataclass
class SourceSection:
    """One extra dataset mixed into a stage (a local copy of a public set or a hub id)."""

    kind: Literal["hh-rlhf", "halueval", "bitext", "banking77", "tatoeba", "jsonl", "hub"]
    path: str
    split: str = "train"
    max_rows: int | None = None


@dataclass
class DataSection:
    """Project data location, public mix-ins, and what to do with malformed rows."""

    data_dir: str = "data"
    on_bad_row: Literal["skip", "error"] = "skip"
    sft_sources: list[SourceSection] = field(default_factory=list)

    def __post_init__(self) -> None:
        from groundwork.bundled import resolve_data_dir

        self.data_dir = resolve_data_dir(self.data_dir)

