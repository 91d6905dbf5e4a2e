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
    # A LoRA adapter applied to ``policy.model`` (None = the base model alone).
    adapter: str | None = None
    # ``parley chat``: KB text the conversation is grounded on (None = none).
    context: str | None = None

    def __post_init__(self) -> None:
        if self.max_new_tokens <= 0 or self.batch_size <= 0:
            raise ValueError(f"max_new_tokens and batch_size must be positive, got {self.max_new_tokens} and "
                             f"{self.batch_size}")
        if self.temperature < 0 or not 0 < self.top_p <= 1:
            raise ValueError("temperature must be >= 0 and top_p in (0, 1]")

