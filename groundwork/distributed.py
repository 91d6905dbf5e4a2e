"""Multi-process runs (``accelerate launch`` / ``torchrun``): who writes, who waits, and the rank report.

Every rank runs the same stage code. Only the main process writes artifacts; the others wait at a barrier
where they would otherwise read a half-written file or leave before it exists. Used by SFT, reward training
and PPO alike (it lives here because those are the files this change may touch).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

RANK_REPORT_ENV = "PARLEY_RANK_REPORT"


def distributed_state():
    """accelerate's process state, created so that torchrun ranks on a machine without CUDA join one gloo group.

    accelerate only starts several CPU processes through torchrun (``--multi_gpu`` or a MULTI_GPU config): its
    ``--cpu`` flag starts a single process unless MPI is set up. Under torchrun, ranks without CUDA and without
    ``ACCELERATE_USE_CPU`` would each train alone on the same files, so CPU is made the default there.
    """
    import torch
    from accelerate import PartialState
    from accelerate.utils import parse_flag_from_env

    launched = int(os.environ.get("WORLD_SIZE", "1")) > 1
    if launched and not torch.cuda.is_available():
        os.environ.setdefault("ACCELERATE_USE_CPU", "true")
    elif parse_flag_from_env("ACCELERATE_USE_CPU") and "MASTER_PORT" in os.environ and not launched:
        print("parley: warning: `accelerate launch --cpu --num_processes N` starts ONE process without MPI; use "
              "--config_file configs/accelerate/cpu-2proc.yaml (torchrun) for several CPU processes", file=sys.stderr)
    return PartialState(cpu=parse_flag_from_env("ACCELERATE_USE_CPU"))


def world_size() -> int:
    return distributed_state().num_processes


def gather_objects(items: list[Any]) -> list[Any]:
    """Every rank's ``items`` concatenated in rank order, on every rank (the list itself when single-process)."""
    if world_size() == 1:
        return list(items)
    from accelerate.utils import gather_object

    return gather_object(list(items))


def broadcast(value: Any) -> Any:
    """The main process's ``value`` on every rank (a collective: every rank must call it)."""
    if world_size() == 1:
        return value
    from accelerate.utils import broadcast_object_list

    return broadcast_object_list([value])[0]


def params_digest(named: Iterable[tuple[str, Any]]) -> str:
    """SHA-256 of (name, dtype, shape, bytes) of the given tensors, in name order: equal iff the weights are."""
    import torch

    digest = hashlib.sha256()
    for name, tensor in sorted(named, key=lambda item: item[0]):
        data = tensor.detach().cpu().contiguous()
        digest.update(f"{name}|{data.dtype}|{tuple(data.shape)}|".encode())
        digest.update(data.view(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def trainable_digest(*models) -> str:
    """Digest of every trainable parameter of ``models`` (prefixed by model position, so names cannot clash)."""
    return params_digest((f"{i}.{name}", p) for i, model in enumerate(models)
                         for name, p in model.named_parameters() if p.requires_grad)


def write_rank_report(directory: Path, **fields: Any) -> Path | None:
    """When ``PARLEY_RANK_REPORT=1``: write ``rank-reports/rank<i>.json`` so a test can check that ranks agree."""
    if os.environ.get(RANK_REPORT_ENV, "") in ("", "0"):
        return None
    state = distributed_state()
    folder = Path(directory) / "rank-reports"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"rank{state.process_index}.json"
    payload = {"rank": state.process_index, "world_size": state.num_processes, **fields}
    path.write_text(json.dumps(payload, indent=2, sort_keys=True, default=str) + "\n", encoding="utf-8")
    return path
