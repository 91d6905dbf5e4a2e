"""The ``quantize:`` section of a recipe (what the pipeline's quantize stage writes)."""

from __future__ import annotations

from dataclasses import dataclass, field

# The merged model at Q8_0 and 4-bit, and "mixed": the base GGUF's own bytes where the adapter changed nothing,
# Q8_0 where it did (see gguf_mixed; ~2-5 s for SmolLM2-135M).
DEFAULT_GGUF_TYPES = ("q8_0", "q4_0", "q4_1", "mixed-q8_0")


@dataclass
class QuantizeSection:
    """Formats and GGUF types exported from the merged policy; see ``parley quantize --help``."""

    # ``parley quantize``: the LoRA adapter merged before export (None = export the base ``policy.model``). The
    # pipeline's quantize stage always merges the run's tuned adapter.
    adapter: str | None = None

    formats: list[str] = field(default_factory=lambda: ["int8", "gguf"])
    gguf_types: list[str] = field(default_factory=lambda: list(DEFAULT_GGUF_TYPES))
    # GGUF whose metadata and tokenizer are reused and whose unchanged tensors mixed-<type> copies. None: plain
    # types write the tokenizer and chat template from the HF tokenizer; mixed-<type> uses the bundled SmolLM2 file
    # (skipped, with the reason in the manifest, for a model that file is not the base of).
    base_gguf: str | None = None
    # Reload each GGUF and compare its logits with the merged model's (transformers, or llama.cpp for architectures
    # transformers cannot read back: groundwork.architectures).
    verify: bool = True
    # 4/5-bit types also as the unmerged base + a llama.cpp LoRA GGUF (keeps the tuning; see gguf_lora).
    gguf_lora: bool = True
    # A per-layer-group type plan (serving.quantize.plan_search): "auto" measures candidate plans in llama.cpp on
    # support *train* prompts (greedy agreement with the fp32 model, composite-reward change, tokens/s) and writes
    # the fastest that keeps ``plan_min_agreement`` and ``plan_min_reward_delta`` as model-auto.gguf, which
    # ``parley serve`` then loads by default; a path loads a plan JSON instead (a manifest's "plan" entry);
    # None = no plan. Needs llama-cpp-python for "auto"; ~14 min for SmolLM2-135M on 2 cores.
    plan: str | None = None
    # ``parley quantize --plan auto``: run folder holding reward-<objective>/ models, whose composite scores the
    # candidates' answers (None = agreement and speed only). The pipeline uses its own run's models.
    reward_dir: str | None = None
    plan_min_agreement: float = 0.6
    plan_min_reward_delta: float = -0.05
    plan_prompts: int = 24
