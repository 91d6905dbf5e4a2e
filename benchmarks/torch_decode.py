"""Torch engine decode speed, fp32 against int8, eager against compiled, interleaved in one process.

``benchmarks/serving_engines.py`` runs each engine in its own process one after another, so a machine whose speed
drifts by 20% between minutes moves its int8/fp32 ratio by as much. Here the four torch engines (fp32 and
int8, each eager and with compiled decoding) are loaded side by side and take turns prompt by prompt, so
every ratio compares runs made under the same conditions. Each prompt is decoded to exactly
``--max-tokens`` (EOS masked), greedy, batch 1. Prints one JSON line (medians over prompts and the
ratios) and appends it to ``benchmarks/results/torch_decode.jsonl``.

    python benchmarks/torch_decode.py --adapter runs/demo/ppo/policy_adapter --export-dir runs/demo/quantize
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

RESULTS = ROOT / "benchmarks" / "results" / "torch_decode.jsonl"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--adapter", required=True, help="LoRA adapter (merged for fp32, exported for int8)")
    parser.add_argument("--export-dir", required=True, help="parley quantize output holding int8/ for --adapter")
    parser.add_argument("--prompts", type=int, default=30)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-append", action="store_true")
    args = parser.parse_args(argv)

    import torch
    from serving_engines import int8_kernels, load_prompts, peak_rss_kb  # this folder is on sys.path as a script

    from serving.engines import load_engine
    from serving.quantize.export import INT8_DIR

    torch.set_num_threads(args.threads)
    int8_dir = str(Path(args.export_dir) / INT8_DIR)
    specs = {
        "fp32": {"model": args.model, "adapter": args.adapter, "dtype": "float32"},
        "int8": {"artifact": int8_dir},
        "fp32-compiled": {"model": args.model, "adapter": args.adapter, "dtype": "float32", "compile": True},
        "int8-compiled": {"artifact": int8_dir, "compile": True},
    }
    engines, warm_up_s = {}, {}
    for name, spec in specs.items():
        print(f"torch_decode: loading {name} ...", file=sys.stderr, flush=True)
        engines[name] = load_engine("torch", **spec, threads=args.threads)
        started = time.perf_counter()
        engines[name].warm_up()
        warm_up_s[name] = round(time.perf_counter() - started, 1)
    prompts, source = load_prompts(args.prompts)
    rates: dict[str, list[float]] = {name: [] for name in engines}
    for index, row in enumerate(prompts):
        order = list(engines) if index % 2 == 0 else list(reversed(engines))  # no engine always goes first
        for name in order:
            engines[name].generate(row["messages"], row["context"], max_tokens=args.max_tokens, temperature=0.0,
                                   ignore_eos=True)
            rates[name].append(engines[name].last_stats.decode_tokens_per_s)
        print(f"torch_decode: prompt {index + 1}/{len(prompts)}", file=sys.stderr, flush=True)
    median = {name: round(statistics.median(values), 2) for name, values in rates.items()}
    record = {
        "benchmark": "torch_decode",
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "tokens_per_s": median,
        "int8_speedup_vs_fp32_eager": round(median["int8"] / median["fp32"], 2),
        "int8_speedup_vs_fp32_compiled": round(median["int8-compiled"] / median["fp32-compiled"], 2),
        "compiled_speedup": {"fp32": round(median["fp32-compiled"] / median["fp32"], 2),
                             "int8": round(median["int8-compiled"] / median["int8"], 2)},
        # per-prompt ratios (same prompt, back to back): their median is the least noise-prone number
        "int8_speedup_vs_fp32_compiled_paired_median": round(statistics.median(
            a / b for a, b in zip(rates["int8-compiled"], rates["fp32-compiled"], strict=True)), 2),
        "int8_speedup_vs_fp32_eager_paired_median": round(statistics.median(
            a / b for a, b in zip(rates["int8"], rates["fp32"], strict=True)), 2),
        "warm_up_s": warm_up_s,
        "peak_rss_mb_all_four": round(peak_rss_kb() / 1024, 1),
        "settings": {"model": args.model, "adapter": args.adapter, "prompts": len(prompts), "prompt_source": source,
                     "max_tokens": args.max_tokens, "ignore_eos": True, "greedy": True, "batch": 1,
                     "threads": args.threads, "int8_kernels": int8_kernels(),
                     "loadavg_after": [round(x, 2) for x in os.getloadavg()]},
    }
    from timing import report

    report(record, RESULTS, append=not args.no_append)
    return 0


if __name__ == "__main__":
    sys.exit(main())
