"""What Parley adds around TRL's PPO loop, as one TrainerCallback.

* determinism: RNG re-seeded from (seed, step) before every update, so a resumed run repeats an
  uninterrupted one step for step;
* logging: TRL's metrics plus per-objective rewards, the Lagrange multiplier and response lengths,
  with the global step (offset on resume), to TensorBoard and ``log.jsonl``;
* guards: NaN/inf, KL over budget, ``val/ratio`` out of band for several steps -> stop with a clear
  message before this step is checkpointed, so the last checkpoint stays good;
* checkpoints every N steps and the over-optimization watch (rule-based judge, best checkpoint kept).
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import TrainerCallback

from groundwork.errors import ParleyError
from groundwork.sections.ppo import PPOSection

# Metrics that measure wall time, not training: excluded when comparing runs.
TIMING_KEYS = ("eps",)


class PPOGuardError(ParleyError):
    """PPO was stopped by a guard; the message says which and where the last good checkpoint is."""


def seed_step(seed: int, step: int, rank: int = 0) -> None:
    """Make update ``step``'s randomness a function of (seed, step, rank) only (ranks sample independently)."""
    value = seed * 1000003 + step + rank * 7919
    torch.manual_seed(value)
    np.random.seed(value % (2**32))
    random.seed(value)


class ParleyPPOCallback(TrainerCallback):
    """Logging, guards, checkpoints and the judge watch for one PPO run.

    In a multi-process run every rank keeps the same in-memory log (TRL gathers the metrics; the reward stats and
    the judge score are pooled/broadcast by the callables passed in), but only the main process gets a
    ``log_path`` and a ``writer``; the others pass ``None`` and write nothing.
    """

    def __init__(
        self,
        cfg: PPOSection,
        seed: int,
        step_offset: int,
        log: list[dict[str, Any]],
        log_path: Path | None,
        writer,
        after_update: Callable[[int], dict[str, float]],
        save: Callable[[int, list[dict[str, Any]]], Path],
        judge: Callable[[int], float | None] | None,
        checkpoint_root: Path,
        batch_size: int,
        dataset_size: int,
        rank: int = 0,
    ) -> None:
        self.cfg = cfg
        self.seed = seed
        self.offset = step_offset
        self.log = log
        self.log_path = log_path
        self.writer = writer
        self.after_update = after_update
        self.save = save
        self.judge = judge
        self.checkpoint_root = checkpoint_root
        self.batch_size = batch_size
        self.dataset_size = dataset_size
        self.ratio_strikes = 0
        self.rank = rank

    def step(self, state) -> int:
        return self.offset + state.global_step

    def on_train_begin(self, args, state, control, **kwargs):
        seed_step(self.seed, self.offset, self.rank)

    def _last_good(self) -> str:
        from dialogue.ppo.checkpoint import latest_checkpoint

        last = latest_checkpoint(self.checkpoint_root)
        return f"last good checkpoint: {last}" if last else "no checkpoint was written yet"

    def _check_guards(self, step: int, metrics: dict[str, float]) -> None:
        bad = [k for k, v in metrics.items() if isinstance(v, float) and not math.isfinite(v)]
        if bad:
            raise PPOGuardError(f"PPO stopped at step {step}: non-finite {', '.join(sorted(bad))}; {self._last_good()}")
        kl = metrics.get("objective/kl")
        if kl is not None and kl > self.cfg.kl_budget:
            raise PPOGuardError(f"PPO stopped at step {step}: objective/kl={kl:.3f} exceeds the budget "
                                f"ppo.kl_budget={self.cfg.kl_budget}; {self._last_good()}")
        ratio = metrics.get("val/ratio")
        low, high = self.cfg.ratio_band
        self.ratio_strikes = self.ratio_strikes + 1 if ratio is not None and not low <= ratio <= high else 0
        if self.ratio_strikes >= self.cfg.ratio_patience:
            raise PPOGuardError(f"PPO stopped at step {step}: val/ratio={ratio:.3f} outside [{low}, {high}] for "
                                f"{self.ratio_strikes} steps; {self._last_good()}")

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not logs or "objective/kl" not in logs:
            return
        step = self.step(state)
        metrics = {k: float(v) for k, v in logs.items() if isinstance(v, (int, float))}
        # TRL counts episodes from 0 in every train() call; count them over the whole run instead.
        metrics["episode"] = float(step * self.batch_size)
        metrics["epoch"] = step * self.batch_size / self.dataset_size
        metrics["step"] = step
        self.log.append(metrics)

    def on_step_end(self, args, state, control, **kwargs):
        step = self.step(state)
        stats = self.after_update(step)
        if self.log and self.log[-1]["step"] == step:
            self.log[-1].update(stats)
            self._check_guards(step, self.log[-1])
        if self.judge is not None and self.cfg.judge_every > 0 and step % self.cfg.judge_every == 0:
            score = self.judge(step)
            if score is not None and self.log:
                self.log[-1]["judge/score"] = score
        if self.log and self.log[-1]["step"] == step and self.log_path is not None:
            with open(self.log_path, "a", encoding="utf-8") as handle:
                handle.write(json.dumps(self.log[-1]) + "\n")
            for key, value in self.log[-1].items():
                if key != "step":
                    self.writer.add_scalar(key, value, step)
            self.writer.flush()
        if self.cfg.checkpoint_every > 0 and step % self.cfg.checkpoint_every == 0:
            self.save(step, self.log)
        seed_step(self.seed, step, self.rank)
        return control
