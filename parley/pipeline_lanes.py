"""Run independent pipeline stages side by side, each lane in its own ``parley pipeline --only`` child process.

SFT, the reward models and the request-risk model do not need each other. Small models on a few CPU cores
use extra threads poorly (on 2 cores, one thread runs an SFT or reward-model step at 0.62x the speed of two),
so one lane per core finishes sooner than running the stages in turn. Each child is an ordinary
``parley pipeline --only ...`` run of the same resolved recipe: it writes the same ``stage.json`` markers, so
skipping, resuming and the final summary work exactly as for stages run in the parent process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from groundwork.errors import ParleyError
from groundwork.lane_threads import ENV as LANE_THREADS_ENV
from groundwork.lane_threads import write_lane_threads
from groundwork.layout import RunLayout
from groundwork.recipe import Recipe
from groundwork.runs import recipe_yaml

# Balanced by measured cpu-demo stage times on one thread each: SFT and the three reward models (~480 s) beside
# the request-risk model (~670 s with its 3 epochs).
LANES: tuple[tuple[str, ...], ...] = (("sft", "reward-safety", "reward-faithfulness", "reward-quality"), ("risk",))


def lanes_to_run(pending: Sequence[str]) -> list[list[str]]:
    """The lanes that still have stages to run; side by side only pays when at least two do."""
    lanes = [[name for name in lane if name in pending] for lane in LANES]
    lanes = [lane for lane in lanes if lane]
    return lanes if len(lanes) >= 2 else []


def _stage_done(root: Path, name: str, started: float) -> bool:
    marker = RunLayout(root).marker(name)
    return marker.is_file() and marker.stat().st_mtime >= started


def _tail(path: Path, lines: int = 15) -> str:
    text = path.read_text(encoding="utf-8", errors="replace") if path.is_file() else ""
    return "\n".join(text.replace("\r", "\n").splitlines()[-lines:])


def run_lanes(recipe: Recipe, lanes: list[list[str]], force: Sequence[str], write: Callable[[str], None],
              poll_s: float = 2.0) -> None:
    """Start one child per lane with the cores split between them; return when all finished, raise if any failed.

    A failing lane does not stop the others: what they finish is kept and a rerun skips it.
    """
    root = recipe.run.root
    root.mkdir(parents=True, exist_ok=True)
    recipe_file = recipe.run.layout.pipeline_recipe
    recipe_file.write_text(recipe_yaml(recipe), encoding="utf-8")
    cores = os.cpu_count() or 1
    threads = max(1, cores // len(lanes))
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads),
           "TOKENIZERS_PARALLELISM": "false"}
    started = time.time()
    children = []
    shares: list[Path] = []  # per child, the file holding its thread share
    for number, lane in enumerate(lanes, start=1):
        log = recipe.run.layout.lane_log(number)
        forced = [name for name in lane if name in force]
        command = [sys.executable, "-m", "parley.cli", "pipeline", "--config", str(recipe_file), "--only", *lane]
        if forced:
            command += ["--force", *forced]
        share = log.with_suffix(".threads")
        write_lane_threads(share, threads)
        shares.append(share)
        handle = open(log, "w", encoding="utf-8")  # noqa: SIM115 - closed when the child exits
        children.append((lane, log, handle, subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT,
                                                             env={**env, LANE_THREADS_ENV: str(share)})))
        write(f"lane {number}: {' -> '.join(lane)} ({threads} thread(s), log: {log})")
    reported: set[str] = set()
    running = len(children)
    while True:
        alive = [i for i, (*_, child) in enumerate(children) if child.poll() is None]
        if alive and len(alive) < running:  # a lane ended: the others share its cores from their next step
            running = len(alive)
            for i in alive:
                write_lane_threads(shares[i], max(1, cores // running))
            write(f"lanes running: {running}, now {max(1, cores // running)} thread(s) each")
        for lane, _log, _handle, _child in children:
            for name in lane:
                if name not in reported and _stage_done(root, name, started):
                    reported.add(name)
                    seconds = json.loads(recipe.run.layout.marker(name).read_text(encoding="utf-8"))["seconds"]
                    write(f"{name}: done in {seconds:.0f} s (total {time.time() - started:.0f} s)")
        if not alive:
            break
        time.sleep(poll_s)
    failed = []
    for (lane, log, handle, child), share in zip(children, shares, strict=True):
        handle.close()
        share.unlink(missing_ok=True)
        if child.returncode != 0:
            failed.append(f"lane {' -> '.join(lane)} exited with {child.returncode}; last lines of {log}:\n"
                          f"{_tail(log)}")
    if failed:
        raise ParleyError("\n\n".join(failed))
