"""Preference pairs per objective: project splits, public sets split by row, and human-feedback rows.

Public sets are split deterministically (seeded shuffle by row) into a held-out part and a training
pool *before* anything is trained, so held-out accuracy is measured on rows no model has seen.

Human-feedback rows (``--feedback``) go to the objective they are tagged with: a file named
``preferences-<objective>.jsonl`` (what ``parley feedback export --out DIR`` writes) holds that objective's
pairs, a folder stands for its ``preferences-*.jsonl`` files, and a row's own ``objective`` field routes it
inside any other file. Rows without any tag (a file from before the tags) go to every objective.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from groundwork.data_loading import (
    OBJECTIVES,
    BadRows,
    Row,
    load_optional_source,
    load_preferences,
    preference_row,
    read_jsonl,
)
from groundwork.errors import DataError
from groundwork.sections.reward import RewardSection, RewardSourceSection
from reward_models.borrowed_pairs import garbled_translation_pairs, safety_pairs_for, translation_pairs_for
from reward_models.deflections import (
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


FeedbackPaths = str | Path | Sequence[str | Path]
_OBJECTIVE_FILE = re.compile(r"^preferences-([a-z_]+)\.jsonl$")


def file_objective(path: Path) -> str | None:
    """The objective a ``preferences-<objective>.jsonl`` file name stands for (None for other names)."""
    match = _OBJECTIVE_FILE.match(path.name)
    return match.group(1) if match and match.group(1) in OBJECTIVES else None


def feedback_files(feedback: FeedbackPaths) -> list[Path]:
    """The JSONL files behind ``--feedback``: files as given, a folder's ``preferences-<objective>.jsonl`` files."""
    paths = [feedback] if isinstance(feedback, (str, Path)) else list(feedback)
    files = []
    for path in map(Path, paths):
        if path.is_dir():
            found = sorted(f for f in path.glob("preferences-*.jsonl") if file_objective(f))
            if not found:
                raise DataError(f"feedback folder {path} has no preferences-<objective>.jsonl files "
                                f"(write them with: parley feedback export --db URL --out {path})")
            files += found
        else:
            files.append(path)
    return files


def load_feedback(feedback: FeedbackPaths, bad: BadRows, objective: str | None = None) -> list[Row]:
    """Extra TRL preference rows (``prompt/chosen/rejected/context``), e.g. exported human feedback.

    With ``objective``, only the rows for it: rows of its ``preferences-<objective>.jsonl`` file, rows tagged
    ``"objective": "<objective>"`` and untagged rows. A tag that is not an objective, or that contradicts
    its file's name, makes the row a bad row.
    """
    rows = []
    for path in feedback_files(feedback):
        named = file_objective(path)
        if objective is not None and named is not None and named != objective:
            continue

        def convert(obj: dict, named: str | None = named) -> Row | None:
            row = preference_row(obj)
            tag = obj.get("objective")
            if tag is not None and tag not in OBJECTIVES:
                raise ValueError(f"objective tag {tag!r} is not one of {', '.join(OBJECTIVES)}")
            if tag is not None and named is not None and tag != named:
                raise ValueError(f"row tagged {tag!r} in the file of objective {named!r}")
            row["objective"] = tag or named
            if objective is not None and row["objective"] not in (None, objective):
                return None
            return row

        rows += read_jsonl(path, convert, bad)
    return rows


def balanced_refusal_sample(rows: list[Row], count: int, rng: random.Random) -> list[Row]:
    """``count`` rows with as many pairs that reject an unneeded refusal as pairs that choose a needed one.

    In the safety data four categories out of five have a refusal as the chosen side, so a uniform sample
    teaches mostly "a refusal wins"; on cpu-demo the safety model then preferred the refusal on most of the
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


def _borrowed(cfg: RewardSection, data_dir: str, objective: str, split: str, bad: BadRows,
              rng: random.Random, counts: dict[str, int] | None) -> dict[str, list[Row]]:
    """Pairs ``objective`` borrows from the other objectives' ``split`` (see reward_models.borrowed_pairs);
    ``counts`` None = as many as there are (held-out sets)."""
    out: dict[str, list[Row]] = {}

    def rows_of(other: str) -> list[Row]:
        path = Path(data_dir) / "preferences" / other / f"{split}.jsonl"
        return load_preferences(data_dir, other, split, bad) if path.is_file() else []

    if objective != "safety" and cfg.borrowed_safety_pairs:
        rows = rows_of("safety")
        out["borrowed_safety"] = safety_pairs_for(rows, counts["safety"] if counts else len(rows), rng)
    if objective == "faithfulness" and cfg.borrowed_translation_pairs:
        rows = rows_of("quality")
        out["borrowed_translation"] = translation_pairs_for(rows, counts["translation"] if counts else len(rows),
                                                            rng)
    return out


def build_pairs(
    cfg: RewardSection,
    data_dir: str,
    objective: str,
    seed: int,
    bad: BadRows,
    feedback: FeedbackPaths | None = None,
) -> ObjectivePairs:
    """Training rows and named held-out sets for one objective."""
    rng = random.Random(seed)
    out = ObjectivePairs()
    project_dir = Path(data_dir) / "preferences" / objective
    if (project_dir / "train.jsonl").is_file():
        train = load_preferences(data_dir, objective, "train", bad)
        if objective == "safety" and cfg.safety_refuse_only:
            train = [row for row in train if row.get("category") in REFUSE_CATEGORIES]
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
        borrowed = _borrowed(cfg, data_dir, objective, "train", bad, rng,
                             {"safety": cfg.borrowed_safety_pairs, "translation": cfg.borrowed_translation_pairs})
        for name, extra in borrowed.items():
            out.train += extra
            out.counts[f"{name}_train"] = len(extra)
        if objective != "safety":
            garbled = garbled_translation_pairs(out.train, cfg.garbled_translation_pairs, rng)
            out.train += garbled
            if garbled:
                out.counts["garbled_translation_train"] = len(garbled)
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
        borrowed = _borrowed(cfg, data_dir, objective, "heldout", bad, random.Random(seed + 3), None)
        out.heldout.update({name: rows for name, rows in borrowed.items() if rows})
        if objective != "safety" and cfg.garbled_translation_pairs:
            pool = out.heldout["project"] + borrowed.get("borrowed_translation", [])
            garbled = garbled_translation_pairs(pool, len(pool), random.Random(seed + 4))
            if garbled:
                out.heldout["garbled_translation"] = garbled
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
        extra = load_feedback(feedback, bad, objective)
        out.train += extra
        out.counts["feedback_train"] = len(extra)
        untagged = sum(row["objective"] is None for row in extra)
        if untagged:
            out.counts["feedback_untagged_train"] = untagged
    if not out.train:
        raise DataError(
            f"no training pairs for objective '{objective}': expected {project_dir}/train.jsonl, "
            "a reward.sources entry or --feedback"
        )
    rng.shuffle(out.train)
    out.counts["train"] = len(out.train)
    return out
