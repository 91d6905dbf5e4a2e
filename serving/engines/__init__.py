"""Generation engines behind one interface: ``generate`` / ``stream`` with stop strings and cancellation."""

from .base import CancelToken, Engine, GenerationStats, SamplingParams, StopMatcher
from .errors import EngineError, EngineUnavailableError
from .factory import ENGINE_KINDS, load_engine

__all__ = [
    "ENGINE_KINDS",
    "CancelToken",
    "Engine",
    "EngineError",
    "EngineUnavailableError",
    "GenerationStats",
    "SamplingParams",
    "StopMatcher",
    "load_engine",
]
