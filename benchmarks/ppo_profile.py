"""Where one PPO update's time goes: generation, reference forward, policy + value forward, backward, reward.

Runs ``parley ppo`` for a few updates under cProfile on an existing run's SFT adapter, reward and risk models
(``--run``: a run folder that has them, e.g. ``runs/demo``; they are copied to a scratch run, so the run itself
is untouched) and sums the cumulative time of the functions that make up TRL's PPO loop. cProfile slows the
Python-heavy parts, so read the shares, not the seconds. Prints one JSON line and appends it to
``benchmarks/results/ppo_profile.jsonl``.

    python benchmarks/ppo_profile.py --config configs/cpu-demo.yaml --run runs/demo --steps 3
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import shutil
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "ppo_profile.jsonl"
COPIED = ("data", "sft", "reward-quality", "reward-safety", "reward-faithfulness", "risk")

# (file suffix, first line, function) -> part of the update. TRL 1.12's ppo_trainer.py: ``forward`` (the
# module-level helper: the reference pass in the rollout and, through the policy-and-value wrapper, the
# training pass), the wrapper's ``forward`` (policy + value in training), ``batch_generation``.
PARTS = {
    "generation": ("trl/experimental/ppo/ppo_trainer.py", "batch_generation"),
    "policy_and_value_forward_train": ("trl/experimental/ppo/ppo_trainer.py", "forward", 291),
    "all_forward_helper": ("trl/experimental/ppo/ppo_trainer.py", "forward", 191),
    "backward": ("torch/autograd/__init__.py", "backward"),
    "reward_and_value_rollout": ("trl/experimental/utils.py", "get_reward"),
    "composite_reward": ("reward_models/composite.py", "reward_from_tokens"),
    "optimizer_step": ("torch/optim/adam.py", "step"),
    "ppo_train_loop": ("trl/experimental/ppo/ppo_trainer.py", "train"),
}


def _cumulative(stats: pstats.Stats, file_suffix: str, name: str, line: int | None = None) -> float:
    total = 0.0
    for (path, first_line, function), entry in stats.stats.items():
        if function == name and path.endswith(file_suffix) and (line is None or first_line == line):
            total += entry[3]
    return total


def _called_from(stats: pstats.Stats, file_suffix: str, name: str, caller: str) -> float:
    """Cumulative seconds of ``name`` spent in calls made by a function named ``caller``."""
    total = 0.0
    for (path, _, function), entry in stats.stats.items():
        if function == name and path.endswith(file_suffix):
            total += sum(timing[3] for (_, _, by), timing in entry[4].items() if by == caller)
    return total


PREFIX_FILE = "dialogue/ppo/frozen_prefix.py"


def breakdown(stats: pstats.Stats, updates: int) -> dict[str, float]:
    """Seconds per update of each part (cumulative, so nested parts are inside their callers)."""
    parts = {key: _cumulative(stats, *spec) / updates for key, spec in PARTS.items()}
    replayed = _cumulative(stats, PREFIX_FILE, "_training_pass")
    if replayed:  # ppo.reuse_frozen_layers: the passes go through dialogue/ppo/frozen_prefix.py instead
        parts.pop("all_forward_helper")
        parts["policy_and_value_forward_train"] = replayed / updates
        parts["reference_forward"] = (_cumulative(stats, PREFIX_FILE, "_policy_pass")
                                      - _called_from(stats, PREFIX_FILE, "_policy_pass", "_training_pass")) / updates
    else:
        parts["reference_forward"] = parts.pop("all_forward_helper") - parts["policy_and_value_forward_train"]
    loop = parts["ppo_train_loop"]
    named = (parts["generation"] + parts["reference_forward"] + parts["policy_and_value_forward_train"]
             + parts["backward"] + parts["reward_and_value_rollout"] + parts["optimizer_step"])
    parts["other"] = loop - named
    return {key: round(value, 3) for key, value in parts.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/cpu-demo.yaml")
    parser.add_argument("--run", default="runs/demo", help="a run folder with SFT, reward and risk models")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        help="recipe override, e.g. ppo.reuse_frozen_layers=false (repeatable)")
    args = parser.parse_args()

    from dialogue.ppo.trainer import run_ppo
    from groundwork.recipe import load_recipe

    scratch = Path(tempfile.mkdtemp(prefix="ppo-profile-"))
    for name in COPIED:
        if (Path(args.run) / name).exists():
            shutil.copytree(Path(args.run) / name, scratch / "profile" / name)
    recipe = load_recipe(args.config, [f"run.output_dir={scratch}", "run.name=profile", f"ppo.steps={args.steps}",
                                       "ppo.checkpoint_every=1000", "ppo.judge_every=1000", *args.overrides])
    profiler = cProfile.Profile()
    started = time.time()
    profiler.runcall(run_ppo, recipe)
    wall = time.time() - started
    parts = breakdown(pstats.Stats(profiler), args.steps)
    loop = parts["ppo_train_loop"]
    line = {"benchmark": "ppo_profile", "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "config": args.config,
            "updates": args.steps, "batch_size": recipe.ppo.batch_size,
            "response_length": recipe.ppo.response_length, "reuse_frozen_layers": recipe.ppo.reuse_frozen_layers,
            "wall_s_profiled": round(wall, 1),
            "seconds_per_update": parts,
            "share_of_update": {k: round(v / loop, 3) for k, v in parts.items() if k != "ppo_train_loop"}}
    print(json.dumps(line))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    with open(RESULTS, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(line) + "\n")
    shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
