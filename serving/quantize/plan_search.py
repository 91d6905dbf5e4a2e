"""``parley quantize --plan auto``: choose a per-group quantization plan by measured quality and speed.

HAQ/AMC-style, with a cheaper search than an RL agent: every candidate plan is written as a GGUF, run by
llama.cpp (the engine that serves it) on measurement prompts, and scored by what it does there:

* greedy agreement with the merged fp32 model (share of the reference's tokens generated identically before
  the first divergence, the serving benchmark's measure),
* the composite-reward change against the fp32 model's answers (when reward models are given), with its
  standard error over prompts,
* decode tokens/s (EOS masked, a fixed length, the serving benchmark's measure).

A plan is *feasible* when agreement >= ``min_agreement`` and the reward change >= ``min_reward_delta``; the
reward of a feasible plan is its tokens/s. The search is backward elimination over bands of layer groups
(embedding; attention and feed-forward of the layers the adapter left unchanged; the same of the tuned
layers): it starts from the most faithful plan (base bytes where unchanged, F16 where tuned) and, each round,
measures every one-step downgrade of one band (F16 -> Q8_0 -> Q4_0; base -> Q4_0) and keeps the fastest
feasible one, until no downgrade is feasible (or all are measurably slower). Greedy agreement is a
weakest-link measure (one noisy band ruins it), so removing precision from a faithful plan finds the feasible
region in a few rounds where adding precision to a fast plan would wander. ``method="random"`` samples the
same number of plans at random: the baseline the greedy search is compared with (docs/results.md).

The measurement prompts must be disjoint from the prompts a final evaluation uses (the pipeline takes them
from the support *train* split; the serving benchmark evaluates on the held-out ones).
"""

from __future__ import annotations

import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from serving.quantize.errors import QuantizeError
from serving.quantize.plan import BASE, EMBEDDING_GROUP, PlanWriter, QuantPlan

# Precision ladders, most faithful first. "base" (copied bytes) is exact and is the fastest type the base
# file's grid allows; re-quantizing base-grid weights to another grid only adds noise, so an unchanged band
# goes from base straight to the fastest type.
UNCHANGED_LADDER = (BASE, "q4_0")
TUNED_LADDER = ("f16", "q8_0", "q4_0")

Scorer = Callable[[Sequence[dict[str, Any]], Sequence[str]], Sequence[float]]


@dataclass
class PlanSearchSettings:
    """What a plan must keep and how much measuring the search may do."""

    min_agreement: float = 0.6
    min_reward_delta: float = -0.05
    prompts: int = 24
    max_tokens: int = 48
    speed_prompts: int = 3
    threads: int = 2
    max_rounds: int = 8
    # A feasible downgrade is taken unless it is measurably slower (by more than this share): less precision is
    # rarely slower, and a few percent is speed noise.
    max_slowdown: float = 0.03
    method: str = "greedy"
    # random search only: how many plans it measures (the greedy search's count, for a like-for-like baseline).
    budget: int = 12
    seed: int = 0

    def validate(self) -> None:
        if self.method not in ("greedy", "random"):
            raise QuantizeError(f"plan search method {self.method!r}: choose greedy or random")
        if self.prompts < 1 or self.speed_prompts < 1 or self.max_tokens < 2:
            raise QuantizeError("plan search needs >= 1 prompt, >= 1 speed prompt and max_tokens >= 2")


@dataclass
class Band:
    """Layer groups that move together through one precision ladder."""

    name: str
    groups: list[str]
    ladder: tuple[str, ...]


@dataclass
class Trial:
    """One measured plan."""

    bands: dict[str, str]
    agreement: float
    tokens_per_s: float
    size_bytes: int
    reward_delta: float | None = None
    reward_delta_se: float | None = None
    feasible: bool = False
    seconds: float = 0.0


@dataclass
class PlanSearchResult:
    plan: QuantPlan
    chosen: Trial
    trials: list[Trial]
    base_tokens_per_s: float | None
    reference: str
    settings: PlanSearchSettings
    bands: list[Band] = field(default_factory=list)

    @property
    def meets_constraints(self) -> bool:
        return self.chosen.feasible

    def to_dict(self) -> dict[str, Any]:
        ratio = (round(self.chosen.tokens_per_s / self.base_tokens_per_s, 3)
                 if self.base_tokens_per_s else None)
        return {"plan": self.plan.to_dict(), "plan_summary": self.plan.summary(),
                "chosen": asdict(self.chosen), "meets_constraints": self.meets_constraints,
                "ratio_vs_base_gguf": ratio, "base_gguf_tokens_per_s": self.base_tokens_per_s,
                "reference": self.reference, "settings": asdict(self.settings),
                "bands": [asdict(b) | {"groups": len(b.groups)} for b in self.bands],
                "trials": [asdict(t) for t in self.trials]}


def token_agreement(tokenizer, reference: Sequence[str], candidate: Sequence[str]) -> float:
    """Share of the reference's tokens generated identically before the first divergence (mean over prompts)."""
    scores = []
    for ref, cand in zip(reference, candidate, strict=True):
        a = tokenizer(ref, add_special_tokens=False)["input_ids"]
        b = tokenizer(cand, add_special_tokens=False)["input_ids"]
        same = next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))
        scores.append(same / max(len(a), len(b), 1))
    return statistics.mean(scores) if scores else 0.0


def make_bands(writer: PlanWriter) -> list[Band]:
    """Embedding / unchanged attention / unchanged FFN / tuned attention / tuned FFN (empty bands dropped)."""
    unchanged = writer.unchanged_groups() if writer.reader is not None else set()
    blocks = [g for g in writer.groups if g != EMBEDDING_GROUP]
    bands = [Band("embedding", [g for g in writer.groups if g == EMBEDDING_GROUP],
                  UNCHANGED_LADDER if EMBEDDING_GROUP in unchanged else TUNED_LADDER)]
    for part in ("attn", "ffn"):
        bands.append(Band(f"unchanged_{part}", [g for g in blocks if g.endswith(part) and g in unchanged],
                          UNCHANGED_LADDER))
        bands.append(Band(f"tuned_{part}", [g for g in blocks if g.endswith(part) and g not in unchanged],
                          TUNED_LADDER))
    return [b for b in bands if b.groups]


def plan_for(bands: list[Band], state: Sequence[int]) -> QuantPlan:
    return QuantPlan(types={g: band.ladder[i] for band, i in zip(bands, state, strict=True) for g in band.groups})


class PlanMeasurer:
    """Writes a plan, runs it in llama.cpp on the measurement prompts, and scores it against the reference."""

    def __init__(self, writer: PlanWriter, tokenizer, prompts: Sequence[dict[str, Any]],
                 settings: PlanSearchSettings, scorer: Scorer | None = None, workdir: str | Path | None = None,
                 system_prompt: str | None = None) -> None:
        self.writer, self.tokenizer, self.prompts = writer, tokenizer, list(prompts)
        self.settings, self.scorer, self.system_prompt = settings, scorer, system_prompt
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="parley-plan-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.reference: list[str] = []
        self.reference_rewards: list[float] | None = None

    def run_file(self, path: str | Path) -> tuple[list[str], float]:
        """``(greedy answers to the measurement prompts, median decode tokens/s at a fixed length)``."""
        from serving.engines.llamacpp_engine import LlamaCppEngine

        engine = LlamaCppEngine(path, tokenizer=self.tokenizer, threads=self.settings.threads,
                                system_prompt=self.system_prompt)
        try:
            answers = [engine.generate(row["messages"], row.get("context"), max_tokens=self.settings.max_tokens,
                                       temperature=0.0) for row in self.prompts]
            rates = []
            for row in self.prompts[: self.settings.speed_prompts]:
                engine.generate(row["messages"], row.get("context"), max_tokens=self.settings.max_tokens,
                                temperature=0.0, ignore_eos=True)
                if engine.last_stats.decode_tokens_per_s is not None:
                    rates.append(engine.last_stats.decode_tokens_per_s)
        finally:
            engine.close()
        return answers, statistics.median(rates) if rates else 0.0

    def measure_reference(self) -> float:
        """The merged model at F32 in the same engine: the answers every plan is compared with."""
        path = self.workdir / "reference-f32.gguf"
        self.writer.write(QuantPlan(default="f32"), path)
        self.reference, rate = self.run_file(path)
        path.unlink(missing_ok=True)
        if self.scorer is not None:
            self.reference_rewards = [float(x) for x in self.scorer(self.prompts, self.reference)]
        return rate

    def measure(self, plan: QuantPlan, bands: dict[str, str]) -> Trial:
        started = time.perf_counter()
        path = self.workdir / "candidate.gguf"
        summary = self.writer.write(plan, path)
        answers, rate = self.run_file(path)
        path.unlink(missing_ok=True)
        trial = Trial(bands=bands, agreement=round(token_agreement(self.tokenizer, self.reference, answers), 4),
                      tokens_per_s=round(rate, 2), size_bytes=int(summary["size_bytes"]))
        if self.scorer is not None and self.reference_rewards is not None:
            diffs = [float(c) - r for c, r in zip(self.scorer(self.prompts, answers), self.reference_rewards,
                                                  strict=True)]
            trial.reward_delta = round(statistics.mean(diffs), 4)
            trial.reward_delta_se = round(statistics.stdev(diffs) / len(diffs) ** 0.5, 4) if len(diffs) > 1 else 0.0
        # The reward change is judged within one standard error: 24 prompts leave it ~0.1 wide, and a plan
        # should be dropped for evidence of a loss, not for noise (the final benchmark reports it with its SE).
        trial.feasible = trial.agreement >= self.settings.min_agreement and (
            trial.reward_delta is None
            or trial.reward_delta + (trial.reward_delta_se or 0.0) >= self.settings.min_reward_delta)
        trial.seconds = round(time.perf_counter() - started, 1)
        return trial


def _progress(message: str) -> None:
    print(f"parley quantize --plan auto: {message}", file=sys.stderr, flush=True)


def search_plan(writer: PlanWriter, tokenizer, prompts: Sequence[dict[str, Any]],
                settings: PlanSearchSettings | None = None, scorer: Scorer | None = None,
                base_gguf_path: str | Path | None = None, workdir: str | Path | None = None,
                system_prompt: str | None = None) -> PlanSearchResult:
    """Measure plans for ``writer``'s model and return the fastest feasible one (the most faithful when none is)."""
    settings = settings or PlanSearchSettings()
    settings.validate()
    if not prompts:
        raise QuantizeError("the plan search needs measurement prompts (support conversations with KB context)")
    prompts = list(prompts)[: settings.prompts]
    measurer = PlanMeasurer(writer, tokenizer, prompts, settings, scorer, workdir, system_prompt)
    bands = make_bands(writer)
    _progress(f"{len(prompts)} measurement prompts; bands: "
              + ", ".join(f"{b.name} ({len(b.groups)} groups: {' > '.join(b.ladder)})" for b in bands))
    reference_rate = measurer.measure_reference()
    _progress(f"reference (F32) {reference_rate:.1f} tokens/s")
    base_rate = measurer.run_file(base_gguf_path)[1] if base_gguf_path else None
    if base_rate:
        _progress(f"base GGUF {Path(base_gguf_path).name} {base_rate:.1f} tokens/s")
    trials: list[Trial] = []

    def measure(state: Sequence[int]) -> Trial:
        trial = measurer.measure(plan_for(bands, state),
                                 {b.name: b.ladder[i] for b, i in zip(bands, state, strict=True)})
        trials.append(trial)
        _progress(f"plan {len(trials)}: {trial.bands} agreement {trial.agreement:.3f} "
                  f"reward delta {trial.reward_delta} (se {trial.reward_delta_se}) {trial.tokens_per_s:.1f} tokens/s"
                  + (" (feasible)" if trial.feasible else ""))
        return trial

    if settings.method == "random":
        chosen_state, chosen = _random_search(bands, settings, measure)
    else:
        chosen_state, chosen = _greedy_search(bands, settings, measure)
    return PlanSearchResult(plan=plan_for(bands, chosen_state), chosen=chosen, trials=trials,
                            base_tokens_per_s=round(base_rate, 2) if base_rate else None,
                            reference="the merged fp32 model written at F32, run by llama.cpp", settings=settings,
                            bands=bands)


def _greedy_search(bands: list[Band], settings: PlanSearchSettings,
                   measure: Callable[[Sequence[int]], Trial]) -> tuple[list[int], Trial]:
    state = [0] * len(bands)
    current = measure(state)
    for _ in range(settings.max_rounds):
        options = []
        for index, band in enumerate(bands):
            if state[index] + 1 < len(band.ladder):
                step = list(state)
                step[index] += 1
                options.append((step, measure(step)))
        feasible = [(s, t) for s, t in options if t.feasible]
        if not feasible:
            break
        step, trial = max(feasible, key=lambda st: st[1].tokens_per_s)
        if current.feasible and trial.tokens_per_s < current.tokens_per_s * (1 - settings.max_slowdown):
            break  # every feasible downgrade is measurably slower
        state, current = step, trial
    return state, current


def _random_search(bands: list[Band], settings: PlanSearchSettings,
                   measure: Callable[[Sequence[int]], Trial]) -> tuple[list[int], Trial]:
    rng = random.Random(settings.seed)
    space = [list(range(len(b.ladder))) for b in bands]
    seen: set[tuple[int, ...]] = set()
    best: tuple[list[int], Trial] | None = None
    total = 1
    for options in space:
        total *= len(options)
    for _ in range(min(settings.budget, total)):
        state = [rng.choice(options) for options in space]
        while tuple(state) in seen:
            state = [rng.choice(options) for options in space]
        seen.add(tuple(state))
        trial = measure(state)
        key = (trial.feasible, trial.tokens_per_s if trial.feasible else trial.agreement)
        if best is None or key > (best[1].feasible, best[1].tokens_per_s if best[1].feasible else best[1].agreement):
            best = (state, trial)
    assert best is not None
    return best


__all__ = ["Band", "PlanMeasurer", "PlanSearchResult", "PlanSearchSettings", "Trial", "make_bands", "plan_for",
           "search_plan", "token_agreement"]
