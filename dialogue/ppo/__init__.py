"""PPO stage: TRL 1.12's PPOTrainer with a LoRA policy, the composite reward, guards and resume."""
