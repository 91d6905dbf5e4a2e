"""Batch generation and terminal chat defaults."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class GenerateSection:
    """Defaults for batch generation and the terminal chat."""

    max_new_tokens: int = 128
    batch_size: int = 8
    temperature: float = 0.0
    top_p: float = 1.0

