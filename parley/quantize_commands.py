"""The ``parley quantize`` sub-command: flags are sugar for ``policy.model`` and ``quantize.*`` recipe keys."""

from __future__ import annotations

import argparse
import json
import sys

from parley.flags import add_recipe_args, add_setting, recipe_from_args


def _csv(value: str) -> tuple[str, ...]:
    return tuple(v.strip().lower() for v in value.split(",") if v.strip())


def cmd_quantize(args: argparse.Namespace) -> int:
    from serving.quantize.export import QuantizeSettings, quantize

    recipe = recipe_from_args(args)
    cfg = recipe.quantize
    settings = QuantizeSettings(formats=tuple(cfg.formats), gguf_types=tuple(cfg.gguf_types), base_gguf=cfg.base_gguf,
                                verify=cfg.verify, gguf_lora=cfg.gguf_lora)
    manifest = quantize(recipe.policy.model, cfg.adapter, args.out, settings)
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
                help=f"comma list from {','.join(GGUF_TYPES)} or mixed-<type> (q4_1 = the bundled base file's grid, "
                     "which rounds a LoRA away; q4_0 keeps most of it and runs faster; mixed-q8_0 copies the base "
                     "GGUF's bytes for tensors the adapter left unchanged and writes the changed ones as Q8_0)")
    add_setting(parser, "--base-gguf", key="quantize.base_gguf",
                help="GGUF whose metadata and tokenizer to reuse and whose unchanged tensors mixed-<type> copies "
                     "(none = tokenizer written from the HF files; mixed-<type> uses the bundled SmolLM2)")
    add_setting(parser, "--no-gguf-lora", key="quantize.gguf_lora", action="store_const", const=False,
                help="with an adapter, skip the unmerged base + LoRA GGUF written for 4/5-bit types")
    add_setting(parser, "--no-verify", key="quantize.verify", action="store_const", const=False,
                help="skip reloading each GGUF (transformers or llama.cpp) to compare logits")
    parser.set_defaults(handler=cmd_quantize)
    return parser
