"""Drive the composite reward's Lagrange multiplier from PPOTrainer and log the reward breakdown."""

from __future__ import annotations

from transformers import TrainerCallback

from reward_models.composite import CompositeReward


class LagrangeCallback(TrainerCallback):
    """On every step end: update the safety multiplier and add per-objective means to the log history.

    PPOTrainer logs a step's metrics just before ``on_step_end``, so the stats are merged into that
    latest ``log_history`` entry (and written to ``tb_writer`` when given).
    """

    def __init__(self, composite: CompositeReward, tb_writer=None) -> None:
        self.composite = composite
        self.tb_writer = tb_writer

    def on_step_end(self, args, state, control, **kwargs):
        stats = self.composite.step()
        if state.log_history:
            state.log_history[-1].update(stats)
        if self.tb_writer is not None:
            for key, value in stats.items():
                self.tb_writer.add_scalar(key, value, state.global_step)
        return control
