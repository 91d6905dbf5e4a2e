"""``parley quantize``: merge the adapter once, then write every requested artifact and the manifest."""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from groundwork.sections.quantize import DEFAULT_GGUF_TYPES
from serving.quantize.errors import QuantizeError, UnsupportedArchitectureError
from serving.quantize.gguf_export import GGUF_TYPES, LOW_BIT_TYPES, check_gguf, export_gguf
from serving.quantize.gguf_mixed import MIXED_PREFIX, export_gguf_mixed, mixed_changed_type
from serving.quantize.int8 import save_int8
from serving.quantize.manifest import dir_size, write_manifest
from serving.quantize.merge import adapter_sha256, load_merged
from serving.quantize.plan_search import PlanSearchSettings, Scorer

FORMATS = ("int8", "gguf", "merged")
AUTO = "auto"
PLAN_GGUF = "model-auto.gguf"
INT8_DIR = "int8"
MERGED_DIR = "merged"
LORA_GGUF = "adapter-lora.gguf"


def gguf_name(qtype: str) -> str:
    return f"model-{qtype.lower()}.gguf"


def base_gguf_name(qtype: str) -> str:
    return f"base-{qtype.lower()}.gguf"


@dataclass
class QuantizeSettings:
    """What to write. ``merged`` is the fp32 merged model (what the CUDA NF4 path loads)."""

    formats: tuple[str, ...] = ("int8", "gguf")
    gguf_types: tuple[str, ...] = DEFAULT_GGUF_TYPES
    base_gguf: str | None = None
    verify: bool = True
    # With an adapter, 4/5-bit types also get the unmerged base at that type plus the LoRA as a llama.cpp
    # adapter (see gguf_lora: merging into a base already on the 4-bit grid rounds the tuning away).
    gguf_lora: bool = True
    # "auto" (search, see plan_search), a plan JSON path, or None; written as model-auto.gguf.
    plan: str | None = None
    plan_search: PlanSearchSettings | None = None

    def validate(self) -> None:
        unknown = [f for f in self.formats if f not in FORMATS]
        if unknown or not self.formats:
            raise QuantizeError(f"unknown format(s) {unknown}; choose from {', '.join(FORMATS)}")
        bad = [t for t in self.gguf_types if t.lower() not in GGUF_TYPES and not mixed_changed_type(t)]
        if bad:
            raise QuantizeError(f"unknown GGUF type(s) {bad}; choose from {', '.join(GGUF_TYPES)} or "
                                f"{MIXED_PREFIX}<type> (e.g. {MIXED_PREFIX}q8_0)")
        if self.plan is not None and self.plan != AUTO and not Path(self.plan).is_file():
            raise QuantizeError(f"quantize.plan is 'auto' or a plan JSON file; {self.plan} does not exist")
        if self.plan is not None and "gguf" not in self.formats:
            raise QuantizeError("quantize.plan writes a GGUF: add gguf to quantize.formats")
        if self.plan_search is not None:
            self.plan_search.validate()


def quantize(model: str, adapter: str | None, out_dir: str | Path,
             settings: QuantizeSettings | None = None, plan_prompts: list[dict[str, Any]] | None = None,
             plan_scorer: Scorer | None = None, system_prompt: str | None = None) -> dict[str, Any]:
    """Merge ``adapter`` into ``model`` and export; returns the manifest written to ``out_dir``.

    ``plan_prompts`` (conversations with KB context, never the final evaluation's) and ``plan_scorer``
    (composite reward per answer, optional) feed ``settings.plan == "auto"``.
    """
    settings = settings or QuantizeSettings()
    settings.validate()
    adapter_hash = adapter_sha256(adapter) if adapter else None
    out = Path(out_dir)
    merged, tokenizer = load_merged(model, adapter)
    skipped: dict[str, dict[str, Any]] = {}
    gguf_reason = _gguf_unavailable(merged, tokenizer, settings) if "gguf" in settings.formats else None
    if gguf_reason:  # before writing anything; the other formats still go ahead
        print(f"parley quantize: GGUF skipped: {gguf_reason}", file=sys.stderr)
        skipped["gguf"] = {"skipped": gguf_reason}
    out.mkdir(parents=True, exist_ok=True)
    tokenizer.save_pretrained(out)  # engines render prompts with the same HF chat template next to every artifact
    provenance = {"base": model, "adapter_sha256": adapter_hash or "none"}
    artifacts: list[dict[str, Any]] = []

    if "merged" in settings.formats:
        started = time.time()
        merged.save_pretrained(out / MERGED_DIR)
        tokenizer.save_pretrained(out / MERGED_DIR)
        artifacts.append({"format": "merged", "method": "peft merge_and_unload, fp32 safetensors; load with "
                          "serving.quantize.bnb.load_nf4 for bitsandbytes NF4 on CUDA", "path": MERGED_DIR,
                          "size_bytes": dir_size(out / MERGED_DIR), "seconds": round(time.time() - started, 2)})

    if "gguf" in settings.formats and not gguf_reason:
        for qtype in settings.gguf_types:
            started = time.time()
            try:
                entry = _export_one_gguf(merged, out, qtype.lower(), settings, tokenizer, provenance)
            except UnsupportedArchitectureError as exc:  # e.g. mixed-<type> without a base GGUF of this model
                print(f"parley quantize: gguf-{qtype.lower()} skipped: {exc}", file=sys.stderr)
                skipped.setdefault("gguf", {}).setdefault("skipped_types", {})[qtype.lower()] = str(exc)
                continue
            entry["seconds"] = round(time.time() - started, 2)
            if settings.verify:
                from serving.quantize.verify import verify_gguf

                entry["verify_vs_merged_fp32"] = verify_gguf(merged, tokenizer, out / gguf_name(qtype))
            artifacts.append(entry)
        from serving.engines.llamacpp_engine import llama_cpp_available

        if settings.plan == AUTO and not llama_cpp_available():  # it measures plans in llama.cpp
            reason = "quantize.plan auto measures plans in llama.cpp: pip install 'parley[llamacpp]'"
            print(f"parley quantize: plan skipped: {reason}", file=sys.stderr)
            skipped["plan"] = {"skipped": reason}
        elif settings.plan is not None:
            artifacts.append(_export_plan(merged, out, settings, tokenizer, provenance, plan_prompts, plan_scorer,
                                          system_prompt))
        low_bit = [t.lower() for t in settings.gguf_types if t.lower() in LOW_BIT_TYPES]
        if adapter and settings.gguf_lora and low_bit:
            artifacts.extend(_export_base_plus_lora(model, adapter, merged.config, out, low_bit, settings,
                                                    tokenizer, provenance))

    if "int8" in settings.formats:  # last: quantizes ``merged`` in place
        started = time.time()
        save_int8(merged, tokenizer, out / INT8_DIR, settings={"base": model, "adapter_sha256": adapter_hash})
        artifacts.append({"format": "int8", "method": "SmoothQuant-style smoothing (alpha 0.7, 8 built-in "
                          "prompts, folded into norms/up/v) then symmetric per-row int8 weights (Linear + embedding; "
                          "tied lm_head shares the int8 embedding); fbgemm dynamic int8 Linear, activations "
                          "quantized per token; the head runs its int8 rows as fp16 against fp32 activations; "
                          "q/k/v and gate/up fused at load; reload needs no calibration",
                          "path": INT8_DIR, "size_bytes": dir_size(out / INT8_DIR),
                          "seconds": round(time.time() - started, 2)})

    write_manifest(out, base=model, adapter=str(adapter) if adapter else None, adapter_sha256=adapter_hash,
                   artifacts=artifacts, settings=asdict(settings) | {"merge": "peft merge_and_unload (fp32)"},
                   skipped=skipped)
    from serving.quantize.manifest import read_manifest

    return read_manifest(out)


def _gguf_unavailable(merged, tokenizer, settings: QuantizeSettings) -> str | None:
    """Why no GGUF can be written for this model (architecture, rotary, tokenizer), or None."""
    try:
        check_gguf(merged.config)
        if settings.base_gguf is None:
            from serving.quantize.gguf_vocab import check_hf_tokenizer

            check_hf_tokenizer(tokenizer, merged.config.vocab_size)
    except UnsupportedArchitectureError as exc:
        return str(exc)
    return None


def _export_one_gguf(merged, out: Path, qtype: str, settings: QuantizeSettings, tokenizer,
                     provenance: dict[str, str]) -> dict[str, Any]:
    """Write ``model-<qtype>.gguf`` and return its manifest entry (without timing or verification)."""
    changed = mixed_changed_type(qtype)
    if changed:
        summary = export_gguf_mixed(merged, out / gguf_name(qtype), changed, settings.base_gguf, tokenizer,
                                    provenance)
        method = (f"the base GGUF's own bytes (its types) for the {summary['copied_tensors']} tensors the adapter "
                  f"left unchanged (dequantized base == merged fp32 in llama.cpp's q/k layout), "
                  f"{changed.upper()} via gguf.quants.quantize for the {summary['requantized_tensors']} changed "
                  f"ones (1-D F32); base GGUF metadata + tokenizer")
        extra = {key: summary[key] for key in ("copied_tensors", "requantized_tensors", "requantized_blocks")}
    else:
        summary = export_gguf(merged, out / gguf_name(qtype), qtype, settings.base_gguf, tokenizer, provenance)
        method = (f"gguf.quants.quantize (numpy); {summary['arch']} tensor names and hyper-parameters; "
                  + ("base GGUF metadata + tokenizer" if summary["base_gguf"] else "tokenizer + chat template written "
                     "from the HF tokenizer") + "; 1-D norms F32" + ("; token_embd Q8_0" if qtype in LOW_BIT_TYPES
                                                                     else ""))
        extra = {}
    return {"format": f"gguf-{qtype}", "method": method, "path": gguf_name(qtype),
            "size_bytes": summary["size_bytes"], "tensor_types": summary["tensor_types"],
            "base_gguf": summary["base_gguf"]} | extra


def _export_plan(merged, out: Path, settings: QuantizeSettings, tokenizer, provenance: dict[str, str],
                 prompts: list[dict[str, Any]] | None, scorer: Scorer | None, system_prompt: str | None
                 ) -> dict[str, Any]:
    """``model-auto.gguf``: the searched plan (``plan: auto``) or a given one, with the search's measurements."""
    import json

    from serving.quantize.plan import PlanWriter, QuantPlan
    from serving.quantize.plan_search import search_plan

    started = time.time()
    writer = PlanWriter(merged, settings.base_gguf, tokenizer)
    search = None
    if settings.plan == AUTO:
        workdir = Path(tempfile.mkdtemp(prefix=".plan-search-", dir=out))  # candidates beside the outputs
        try:
            result = search_plan(writer, tokenizer, prompts or [], settings.plan_search, scorer,
                                 base_gguf_path=writer.base_path, workdir=workdir, system_prompt=system_prompt)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        plan, search = result.plan, result.to_dict()
    else:
        data = json.loads(Path(settings.plan).read_text(encoding="utf-8"))
        plan = QuantPlan.from_dict(data.get("plan", data))
    summary = writer.write(plan, out / PLAN_GGUF, provenance)
    entry = {"format": "gguf-auto", "method": ("per-layer-group types chosen by measured greedy agreement, "
                                               "composite-reward change and llama.cpp tokens/s (plan_search)"
                                               if search else f"per-layer-group types from {settings.plan}"),
             "path": PLAN_GGUF, "size_bytes": summary["size_bytes"], "tensor_types": summary["tensor_types"],
             "base_gguf": summary["base_gguf"], "plan": plan.to_dict(), "plan_summary": plan.summary(),
             "seconds": round(time.time() - started, 2)}
    if search is not None:
        entry["search"] = search
    if settings.verify:
        from serving.quantize.verify import verify_gguf

        entry["verify_vs_merged_fp32"] = verify_gguf(merged, tokenizer, out / PLAN_GGUF)
    return entry


def _export_base_plus_lora(model: str, adapter: str, config, out: Path, qtypes: list[str],
                           settings: QuantizeSettings, tokenizer, provenance: dict[str, str]) -> list[dict[str, Any]]:
    """The unmerged base at each low-bit type plus one LoRA GGUF that llama.cpp applies at run time."""
    from groundwork.models import load_causal_lm
    from serving.quantize.gguf_lora import export_gguf_lora

    started = time.time()
    lora = export_gguf_lora(adapter, config, out / LORA_GGUF)
    base = load_causal_lm(model, "float32")
    entries = []
    for qtype in qtypes:
        summary = export_gguf(base, out / base_gguf_name(qtype), qtype, settings.base_gguf, tokenizer,
                              provenance | {"adapter_sha256": "none (base; LoRA in " + LORA_GGUF + ")"})
        entries.append({"format": f"gguf-{qtype}+lora",
                        "method": f"unmerged base as {qtype.upper()} (as gguf-{qtype}) + the PEFT LoRA as a "
                                  f"llama.cpp LoRA GGUF ({lora['dtype'].upper()}, rank {lora['rank']}, "
                                  f"{lora['modules']} modules) applied at run time",
                        "path": base_gguf_name(qtype), "lora_path": LORA_GGUF,
                        "size_bytes": summary["size_bytes"] + lora["size_bytes"],
                        "seconds": round(time.time() - started, 2)})
    return entries


__all__ = ["AUTO", "FORMATS", "LORA_GGUF", "PLAN_GGUF", "QuantizeSettings", "base_gguf_name", "gguf_name", "quantize"]
