"""Generation engines behind one interface: ``generate`` / ``stream`` with stop strings and cancellation."""

from serving.engines.base import CancelToken, Engine, GenerationStats, SamplingParams, StopMatcher
from serving.engines.errors import EngineError, EngineUnavailableError
from serving.engines.factory import ENGINE_KINDS, load_engine

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
