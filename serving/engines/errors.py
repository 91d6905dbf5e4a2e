"""Engine errors: one-line messages for the CLI and the app."""

from __future__ import annotations

from groundwork.errors import ParleyError


class EngineError(ParleyError):
    """An engine cannot be created or a request is invalid."""


class EngineUnavailableError(EngineError):
    """The engine's optional dependency is not installed (e.g. ``parley[llamacpp]``)."""
