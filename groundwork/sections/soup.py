"""The ``soup`` recipe section (see ``dialogue.soup`` for why and how PPO runs are mixed)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class SoupSection:
    """PPO adapters of other runs mixed into this run's policy; empty ``runs`` leaves the PPO policy as it is."""

    # Run directories, or run names under ``run.output_dir``, whose PPO stage finished on the same SFT policy.
    runs: list[str] = field(default_factory=list)
    # This run's PPO adapter first, then one weight per entry of ``runs``.
    weights: list[float] = field(default_factory=list)
