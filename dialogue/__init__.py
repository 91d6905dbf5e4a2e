"""The policy stages of Parley: SFT, PPO, generation, weight soups and evaluation."""
