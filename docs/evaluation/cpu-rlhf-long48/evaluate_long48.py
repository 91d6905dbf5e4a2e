"""Evaluate SFT and the judge-kept PPO adapter of runs/long48 on all 208 held-out prompts (README Results)."""
from pathlib import Path

from dialogue.evaluate_config import EvalModelSection
from dialogue.evaluation import run_evaluation
from dialogue.recipe import load_recipe

recipe = load_recipe("configs/cpu-rlhf.yaml", ["run.name=long48", "ppo.steps=48", "ppo.learning_rate=2.0e-4"])
root = recipe.run.root
sft = str(root / "sft" / "adapter")
models = [EvalModelSection("sft", adapters=[sft])]
best = root / "ppo" / "best" / "adapter"
if best.exists():
    models.append(EvalModelSection("ppo", adapters=[sft, str(best)]))
run_evaluation(recipe, models=models, out_dir=Path("docs/evaluation/cpu-rlhf-long48"))
