"""Timing and result lines shared by the benchmarks (each runs as a script, so this folder is on ``sys.path``)."""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


def median_seconds(fn: Callable[[], object], repeats: int) -> float:
    """Median wall seconds of ``fn()`` over ``repeats`` calls, after one warm-up call (allocations, kernels)."""
    fn()
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def report(record: dict[str, Any], results: Path, append: bool = True) -> None:
    """Print ``record`` as one JSON line and, with ``append``, add it to the benchmark's ``results`` file."""
    line = json.dumps(record, ensure_ascii=False)
    print(line)
    if append:
        results.parent.mkdir(parents=True, exist_ok=True)
        with open(results, "a", encoding="utf-8") as handle:
            handle.write(line + "\n")
