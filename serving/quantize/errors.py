"""Errors raised while merging and exporting; the CLI prints each as one line."""

from __future__ import annotations

from groundwork.errors import ParleyError


class QuantizeError(ParleyError):
    """An export cannot be made from the given inputs (missing adapter, bad option, unreadable artifact)."""


class UnsupportedArchitectureError(QuantizeError):
    """The model's architecture (or tokenizer) has no GGUF writer here (see ``groundwork.architectures``)."""
