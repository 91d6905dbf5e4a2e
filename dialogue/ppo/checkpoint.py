"""PPO checkpoints: everything needed to continue a run exactly where it stopped.

TRL's PPOTrainer cannot resume. A Parley checkpoint holds the LoRA adapter, the value model,
optimizer and scheduler state, RNG states, the Lagrange multiplier, the step, and the metric log up
to that step. It is written to a temporary folder and renamed, so a kill mid-write never leaves a
half checkpoint that a resume would pick up.
"""

from __future__ import annotations

import json
import random
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from groundwork.layout import ADAPTER

PREFIX = "step-"


@dataclass
class TrainingState:
    """The scalar part of a checkpoint."""

    step: int
    episode: int
    extra: dict[str, Any]


def rng_state() -> dict[str, Any]:
    return {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])


def save_checkpoint(root: Path, state: TrainingState, policy, value_model, optimizer, scheduler,
                    log: list[dict[str, Any]], keep: int) -> Path:
    """Write ``root/step-N`` atomically and prune all but the newest ``keep`` checkpoints."""
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"{PREFIX}{state.step}"
    tmp = root / f".tmp-{PREFIX}{state.step}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    policy.save_pretrained(tmp / ADAPTER)
    save_file({k: v.contiguous() for k, v in value_model.state_dict().items()}, tmp / "value_model.safetensors")
    torch.save({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), "rng": rng_state()},
               tmp / "trainer_state.pt")
    (tmp / "state.json").write_text(json.dumps({"step": state.step, "episode": state.episode, **state.extra},
                                               indent=2), encoding="utf-8")
    with open(tmp / "log.jsonl", "w", encoding="utf-8") as handle:
        for entry in log:
            handle.write(json.dumps(entry) + "\n")
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)
    for old in list_checkpoints(root)[:-keep] if keep > 0 else []:
        shutil.rmtree(old, ignore_errors=True)
    return final


def list_checkpoints(root: Path) -> list[Path]:
    """Complete checkpoints, oldest first."""
    if not root.is_dir():
        return []
    found = [p for p in root.glob(f"{PREFIX}*") if p.is_dir() and (p / "state.json").is_file()]
    return sorted(found, key=lambda p: int(p.name[len(PREFIX):]))


def latest_checkpoint(root: Path) -> Path | None:
    checkpoints = list_checkpoints(root)
    return checkpoints[-1] if checkpoints else None


def load_state(checkpoint: Path) -> TrainingState:
    data = json.loads((checkpoint / "state.json").read_text(encoding="utf-8"))
    step, episode = data.pop("step"), data.pop("episode")
    return TrainingState(step=step, episode=episode, extra=data)


def load_log(checkpoint: Path) -> list[dict[str, Any]]:
    path = checkpoint / "log.jsonl"
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def restore_trainer_state(checkpoint: Path, value_model, optimizer, scheduler) -> None:
    """Load value weights, optimizer/scheduler state and RNG states saved by :func:`save_checkpoint`."""
    value_model.load_state_dict(load_file(checkpoint / "value_model.safetensors"))
    saved = torch.load(checkpoint / "trainer_state.pt", weights_only=False)
    optimizer.load_state_dict(saved["optimizer"])
    scheduler.load_state_dict(saved["scheduler"])
    set_rng_state(saved["rng"])
