"""Serving benchmark: the tuned model in every engine/format against llama.cpp on the untouched base GGUF.

One run measures, on the same held-out support prompts (with their KB context, rendered by
``build_messages``), greedy, batch 1, a fixed thread count: decode tokens/s and time to first token
(medians over prompts; every engine decodes exactly ``--max-tokens`` per prompt with EOS masked, so a
model that answers in 8 tokens is not timed on 8 and one that rambles on 128), peak RSS (each engine
in its own child process), artifact size, and quality against the merged fp32 model (greedy token
agreement; composite reward delta when ``--reward-dir`` holds trained reward models), from a second pass
in which answers stop at EOS. Prints one JSON line and appends it to ``benchmarks/results/serving.jsonl``.

    python benchmarks/serving_engines.py [--adapter DIR] [--reward-dir RUN/] [--rounds 3] [--quality-prompts 169]
        [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

RESULTS = ROOT / "benchmarks" / "results" / "serving.jsonl"
FALLBACK_PROMPTS = [
    ("How long do I have to return an item?", "Items can be returned within 30 days of delivery if unused."),
    ("Can I cancel my order?", "Orders can be cancelled free of charge within 1 hour of placing them."),
    ("When will my refund arrive?", "Refunds are issued to the original payment method within 5 business days."),
    ("Do you ship to Canada?", "We ship to the US, Canada and the EU. Canadian orders arrive in 5-8 days."),
    ("My parcel shows delivered but I don't have it.", "If a parcel marked delivered is missing, wait 24 hours, "
                                                       "then contact us and we open a carrier investigation."),
]


def load_prompts(n: int) -> tuple[list[dict[str, Any]], str]:
    """Held-out support rows (messages + KB context): the PPO held-out support prompts first, then the SFT held-out
    support questions (their reference answer dropped), so the first 30 are the same in every run whatever ``n`` is;
    the built-in list only when data/ is absent."""
    from groundwork.data_loading import load_ppo_prompts, load_support

    data = ROOT / "data"
    candidates = []
    if (data / "ppo" / "heldout.jsonl").is_file():
        candidates += [(r["messages"], r["context"], "data/ppo/heldout.jsonl")
                       for r in load_ppo_prompts(data, "heldout") if r.get("kind") == "support"]
    if (data / "support" / "heldout.jsonl").is_file():
        candidates += [(r["messages"][:-1], r["context"], "data/support/heldout.jsonl")  # the engines answer
                       for r in load_support(data, "heldout")]
    rows, sources, seen = [], [], set()
    for messages, context, source in candidates:
        if len(rows) < n and messages[-1]["content"] not in seen:
            seen.add(messages[-1]["content"])
            rows.append({"messages": messages, "context": context})
            sources += [source] if source not in sources else []
    if rows:
        return rows, " + ".join(sources)
    rows = [{"messages": [{"role": "user", "content": q}], "context": c} for q, c in FALLBACK_PROMPTS]
    return (rows * (n // len(rows) + 1))[:n], "built-in fallback"


# ---------------------------------------------------------------- child process: one engine, all prompts

def peak_rss_kb() -> int:
    """This process's own high-water RSS (VmHWM): ``ru_maxrss`` would include the parent's peak from fork."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def run_worker(spec: dict[str, Any]) -> dict[str, Any]:
    import torch

    from serving.engines import load_engine

    torch.set_num_threads(spec["threads"])
    started = time.perf_counter()
    if spec["kind"] == "torchao":  # the merged policy quantized by torchao at load (no artifact on disk)
        from torch_decode import load_torchao_engine

        engine = load_torchao_engine(**spec["engine_args"], threads=spec["threads"])
    else:
        engine = load_engine(spec["kind"], **spec["engine_args"], threads=spec["threads"])
    load_s = time.perf_counter() - started
    rows = spec["prompts"]
    quality_rows = spec.get("quality_prompts") or rows
    started = time.perf_counter()
    if hasattr(engine, "warm_up"):
        engine.warm_up()  # compiled engines compile here, not inside a timed prompt
    engine.generate(rows[0]["messages"], rows[0]["context"], max_tokens=8)  # warm-up (allocations, kernels)
    warm_up_s = time.perf_counter() - started
    outputs, natural_rates, tokens = [], [], 0
    for row in [] if spec.get("speed_only") else quality_rows:  # quality pass: answers as long as the model makes
        text = engine.generate(row["messages"], row["context"], max_tokens=spec["max_tokens"], temperature=0.0)
        stats = engine.last_stats
        outputs.append(text)
        tokens += stats.completion_tokens
        if stats.decode_tokens_per_s is not None:
            natural_rates.append(stats.decode_tokens_per_s)
    rates, ttfts = [], []
    for row in rows:  # speed pass: exactly max_tokens per prompt (EOS masked), the same work for every engine
        engine.generate(row["messages"], row["context"], max_tokens=spec["max_tokens"], temperature=0.0,
                        ignore_eos=True)
        stats = engine.last_stats
        if stats.completion_tokens != spec["max_tokens"]:
            raise RuntimeError(f"{spec['name']}: speed pass generated {stats.completion_tokens} tokens, "
                               f"not {spec['max_tokens']}")
        rates.append(stats.decode_tokens_per_s)
        ttfts.append(stats.ttft_s * 1000)
    peak_kb = peak_rss_kb()
    return {"outputs": outputs, "tokens_per_s": round(statistics.median(rates), 2),
            "tokens_per_s_natural_length": round(statistics.median(natural_rates), 2) if natural_rates else None,
            "ttft_ms": round(statistics.median(ttfts), 1), "peak_rss_mb": round(peak_kb / 1024, 1),
            "load_s": round(load_s, 2), "warm_up_s": round(warm_up_s, 2), "generated_tokens": tokens,
            "engine": getattr(engine, "description", ""), "int8_kernels": int8_kernels()}


def int8_kernels() -> str:
    """Which kernels ran the int8 GEMMs in this process: "c++" (int8_native.cpp) or "python"."""
    from serving.quantize import int8_ops

    return "c++" if int8_ops.native_kernels_loaded() else "python"


def spawn_worker(spec: dict[str, Any]) -> dict[str, Any]:
    """Each engine in a fresh interpreter, so peak RSS belongs to that engine alone."""
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump(spec, handle)
    try:
        done = subprocess.run([sys.executable, __file__, "--worker", handle.name], capture_output=True, text=True,
                              check=False)
    finally:
        os.unlink(handle.name)
    if done.returncode != 0:
        raise RuntimeError(f"{spec['name']} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------- quality

def token_agreement(tokenizer, reference: list[str], candidate: list[str]) -> float:
    """Greedy agreement: share of the reference's tokens generated identically before the first divergence (the
    plan search's own measure)."""
    from serving.quantize.plan_search import token_agreement as agreement

    return round(agreement(tokenizer, reference, candidate), 4)


def composite_rewards(reward_dir: str | None, prompts: list[dict], outputs: dict[str, list[str]]):
    """Per-prompt composite rewards per variant (the routed composite PPO and the plan search use), or None
    without reward models."""
    if not reward_dir:
        return None, "no --reward-dir given"
    try:
        from groundwork.sections.reward import CompositeSection
        from parley.quantize_commands import composite_scorer

        score = composite_scorer(reward_dir, CompositeSection())
    except Exception as exc:  # noqa: BLE001 - any failure means "no reward numbers", reported as such
        return None, f"reward models unavailable: {type(exc).__name__}: {exc}"
    per_prompt = {name: score(prompts, texts) for name, texts in outputs.items()}
    return per_prompt, (f"composite_scorer({reward_dir}): routed by the request-risk model when the run has one, "
                        "with the form penalty")


def paired_delta(candidate: list[float], reference: list[float]) -> tuple[float, float]:
    """Mean per-prompt reward difference and its standard error: one prompt whose greedy answer diverges moves a
    30-prompt mean by ~0.05, so a delta is only read together with its error."""
    differences = [a - b for a, b in zip(candidate, reference, strict=True)]
    error = statistics.stdev(differences) / len(differences) ** 0.5 if len(differences) > 1 else 0.0
    return statistics.mean(differences), error


# ---------------------------------------------------------------- driver

def ensure_export(model: str, adapter: str, out: Path, auto_plan: bool = False,
                  reward_dir: str | None = None) -> dict[str, Any]:
    """Every artifact the arms load; with ``auto_plan`` also ``parley quantize --plan auto``'s file, searched on
    the support *train* prompts (the quality pass here uses the held-out ones)."""
    from serving.quantize import QuantizeSettings, adapter_sha256, quantize, read_manifest
    from serving.quantize.manifest import MANIFEST_FILE

    wanted = adapter_sha256(adapter)
    needed = {"int8", "gguf-q8_0", "gguf-q4_0", "gguf-q4_1", "gguf-q4_1+lora", "gguf-mixed-q8_0"}
    needed |= {"gguf-auto"} if auto_plan else set()
    if (out / MANIFEST_FILE).is_file():
        manifest = read_manifest(out)
        have = {a["format"] for a in manifest["artifacts"]}
        if manifest.get("adapter_sha256") == wanted and needed <= have:
            return manifest
    prompts = scorer = None
    if auto_plan:
        from groundwork.recipe import load_recipe
        from parley.quantize_commands import plan_inputs

        prompts, scorer = plan_inputs(load_recipe(None, [f"data.data_dir={ROOT / 'data'}"]), reward_dir)
    return quantize(model, adapter, out, QuantizeSettings(formats=("int8", "gguf"),
                                                          gguf_types=("q8_0", "q4_0", "q4_1", "mixed-q8_0"),
                                                          verify=False, plan="auto" if auto_plan else None),
                    plan_prompts=prompts, plan_scorer=scorer)


def served_default(results: dict[str, dict[str, Any]], manifest: dict[str, Any], export: Path) -> dict[str, Any]:
    """Which arm ``parley serve`` loads for a run with these artifacts (groundwork.runs.served_run_overrides: the
    plan file when one was written and llama.cpp is installed, else the int8 model) and its time to first token
    (median over the speed pass's prompts, each with its own KB context, after the other prompts)."""
    from serving.engines.llamacpp_engine import llama_cpp_available
    from serving.quantize.export import PLAN_GGUF

    name = "auto-plan" if (export / PLAN_GGUF).is_file() and llama_cpp_available() else "torch-int8"
    arm = results.get(name, {})
    plan = {a["format"]: a for a in manifest.get("artifacts", [])}.get("gguf-auto", {})
    return {"served_default_engine": name, "served_default_ttft_ms": arm.get("ttft_ms"),
            "auto_plan": {k: plan[k] for k in ("plan_summary", "size_bytes") if k in plan}
            | ({"search": {k: v for k, v in plan["search"].items() if k != "plan"}} if "search" in plan else {})}


def fp32_size(model: str) -> int:
    from groundwork.models import resolve_model

    folder = Path(resolve_model(model))
    return sum(p.stat().st_size for p in folder.glob("*.safetensors"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--adapter", help="LoRA adapter (default: a fresh random r=16 LoRA on all linear layers)")
    parser.add_argument("--export-dir", help="parley quantize output to use or create (default: temp dir)")
    parser.add_argument("--reward-dir", help="run folder with reward-quality/ etc. for reward_delta")
    parser.add_argument("--prompts", type=int, default=30)
    parser.add_argument("--quality-prompts", type=int,
                        help="held-out support prompts for the quality pass (token agreement, reward delta); default "
                             "--prompts. The speed pass always uses the first --prompts of them. A format's reward "
                             "delta on 30 prompts has a standard error (~0.08) larger than the 0.05 it is held to")
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--engines", default="torch-fp32,torch-int8,torch-fp32-compiled,torch-int8-compiled,"
                                              "torch-int8-unfused,llamacpp-q8_0,llamacpp-q4_0,llamacpp-q4_1,llamacpp-q4_1-lora,"
                                              "llamacpp-mixed-q8_0,auto-plan,base-llamacpp-q4_1")
    parser.add_argument("--rounds", type=int, default=1,
                        help="repeat the speed pass of the --round-engines this many times in alternating order, "
                             "each in a fresh process; tokens/s is the median over rounds and each engine's ratio "
                             "to the base anchor is also taken round by round (machine drift cancels)")
    parser.add_argument("--round-engines", default="llamacpp-q8_0,llamacpp-q4_0,llamacpp-mixed-q8_0,auto-plan,"
                                                    "base-llamacpp-q4_1",
                        help="engines repeated in rounds 2..N (the cheap ones; torch fp32 takes minutes a pass)")
    parser.add_argument("--quick", action="store_true", help="5 prompts, 32 tokens (development)")
    parser.add_argument("--no-append", action="store_true", help="print only; do not append to results")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(run_worker(json.loads(Path(args.worker).read_text()))))
        return 0
    if args.quick:
        args.prompts, args.max_tokens = 5, 32

    from groundwork.layout import RunLayout
    from groundwork.models import load_tokenizer, smollm2_gguf_path
    from serving.quantize import adapter_sha256, make_random_lora
    from serving.quantize.export import INT8_DIR
    from serving.quantize.int8 import WEIGHTS_FILE

    load_before = os.getloadavg()
    work = Path(tempfile.mkdtemp(prefix="parley-bench-"))
    adapter = args.adapter or str(make_random_lora(args.model, work / "random-lora", r=16, scale=0.01, seed=0))
    export = Path(args.export_dir) if args.export_dir else RunLayout(work).quantize
    started = time.time()
    engines = [n.strip() for n in args.engines.split(",") if n.strip()]
    manifest = ensure_export(args.model, adapter, export, auto_plan="auto-plan" in engines, reward_dir=args.reward_dir)
    export_s = round(time.time() - started, 1)
    int8_dir = export / INT8_DIR
    int8_size = (int8_dir / WEIGHTS_FILE).stat().st_size
    sizes = {a["format"]: a["size_bytes"] for a in manifest["artifacts"]}
    quality_prompts, source = load_prompts(max(args.prompts, args.quality_prompts or args.prompts))
    prompts = quality_prompts[:args.prompts]
    quality_prompts = quality_prompts[:args.quality_prompts or args.prompts]

    variants = {
        "torch-fp32": ("torch", {"model": args.model, "adapter": adapter, "dtype": "float32"}, fp32_size(args.model)),
        "torch-bf16": ("torch", {"model": args.model, "adapter": adapter, "dtype": "bfloat16"},
                       fp32_size(args.model) // 2),
        "torch-int8": ("torch", {"artifact": str(int8_dir)}, int8_size),
        "torch-fp32-compiled": ("torch", {"model": args.model, "adapter": adapter, "dtype": "float32",
                                          "compile": True}, fp32_size(args.model)),
        "torch-int8-compiled": ("torch", {"artifact": str(int8_dir), "compile": True}, int8_size),
        "torch-int8-unfused": ("torch", {"artifact": str(int8_dir), "fuse_int8": False}, int8_size),
        # torchao's int8 dynamic-activation/int8-weight linears (parley[torchao]) beside the hand-written int8;
        # the size is its int8 weights as the int8 artifact stores them (torchao quantizes at load).
        "torchao-int8": ("torchao", {"model": args.model, "adapter": adapter}, int8_size),
        "torchao-int8-compiled": ("torchao", {"model": args.model, "adapter": adapter, "compile": True}, int8_size),
        "llamacpp-q8_0": ("llamacpp", {"artifact": str(export), "gguf_type": "q8_0"}, sizes["gguf-q8_0"]),
        "llamacpp-q4_0": ("llamacpp", {"artifact": str(export), "gguf_type": "q4_0"}, sizes["gguf-q4_0"]),
        "llamacpp-q4_1": ("llamacpp", {"artifact": str(export), "gguf_type": "q4_1"}, sizes["gguf-q4_1"]),
        "llamacpp-q4_1-lora": ("llamacpp", {"artifact": str(export), "gguf_type": "q4_1+lora"},
                               sizes.get("gguf-q4_1+lora", 0)),
        # The base GGUF's own Q4_1 bytes where the adapter changed nothing, Q8_0 for the layers it changed.
        "llamacpp-mixed-q8_0": ("llamacpp", {"artifact": str(export), "gguf_type": "mixed-q8_0"},
                                sizes["gguf-mixed-q8_0"]),
        # parley quantize --plan auto: per-layer-group types chosen by measured agreement, reward and speed.
        "auto-plan": ("llamacpp", {"artifact": str(export), "gguf_type": "auto"}, sizes.get("gguf-auto", 0)),
        "base-llamacpp-q4_1": ("llamacpp", {"artifact": str(smollm2_gguf_path()), "model": args.model},
                               smollm2_gguf_path().stat().st_size),
    }
    results: dict[str, dict[str, Any]] = {}
    repeated = [n for n in engines if n in {e.strip() for e in args.round_engines.split(",")}]
    rounds: dict[str, list[float]] = {}
    for round_index in range(max(1, args.rounds)):
        names = engines if round_index == 0 else repeated if round_index % 2 == 0 else repeated[::-1]
        for name in names:
            kind, engine_args, size = variants[name]
            print(f"benchmark: round {round_index + 1}: {name} ...", file=sys.stderr, flush=True)
            spec = {"name": name, "kind": kind, "engine_args": engine_args, "threads": args.threads,
                    "max_tokens": args.max_tokens, "prompts": prompts, "quality_prompts": quality_prompts,
                    "speed_only": round_index > 0}
            result = spawn_worker(spec)
            rounds.setdefault(name, []).append(result["tokens_per_s"])
            if round_index == 0:
                results[name] = result | {"size_mb": round(size / 1e6, 1)}
            print(f"benchmark: {name}: {result['tokens_per_s']} tok/s, ttft {result['ttft_ms']} ms, "
                  f"rss {result['peak_rss_mb']} MB", file=sys.stderr, flush=True)
    for name, rates in rounds.items():
        results[name]["tokens_per_s_rounds"] = rates
        results[name]["tokens_per_s"] = round(statistics.median(rates), 2)
    anchor_rounds = rounds.get("base-llamacpp-q4_1", [])
    for name, rates in rounds.items():
        if anchor_rounds and len(rates) == len(anchor_rounds) and len(rates) > 1 and not name.startswith("base-"):
            # Same round = neighbouring processes: the median of these ratios is the drift-resistant figure.
            results[name]["ratio_vs_base_by_round"] = [round(a / b, 3) for a, b in zip(rates, anchor_rounds,
                                                                                         strict=True)]
            results[name]["ratio_vs_base_paired"] = round(statistics.median(results[name]["ratio_vs_base_by_round"]),
                                                          3)
    base_median = statistics.median(anchor_rounds) if anchor_rounds else None
    for name, result in results.items():  # paired where rounds were run, else the plain ratio of medians
        if not name.startswith("base-") and base_median:
            result["ratio_vs_llamacpp_base"] = result.get("ratio_vs_base_paired") or round(
                result["tokens_per_s"] / base_median, 3)

    tokenizer = load_tokenizer(args.model)
    reference = results.get("torch-fp32", {}).get("outputs")
    tuned = {n: r["outputs"] for n, r in results.items() if not n.startswith("base-")}
    rewards, reward_note = composite_rewards(args.reward_dir, quality_prompts, tuned)
    for name, result in results.items():
        result["token_agreement"] = token_agreement(tokenizer, reference, result["outputs"]) if reference else None
        result["greedy_agreement"] = result["token_agreement"]  # the name the plan's goals use (issue 28)
        result["exact_match"] = (round(statistics.mean(a == b for a, b in zip(reference, result["outputs"],
                                                                               strict=True)), 3)
                                 if reference else None)
        if rewards and name in rewards and "torch-fp32" in rewards:
            delta, error = paired_delta(rewards[name], rewards["torch-fp32"])
            result["reward_delta"], result["reward_delta_se"] = round(delta, 4), round(error, 4)
        else:
            result["reward_delta"] = result["reward_delta_se"] = None
        result["reward_mean"] = round(statistics.mean(rewards[name]), 4) if rewards and name in rewards else None
        result["sample"] = result["outputs"][0][:160]
        del result["outputs"]
    base_rate = results.get("base-llamacpp-q4_1", {}).get("tokens_per_s")
    tuned_rates = {n: r["tokens_per_s"] for n, r in results.items() if not n.startswith("base-") and r["tokens_per_s"]}
    best = max(tuned_rates, key=tuned_rates.get) if tuned_rates else None
    fp32 = results.get("torch-fp32", {})
    # A "tuned" export that answers like the base model (agreement with the tuned fp32 model under 0.5) does
    # not count as serving the tuned model: the ratio over the faithful ones is reported beside the plain one.
    faithful = {n: rate for n, rate in tuned_rates.items()
                if (results[n].get("token_agreement") or 0) >= 0.5}
    best_faithful = max(faithful, key=faithful.get) if faithful else None
    record = {
        "benchmark": "serving",
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "ratio_vs_llamacpp_base": round(tuned_rates[best] / base_rate, 3) if best and base_rate else None,
        "best_tuned_engine": best,
        "ratio_vs_llamacpp_base_faithful": (round(faithful[best_faithful] / base_rate, 3)
                                            if best_faithful and base_rate else None),
        "best_faithful_engine": best_faithful,
        "int8_speedup_vs_fp32": (round(results["torch-int8"]["tokens_per_s"] / fp32["tokens_per_s"], 2)
                                 if "torch-int8" in results and fp32.get("tokens_per_s") else None),
        "int8_speedup_vs_fp32_compiled": (
            round(results["torch-int8-compiled"]["tokens_per_s"] / results["torch-fp32-compiled"]["tokens_per_s"], 2)
            if results.get("torch-int8-compiled", {}).get("tokens_per_s")
            and results.get("torch-fp32-compiled", {}).get("tokens_per_s") else None),
        "size_ratio_vs_fp32": {n: round(r["size_mb"] / fp32["size_mb"], 3) for n, r in results.items()
                               if fp32.get("size_mb") and not n.startswith("base-")},
        **served_default(results, manifest, export),
        "engines": results,
        "settings": {
            "model": args.model, "adapter": adapter if args.adapter else f"random LoRA r=16 scale=0.01 ({adapter})",
            "adapter_sha256": adapter_sha256(adapter), "prompts": len(prompts),
            "quality_prompts": len(quality_prompts), "prompt_source": source,
            "max_tokens": args.max_tokens, "greedy": True, "batch": 1, "threads": args.threads,
            "tokens_per_s": "median over prompts of (completion_tokens - 1) / (total - ttft), each prompt decoded to "
                            "exactly max_tokens with EOS masked (ignore_eos); tokens_per_s_natural_length: the same "
                            "over the quality pass's answers, which stop at EOS (short for a tuned model)",
            "reward": reward_note, "export_s": export_s, "loadavg_before": [round(x, 2) for x in load_before],
            "loadavg_after": [round(x, 2) for x in os.getloadavg()], "cpu": platform.processor() or platform.machine(),
            "quick": args.quick, "rounds": max(1, args.rounds),
            "round_engines": repeated if args.rounds > 1 else [],
        },
    }
    from timing import report

    report(record, RESULTS, append=not args.no_append)
    return 0


if __name__ == "__main__":
    sys.exit(main())
