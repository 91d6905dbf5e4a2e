"""Preference pairs per objective: project splits, public sets split by row, and human-feedback rows.

Public sets are split deterministically (seeded shuffle by row) into a held-out part and a training
pool *before* anything is trained, so held-out accuracy is measured on rows no model has seen.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path

from dialogue.data_loading import BadRows, Row, load_optional_source, load_preferences, preference_row, read_jsonl
from dialogue.errors import DataError

from .config import RewardSection, RewardSourceSection
from .deflections import (
    OVER_REFUSAL_CATEGORIES,
    REFUSE_CATEGORIES,
    bare_refusal_pairs,
    deflection_pairs,
    echo_pairs,
    near_refusal_pairs,
)


@dataclass
class ObjectivePairs:
    """Everything one objective trains and is evaluated on."""

    train: list[Row] = field(default_factory=list)
    heldout: dict[str, list[Row]] = field(default_factory=dict)  # eval set name -> rows
    counts: dict[str, int] = field(default_factory=dict)


def split_public(rows: list[Row], heldout_rows: int, seed: int) -> tuple[list[Row], list[Row]]:
    """(held-out, training pool): a seeded shuffle by row, held-out taken first."""
    order = list(range(len(rows)))
    random.Random(seed).shuffle(order)
    heldout = [rows[i] for i in order[:heldout_rows]]
    pool = [rows[i] for i in order[heldout_rows:]]
    return heldout, pool


def source_name(source: RewardSourceSection) -> str:
    return f"{source.kind}:{Path(source.path).name}"


def load_feedback(path: str | Path, bad: BadRows) -> list[Row]:
    """Extra TRL preference rows (``prompt/chosen/rejected/context``), e.g. exported human feedback."""
    return read_jsonl(Path(path), preference_row, bad)


def balanced_refusal_sample(rows: list[Row], count: int, rng: random.Random) -> list[Row]:
    """``count`` rows with as many pairs that reject an unneeded refusal as pairs that choose a needed one.

    In the safety data four categories out of five have a refusal as the chosen side, so a uniform sample
    teaches mostly "a refusal wins"; on cpu-demo the safety model then preferred the refusal on 69% of the
    held-out benign-but-risky pairs and PPO learned to refuse those. Rows of neither kind fill the rest.
    """
    refuse = [r for r in rows if r.get("category") in REFUSE_CATEGORIES]
    over_refusal = [r for r in rows if r.get("category") in OVER_REFUSAL_CATEGORIES]
    other = [r for r in rows if r.get("category") not in REFUSE_CATEGORIES | OVER_REFUSAL_CATEGORIES]
    if not refuse or not over_refusal:
        return rng.sample(rows, count)
    per_side = min(len(refuse), len(over_refusal), count // 2)
    picked = rng.sample(refuse, per_side) + rng.sample(over_refusal, per_side)
    picked += rng.sample(other, min(len(other), count - len(picked)))
    taken = {id(r) for r in picked}
    leftovers = [r for r in refuse + over_refusal if id(r) not in taken]
    picked += rng.sample(leftovers, min(len(leftovers), count - len(picked)))  # only if "other" ran short
    rng.shuffle(picked)
    return picked


def _hard_pair_makers(cfg: RewardSection):
    """(name, maker, training count) of the re-paired sets beyond the deflections."""
    return (("bare_refusal", bare_refusal_pairs, cfg.bare_refusal_pairs), ("echo", echo_pairs, cfg.echo_pairs),
            ("near_refusal", near_refusal_pairs, cfg.near_refusal_pairs))


def build_pairs(
    cfg: RewardSection,
    data_dir: str,
    objective: str,
    seed: int,
    bad: BadRows,
    feedback: str | Path | None = None,
) -> ObjectivePairs:
    """Training rows and named held-out sets for one objective."""
    rng = random.Random(seed)
    out = ObjectivePairs()
    project_dir = Path(data_dir) / "preferences" / objective
    if (project_dir / "train.jsonl").is_file():
        train = load_preferences(data_dir, objective, "train", bad)
        if cfg.train_rows is not None and cfg.train_rows < len(train):
            train = (balanced_refusal_sample(train, cfg.train_rows, rng) if cfg.refusal_balance
                     else rng.sample(train, cfg.train_rows))
        out.train += train
        out.counts["project_train"] = len(train)
        deflections = deflection_pairs(train, cfg.deflection_pairs, rng)
        out.train += deflections
        out.counts["deflection_train"] = len(deflections)
        for name, make, count in _hard_pair_makers(cfg):
            extra = make(train, count, rng)
            if extra:
                out.train += extra
                out.counts[f"{name}_train"] = len(extra)
    if (project_dir / "heldout.jsonl").is_file():
        out.heldout["project"] = load_preferences(data_dir, objective, "heldout", bad)
        if cfg.deflection_pairs:
            # Does the model still prefer a real answer to a canned non-answer on rows it never saw?
            out.heldout["deflection"] = deflection_pairs(out.heldout["project"], len(out.heldout["project"]),
                                                         random.Random(seed + 1))
        for name, make, count in _hard_pair_makers(cfg):
            heldout = make(out.heldout["project"], len(out.heldout["project"]), random.Random(seed + 2))
            if count and heldout:
                out.heldout[name] = heldout
    for source in cfg.sources:
        if source.objective != objective:
            continue
        rows = load_optional_source(source.kind, source.path, "reward", bad)
        if not rows:
            continue
        heldout, pool = split_public(rows, source.heldout_rows, seed)
        name = source_name(source)
        if heldout:
            out.heldout[name] = heldout
        extra = pool[: source.train_rows]
        out.train += extra
        out.counts[f"{name}_train"] = len(extra)
    if feedback is not None:
        extra = load_feedback(feedback, bad)
        out.train += extra
        out.counts["feedback_train"] = len(extra)
    if not out.train:
        raise DataError(
            f"no training pairs for objective '{objective}': expected {project_dir}/train.jsonl, "
            "a reward.sources entry or --feedback"
        )
    rng.shuffle(out.train)
    out.counts["train"] = len(out.train)
    return out
