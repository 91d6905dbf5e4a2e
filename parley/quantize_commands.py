"""The ``parley quantize`` sub-command: flags are sugar for ``policy.model`` and ``quantize.*`` recipe keys."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from parley.flags import add_recipe_args, add_setting, recipe_from_args


def _csv(value: str) -> tuple[str, ...]:
    return tuple(v.strip().lower() for v in value.split(",") if v.strip())


def quantize_settings(recipe):
    """The recipe's ``quantize:`` section as :class:`QuantizeSettings` (the CLI and the pipeline share it)."""
    from serving.quantize.export import QuantizeSettings
    from serving.quantize.plan_search import PlanSearchSettings

    cfg = recipe.quantize
    search = PlanSearchSettings(min_agreement=cfg.plan_min_agreement, min_reward_delta=cfg.plan_min_reward_delta,
                                prompts=cfg.plan_prompts)
    return QuantizeSettings(formats=tuple(cfg.formats), gguf_types=tuple(cfg.gguf_types), base_gguf=cfg.base_gguf,
                            verify=cfg.verify, gguf_lora=cfg.gguf_lora, plan=cfg.plan, plan_search=search)


def composite_scorer(reward_dir: str | Path, composite):
    """A scorer ``(rows, answers) -> composite per answer`` from the reward models in ``reward_dir``: the composite
    PPO and ``parley evaluate`` use (routed by the request-risk model in ``reward_dir/risk/model`` when there is
    one, with the form penalty), so a quantized file is judged by the same instrument as the policy."""
    from dialogue.evaluation import routed_composites
    from reward_models.risk_model import RequestRiskModel, request_text
    from reward_models.scorer import RewardScorer

    scorer = RewardScorer.from_pretrained(reward_dir)
    risk_dir = Path(reward_dir) / "risk" / "model"
    risk_model = RequestRiskModel.from_pretrained(risk_dir) if risk_dir.is_dir() else None
    risks: dict[str, float | None] = {}  # per request: the same prompts are scored for every candidate

    def score(rows, answers):
        texts = [request_text(r["messages"]) for r in rows]
        new = [t for t in dict.fromkeys(texts) if t not in risks]
        if new:
            risks.update(zip(new, risk_model.probabilities(new) if risk_model is not None else [None] * len(new),
                             strict=True))
        scores = scorer.score([(r["messages"], a, r.get("context")) for r, a in zip(rows, answers, strict=True)])
        return routed_composites(scores, [risks[t] for t in texts], composite, list(rows), list(answers))

    return score


def plan_inputs(recipe, reward_dir: str | Path | None):
    """``(measurement prompts, composite scorer or None)`` for ``quantize.plan: auto``.

    The prompts are the support *train* split's conversations with their KB context (the held-out split stays
    for the serving benchmark); the scorer is :func:`composite_scorer` over ``reward_dir``, None when it holds no
    reward models (the plan is then chosen by agreement and speed only).
    """
    from groundwork.data_loading import load_support

    rows = load_support(recipe.data.data_dir, "train")[: recipe.quantize.plan_prompts]
    prompts = [{"messages": r["messages"][:-1], "context": r.get("context")} for r in rows]
    if reward_dir is None or not (Path(reward_dir) / "reward-quality").is_dir():
        return prompts, None
    return prompts, composite_scorer(reward_dir, recipe.reward.composite)


def cmd_quantize(args: argparse.Namespace) -> int:
    from serving.quantize.export import quantize

    recipe = recipe_from_args(args)
    cfg = recipe.quantize
    settings = quantize_settings(recipe)
    prompts, scorer = plan_inputs(recipe, cfg.reward_dir) if cfg.plan == "auto" else (None, None)
    manifest = quantize(recipe.policy.model, cfg.adapter, args.out, settings, plan_prompts=prompts,
                        plan_scorer=scorer, system_prompt=recipe.policy.system_prompt)
    for artifact in manifest["artifacts"]:
        print(f"parley: wrote {args.out}/{artifact['path']} ({artifact['size_bytes'] / 1e6:.1f} MB, "
              f"{artifact['format']})", file=sys.stderr)
    print(json.dumps(manifest, indent=2))
    return 0


def add_quantize_command(sub) -> argparse.ArgumentParser:
    """Register ``parley quantize`` on the top-level sub-parser collection."""
    from serving.quantize.export import FORMATS
    from serving.quantize.gguf_export import GGUF_TYPES

    parser = sub.add_parser("quantize", help="merge a LoRA adapter and export int8 / GGUF artifacts")
    add_recipe_args(parser)
    add_setting(parser, "--model", "-m", key="policy.model", help="base model")
    add_setting(parser, "--adapter", key="quantize.adapter",
                help="LoRA adapter directory to merge (none = export the base model)")
    parser.add_argument("--out", "-o", required=True, help="output directory (manifest.json, int8/, *.gguf)")
    add_setting(parser, "--formats", key="quantize.formats", type=_csv, help=f"comma list from {','.join(FORMATS)}")
    add_setting(parser, "--gguf-types", key="quantize.gguf_types", type=_csv,
                help=f"comma list from {','.join(GGUF_TYPES)} or mixed-<type> (a PPO LoRA moves weights by less than a "
                     "4-bit step, so q4_0/q4_1 answer like the base model; q8_0 keeps most of the tuning; mixed-q8_0 "
                     "copies the base GGUF's bytes for tensors the adapter left unchanged and writes the changed "
                     "ones as Q8_0)")
    add_setting(parser, "--base-gguf", key="quantize.base_gguf",
                help="GGUF whose metadata and tokenizer to reuse and whose unchanged tensors mixed-<type> copies "
                     "(none = tokenizer written from the HF files; mixed-<type> uses the bundled SmolLM2)")
    add_setting(parser, "--no-gguf-lora", key="quantize.gguf_lora", action="store_const", const=False,
                help="with an adapter, skip the unmerged base + LoRA GGUF written for 4/5-bit types")
    add_setting(parser, "--no-verify", key="quantize.verify", action="store_const", const=False,
                help="skip reloading each GGUF (transformers or llama.cpp) to compare logits")
    add_setting(parser, "--plan", key="quantize.plan",
                help="auto: search a per-layer-group type plan by measured greedy agreement, composite-reward "
                     "change and llama.cpp tokens/s, written as model-auto.gguf (parley serve's default); or a plan "
                     "JSON file")
    add_setting(parser, "--reward-dir", key="quantize.reward_dir",
                help="run folder holding reward-<objective>/ models: the plan search scores answers with their "
                     "composite (none = agreement and speed only)")
    parser.set_defaults(handler=cmd_quantize)
    return parser
