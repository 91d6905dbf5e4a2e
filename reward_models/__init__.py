"""Reward models for quality, safety and faithfulness, and the composite reward PPO optimizes.

Layout of a run folder (``runs/<run>/``, the ``--reward-dir`` of ``parley reward score``)::

    reward-<objective>/            one per objective: quality, safety, faithfulness
        model/                     save_pretrained model + tokenizer, normalization.json, parley_reward.json
        metrics.json               held-out pairwise accuracy / mean margin per eval set, row counts, timings
        accuracy.png               train and eval accuracy over steps
        score_distributions.png    chosen vs rejected normalized scores per held-out set
        tensorboard/               TensorBoard events
        recipe.yaml                the resolved recipe

Modules: ``text`` (the one input layout), ``pairs`` (data and held-out splits), ``backbone`` (loading,
freezing), ``train`` (RewardTrainer), ``scorer`` + ``trunk`` (batched scoring, shared frozen trunk),
``composite`` + ``lagrange`` + ``policy_text`` (PPO reward), ``score_file``.
"""
