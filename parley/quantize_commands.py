"""The ``parley quantize`` sub-command (wired into ``parley.cli`` by one call)."""

from __future__ import annotations

import argparse
import json
import sys


def _csv(value: str) -> tuple[str, ...]:
    return tuple(v.strip().lower() for v in value.split(",") if v.strip())


def cmd_quantize(args: argparse.Namespace) -> int:
    from serving.quantize.export import QuantizeSettings, quantize

    settings = QuantizeSettings(formats=args.formats, gguf_types=args.gguf_types, base_gguf=args.base_gguf,
                                verify=not args.no_verify, gguf_lora=not args.no_gguf_lora)
    manifest = quantize(args.model, args.adapter, args.out, settings)
    for artifact in manifest["artifacts"]:
        print(f"parley: wrote {args.out}/{artifact['path']} ({artifact['size_bytes'] / 1e6:.1f} MB, "
              f"{artifact['format']})", file=sys.stderr)
    print(json.dumps(manifest, indent=2))
    return 0


def add_quantize_command(sub) -> argparse.ArgumentParser:
    """Register ``parley quantize`` on the top-level sub-parser collection."""
    from groundwork.models import DEFAULT_POLICY
    from groundwork.sections.quantize import DEFAULT_GGUF_TYPES
    from serving.quantize.export import FORMATS
    from serving.quantize.gguf_export import GGUF_TYPES

    parser = sub.add_parser("quantize", help="merge a LoRA adapter and export int8 / GGUF artifacts")
    parser.add_argument("--model", "-m", default=DEFAULT_POLICY, help=f"base model (default: {DEFAULT_POLICY})")
    parser.add_argument("--adapter", help="LoRA adapter directory to merge (omit to export the base model)")
    parser.add_argument("--out", "-o", required=True, help="output directory (manifest.json, int8/, *.gguf)")
    parser.add_argument("--formats", type=_csv, default=("int8", "gguf"),
                        help=f"comma list from {','.join(FORMATS)} (default: int8,gguf)")
    parser.add_argument("--gguf-types", type=_csv, default=DEFAULT_GGUF_TYPES,
                        help=f"comma list from {','.join(GGUF_TYPES)} or mixed-<type> (default: "
                             f"{','.join(DEFAULT_GGUF_TYPES)}; q4_1 = the bundled base file's grid, which rounds a "
                             "LoRA away; q4_0 keeps most of it and runs faster; mixed-q8_0 copies the base GGUF's "
                             "bytes for tensors the adapter left unchanged and writes the changed ones as Q8_0)")
    parser.add_argument("--base-gguf", help="GGUF whose metadata and tokenizer to reuse and whose unchanged tensors "
                                              "mixed-<type> copies (default: bundled SmolLM2)")
    parser.add_argument("--no-gguf-lora", action="store_true",
                        help="with an adapter, skip the unmerged base + LoRA GGUF written for 4/5-bit types")
    parser.add_argument("--no-verify", action="store_true",
                        help="skip reloading each GGUF with transformers to compare logits")
    parser.set_defaults(handler=cmd_quantize)
    return parser
