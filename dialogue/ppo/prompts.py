"""PPO prompt pools: the training pool and the judge-watch validation slice, tokenized for TRL."""

from __future__ import annotations

import random
from collections import defaultdict
from pathlib import Path
from typing import Any

from dialogue.generation import render_rows
from groundwork.data_loading import BadRows, load_optional_source, load_ppo_prompts
from groundwork.errors import ConfigError
from groundwork.sections.ppo import PromptSourceSection


def split_judge_slice(rows: list[dict[str, Any]], size: int, seed: int) -> tuple[list[dict], list[dict]]:
    """Carve a kind-stratified validation slice out of the training prompts.

    The judge watch selects checkpoints, so it must not look at the evaluation prompts
    (that would bias the final report); PPO never trains on this slice either.
    """
    if size <= 0:
        return rows, []
    by_kind: dict[str, list[int]] = defaultdict(list)
    for index, row in enumerate(rows):
        by_kind[row.get("kind", "other")].append(index)
    rng = random.Random(seed)
    chosen: set[int] = set()
    kinds = sorted(by_kind)
    for round_index in range(size):
        kind = kinds[round_index % len(kinds)]
        pool = [i for i in by_kind[kind] if i not in chosen]
        if pool:
            chosen.add(rng.choice(pool))
    train = [row for i, row in enumerate(rows) if i not in chosen]
    judge = [row for i, row in enumerate(rows) if i in chosen]
    return train, judge


def tokenize_prompts(tokenizer, rows: list[dict[str, Any]], max_tokens: int,
                     system_prompt: str | None = None) -> tuple[list[dict[str, list[int]]], int, list[str | None]]:
    """``input_ids`` of each rendered prompt; returns (kept, number dropped for length, each kept row's kind)."""
    rendered = render_rows(tokenizer, rows, system_prompt)
    kept, dropped, kinds = [], 0, []
    for row, text in zip(rows, rendered, strict=True):
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        if len(ids) > max_tokens:
            dropped += 1
            continue
        kept.append({"input_ids": ids})
        kinds.append(row.get("kind"))
    return kept, dropped, kinds


def weight_kinds(rows: list[dict[str, Any]], weights: dict[str, float], rng: random.Random) -> list[dict]:
    """Repeat each row ``floor(w)`` times plus once with probability ``w - floor(w)``, ``w`` its kind's weight.

    A kind no prompt has is an error rather than a silent no-op (a typo would otherwise train the corpus mix).
    """
    present = {row.get("kind") for row in rows}
    unknown = sorted(set(weights) - present)
    if unknown:
        raise ConfigError(f"ppo.kind_weights: no training prompt has kind {unknown}; "
                          f"kinds present: {sorted(k for k in present if k)}")
    out = []
    for row in rows:
        weight = weights.get(row.get("kind"), 1.0)
        copies = int(weight) + (1 if rng.random() < weight - int(weight) else 0)
        out.extend([row] * copies)
    return out


def public_prompts(source: PromptSourceSection, seed: int, bad: BadRows) -> list[dict[str, Any]]:
    """``source.rows`` requests (a seeded sample) as PPO prompt rows of kind ``source.prompt_kind``."""
    rows = load_optional_source(source.kind, source.path, "ppo", bad)
    picked = random.Random(seed).sample(rows, min(source.rows, len(rows)))
    should_refuse = source.prompt_kind == "harmful"
    return [{"messages": row["prompt"], "context": None, "kind": source.prompt_kind,
             "expected": {"should_refuse": should_refuse}, "id": f"{Path(source.path).stem}-{i}"}
            for i, row in enumerate(picked)]


def load_prompt_pools(data_dir: str, judge_size: int, seed: int, max_prompts: int | None,
                      on_bad_row: str = "skip", kind_weights: dict[str, float] | None = None,
                      sources: list[PromptSourceSection] | None = None,
                      ) -> tuple[list[dict], list[dict], BadRows]:
    """Training prompts (project + public sources, kind-weighted, shuffled, capped) and the judge slice."""
    bad = BadRows(on_bad_row)
    rows = load_ppo_prompts(data_dir, "train", bad)
    train, judge = split_judge_slice(rows, judge_size, seed)
    for source in sources or []:
        train += public_prompts(source, seed, bad)
    rng = random.Random(seed)
    if kind_weights:
        train = weight_kinds(train, kind_weights, rng)
    rng.shuffle(train)
    if max_prompts is not None:
        train = train[:max_prompts]
    return train, judge, bad
