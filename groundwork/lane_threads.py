"""A pipeline lane's share of the CPU cores, raised while it runs when a lane beside it finishes.

``parley pipeline`` runs SFT with the reward models in one child process and the request-risk model in another,
one core each. Whichever lane ends first used to leave its core idle while the other ran on at one thread
(on cpu-demo the risk lane ran its last ~170 s alone). The parent writes each running lane's thread share into
a small file named by ``PARLEY_LANE_THREADS_FILE``; long loops in the child call :func:`follow_lane_threads`
between steps, which applies a changed share with ``torch.set_num_threads``. Outside a lane it does nothing.

``torch.set_num_threads`` sets the calling thread's OpenMP count, so the loop's own thread has to call it: a
watcher thread could not.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

ENV = "PARLEY_LANE_THREADS_FILE"
log = logging.getLogger(__name__)
_seen: dict[str, float] = {}  # file -> modification time last applied


def write_lane_threads(path: Path, threads: int) -> None:
    """Set a lane's share (written whole, then renamed, so a reader never sees half a number)."""
    partial = path.with_suffix(".partial")
    partial.write_text(f"{int(threads)}\n", encoding="utf-8")
    partial.replace(path)


def follow_lane_threads() -> int | None:
    """Apply this lane's current share if it changed since the last call; the share, or None outside a lane.

    Cheap enough to call every training step (one ``stat`` while nothing changed).
    """
    name = os.environ.get(ENV)
    if not name:
        return None
    try:
        mtime = os.stat(name).st_mtime
        if _seen.get(name) == mtime:
            return None
        threads = int(Path(name).read_text(encoding="utf-8").strip())
    except (OSError, ValueError):
        return None
    _seen[name] = mtime
    import torch

    if threads >= 1 and threads != torch.get_num_threads():
        log.info("lane share changed: %d torch thread(s)", threads)
        torch.set_num_threads(threads)
    return threads


def lane_threads_callback():
    """A ``transformers`` TrainerCallback that follows the lane's share before every training step."""
    from transformers import TrainerCallback

    class LaneThreads(TrainerCallback):
        def on_step_begin(self, args, state, control, **kwargs):  # noqa: ANN001, ANN201 - transformers' hook
            follow_lane_threads()

    return LaneThreads()
