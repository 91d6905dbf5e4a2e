"""Torch engine decode speed, fp32 against int8, eager against compiled, interleaved in one process.

``benchmarks/serving_engines.py`` runs each engine in its own process one after another, so a machine whose speed
drifts by 20% between minutes moves its int8/fp32 ratio by as much. Here the four torch engines (fp32 and
int8, each eager and with compiled decoding) are loaded side by side and take turns prompt by prompt, so
every ratio compares runs made under the same conditions. Each prompt is decoded to exactly
``--max-tokens`` (EOS masked), greedy, batch 1. Prints one JSON line (medians over prompts and the
ratios) and appends it to ``benchmarks/results/torch_decode.jsonl``.

``--torchao`` adds two arms: the merged fp32 policy quantized by torchao's
``Int8DynamicActivationInt8WeightConfig`` (every ``nn.Linear``, lm_head included: ``quantize_``'s default), eager
and with the same compiled decoding, against the hand-written int8 (``serving/quantize/int8*.py``, SmoothQuant
at export, C++ GEMMs). Per arm the line also holds the median time to first token, the peak RSS of the arm alone
(each arm loaded, warmed up and run on one prompt in its own child process; ``--no-rss`` skips that) and, from a
second greedy pass in which answers stop at EOS, the greedy agreement with fp32 and, with ``--reward-dir``, the
mean composite-reward difference from fp32 (``serving_engines.token_agreement`` / ``composite_rewards``).

    python benchmarks/torch_decode.py --adapter runs/demo/ppo/policy_adapter --export-dir runs/demo/quantize \
        [--torchao --reward-dir runs/demo]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

RESULTS = ROOT / "benchmarks" / "results" / "torch_decode.jsonl"
HAND_ARMS = ("fp32", "int8", "fp32-compiled", "int8-compiled")
TORCHAO_ARMS = ("torchao-int8", "torchao-int8-compiled")
TORCHAO_CONFIG = ("Int8DynamicActivationInt8WeightConfig() (per-token symmetric int8 activations, per-row int8 "
                  "weights) on every nn.Linear, lm_head included (quantize_ default filter)")
TORCHAO_MISSING = "torchao is not installed: pip install 'parley[torchao]' (torchao==0.18.0), or leave out --torchao"


def torchao_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("torchao") is not None


def install_torchao_int_mm_workaround() -> None:
    """Make torchao's compiled int8 GEMM correct on CPU (pytorch/pytorch#195066, open; torch 2.13, torchao 0.18).

    Under inductor a one-token activation reaches ``torch._int_mm`` as a ``(1, K)`` view with row stride 0, and the
    oneDNN path returns garbage for it (eager never makes such a view). Compiled, the int8 activation is routed
    through an opaque op that returns a dense copy (K bytes per GEMM). Eager calls are untouched. Idempotent."""
    import torch
    import torchao.kernel.intmm as intmm

    if getattr(intmm._int_scaled_matmul_cpu, "parley_workaround", False):
        return

    @torch.library.custom_op("parley_bench::dense_rows", mutates_args=(), schema="(Tensor a) -> Tensor")
    def dense_rows(a):
        return torch.empty(a.shape, dtype=a.dtype, device=a.device).copy_(a)

    @dense_rows.register_fake
    def _(a):
        return torch.empty(a.shape, dtype=a.dtype, device=a.device)

    original = intmm._int_scaled_matmul_cpu

    def int_scaled_matmul_cpu(a, b, scales1):
        return original(dense_rows(a) if torch.compiler.is_compiling() else a, b, scales1)

    int_scaled_matmul_cpu.parley_workaround = True
    intmm._int_scaled_matmul_cpu = int_scaled_matmul_cpu


def load_torchao_engine(model: str, adapter: str | None, threads: int, compile: bool = False):
    """The merged fp32 policy, its linears quantized by torchao (int8 dynamic activations, int8 weights)."""
    from torchao.quantization import Int8DynamicActivationInt8WeightConfig, quantize_

    from serving.engines.torch_engine import TorchEngine

    engine = TorchEngine.from_pretrained(model, adapter=adapter, dtype="float32", threads=threads, compile=compile)
    if compile:
        install_torchao_int_mm_workaround()
    quantize_(engine.model, Int8DynamicActivationInt8WeightConfig())
    engine.description = f"torchao int8 dynamic-activation int8-weight:{model}+{adapter or 'no adapter'}" + (
        " compiled" if compile else "")
    return engine


def load_arm(name: str, args: argparse.Namespace):
    from serving.engines import load_engine
    from serving.quantize.export import INT8_DIR

    int8_dir = str(Path(args.export_dir) / INT8_DIR)
    compile = name.endswith("-compiled")
    if name.startswith("torchao"):
        return load_torchao_engine(args.model, args.adapter, args.threads, compile=compile)
    if name.startswith("int8"):
        return load_engine("torch", artifact=int8_dir, compile=compile, threads=args.threads)
    return load_engine("torch", model=args.model, adapter=args.adapter, dtype="float32", compile=compile,
                       threads=args.threads)


def warm_up(name: str, engine) -> float:
    """Compile (nothing for eager arms). torchao's subclass weights hide their GEMM code from the AOTAutograd cache
    key, so a cached graph from a run without the workaround could be served: that cache is off for its compile."""
    import torch

    started = time.perf_counter()
    if name.startswith("torchao"):
        with torch._functorch.config.patch(enable_autograd_cache=False):
            engine.warm_up()
    else:
        engine.warm_up()
    return round(time.perf_counter() - started, 1)


def rss_worker(name: str, args: argparse.Namespace) -> dict[str, Any]:
    """One arm alone in this process: load, warm up, one prompt at --max-tokens; its high-water RSS."""
    import torch
    from serving_engines import load_prompts, peak_rss_kb

    torch.set_num_threads(args.threads)
    engine = load_arm(name, args)
    warm_up(name, engine)
    row = load_prompts(1)[0][0]
    engine.generate(row["messages"], row["context"], max_tokens=args.max_tokens, temperature=0.0, ignore_eos=True)
    return {"arm": name, "peak_rss_mb": round(peak_rss_kb() / 1024, 1)}


def rss_per_arm(names: list[str], argv: list[str]) -> dict[str, float]:
    rss = {}
    for name in names:
        print(f"torch_decode: peak RSS of {name} alone (child process) ...", file=sys.stderr, flush=True)
        done = subprocess.run([sys.executable, __file__, *argv, "--rss-worker", name], capture_output=True,
                              text=True, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"RSS child for {name} failed:\n{done.stderr[-3000:]}")
        rss[name] = json.loads(done.stdout.strip().splitlines()[-1])["peak_rss_mb"]
    return rss


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--adapter", required=True, help="LoRA adapter (merged for fp32, exported for int8)")
    parser.add_argument("--export-dir", required=True, help="parley quantize output holding int8/ for --adapter")
    parser.add_argument("--prompts", type=int, default=30)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--torchao", action="store_true",
                        help="add torchao int8 dynamic-activation/int8-weight arms, eager and compiled "
                             "(needs the torchao extra)")
    parser.add_argument("--reward-dir", help="run folder with reward-quality/ etc.: reward delta vs fp32 per arm")
    parser.add_argument("--no-rss", action="store_true", help="skip the per-arm peak RSS child processes")
    parser.add_argument("--no-quality", action="store_true",
                        help="skip the quality pass (greedy agreement and reward delta vs fp32)")
    parser.add_argument("--no-append", action="store_true")
    parser.add_argument("--rss-worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.torchao and not torchao_available():
        parser.error(TORCHAO_MISSING)
    if args.rss_worker:
        print(json.dumps(rss_worker(args.rss_worker, args)))
        return 0

    import torch
    from serving_engines import (  # this folder is on sys.path as a script
        composite_rewards,
        int8_kernels,
        load_prompts,
        paired_delta,
        peak_rss_kb,
        token_agreement,
    )

    from groundwork.models import load_tokenizer

    torch.set_num_threads(args.threads)
    names = list(HAND_ARMS) + (list(TORCHAO_ARMS) if args.torchao else [])
    rss = {} if args.no_rss else rss_per_arm(names, argv)
    engines, warm_up_s = {}, {}
    for name in names:  # the torchao arms load last: quantize_ sets torchao's recommended inductor options
        print(f"torch_decode: loading {name} ...", file=sys.stderr, flush=True)
        engines[name] = load_arm(name, args)
        warm_up_s[name] = warm_up(name, engines[name])
    prompts, source = load_prompts(args.prompts)
    rates: dict[str, list[float]] = {name: [] for name in engines}
    ttfts: dict[str, list[float]] = {name: [] for name in engines}
    for index, row in enumerate(prompts):
        order = list(engines) if index % 2 == 0 else list(reversed(engines))  # no engine always goes first
        for name in order:
            engines[name].generate(row["messages"], row["context"], max_tokens=args.max_tokens, temperature=0.0,
                                   ignore_eos=True)
            rates[name].append(engines[name].last_stats.decode_tokens_per_s)
            ttfts[name].append(engines[name].last_stats.ttft_s * 1000)
        print(f"torch_decode: prompt {index + 1}/{len(prompts)}", file=sys.stderr, flush=True)
    median = {name: round(statistics.median(values), 2) for name, values in rates.items()}
    quality: dict[str, Any] = {}
    reward_note = "no quality pass (--no-quality)"
    if not args.no_quality:  # answers that stop at EOS, as served
        print("torch_decode: quality pass (answers stop at EOS) ...", file=sys.stderr, flush=True)
        outputs = {name: [engine.generate(row["messages"], row["context"], max_tokens=args.max_tokens,
                                          temperature=0.0) for row in prompts] for name, engine in engines.items()}
        for engine in engines.values():
            engine.close()
        engines.clear()
        rewards, reward_note = composite_rewards(args.reward_dir, prompts, outputs)
        tokenizer = load_tokenizer(args.model)
        for name, texts in outputs.items():
            cell: dict[str, Any] = {
                "greedy_agreement": token_agreement(tokenizer, outputs["fp32"], texts),
                "exact_match": round(statistics.mean(a == b for a, b in zip(outputs["fp32"], texts, strict=True)),
                                     3)}
            if rewards:
                delta, error = paired_delta(rewards[name], rewards["fp32"])
                cell |= {"reward_delta": round(delta, 4), "reward_delta_se": round(error, 4),
                         "reward_mean": round(statistics.mean(rewards[name]), 4)}
            quality[name] = cell
    arms = {name: {"tokens_per_s": median[name], "ttft_ms": round(statistics.median(ttfts[name]), 1),
                   "peak_rss_mb": rss.get(name), "warm_up_s": warm_up_s[name], **quality.get(name, {})}
            for name in names}
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
        "arms": arms,
        "peak_rss_mb_all_arms": round(peak_rss_kb() / 1024, 1),
        "settings": {"model": args.model, "adapter": args.adapter, "prompts": len(prompts), "prompt_source": source,
                     "max_tokens": args.max_tokens, "ignore_eos": True, "greedy": True, "batch": 1,
                     "threads": args.threads, "int8_kernels": int8_kernels(),
                     "ttft_ms": "median over prompts of the speed pass's time to the first generated token",
                     "peak_rss_mb": "each arm alone in a child process: load, warm up, one prompt (VmHWM)",
                     "quality": "greedy pass stopping at EOS, max_tokens as above; agreement and reward vs fp32 eager",
                     "reward": reward_note, "loadavg_after": [round(x, 2) for x in os.getloadavg()]},
    }
    if args.torchao:
        import torchao

        record["hand_int8_vs_torchao_paired_median"] = {
            "eager": round(statistics.median(a / b for a, b in zip(rates["int8"], rates["torchao-int8"],
                                                                    strict=True)), 2),
            "compiled": round(statistics.median(a / b for a, b in zip(
                rates["int8-compiled"], rates["torchao-int8-compiled"], strict=True)), 2)}
        record["settings"] |= {"torchao": torchao.__version__, "torchao_config": TORCHAO_CONFIG,
                               "torchao_compiled_workaround": "pytorch/pytorch#195066: the compiled int8 "
                               "activation is copied dense before torch._int_mm (else garbage tokens)"}
    from timing import report

    report(record, RESULTS, append=not args.no_append)
    return 0


if __name__ == "__main__":
    sys.exit(main())
