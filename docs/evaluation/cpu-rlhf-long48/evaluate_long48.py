"""Evaluate SFT and the PPO adapter runs/long48 hands downstream on all 208 held-out prompts (README Results).

The recipe's soup section is bypassed: this run is cpu-rlhf's PPO alone, without the strict run mixed in.
"""
from pathlib import Path

from dialogue.evaluation import run_evaluation
from dialogue.ppo.export import chosen_ppo_adapter
from groundwork.recipe import load_recipe
from groundwork.sections.evaluate import EvalModelSection

recipe = load_recipe("configs/cpu-rlhf.yaml", ["run.name=long48", "ppo.steps=48", "ppo.learning_rate=2.0e-4"])
sft = str(recipe.run.root / "sft" / "adapter")
ppo = str(chosen_ppo_adapter(recipe.run.root / "ppo"))
models = [EvalModelSection("sft", adapters=[sft]), EvalModelSection("ppo", adapters=[sft, ppo])]
run_evaluation(recipe, models=models, out_dir=Path("docs/evaluation/cpu-rlhf-long48"))
