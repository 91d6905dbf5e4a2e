"""Generation engines behind one interface: ``generate`` / ``stream`` with stop strings and cancellation."""

from serving.engines.base import CancelToken, Engine, GenerationStats, SamplingParams, StopMatcher
from serving.engines.errors import EngineError, EngineUnavailableError
from serving.engines.factory import ENGINES, load_engine

__all__ = [
    "ENGINES",
    "CancelToken",
    "Engine",
    "EngineError",
    "EngineUnavailableError",
    "GenerationStats",
    "SamplingParams",
    "StopMatcher",
    "load_engine",
]
