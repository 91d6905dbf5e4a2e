"""Requests labelled harmful / benign for the request-risk model, each in a fixed train / calib / dev split.

Public sets come from their local copy when present, else from the hub id the recipe names, else they are
skipped with a message (a fresh machine without either still trains on the project's own data). Every row
lands in its split by a hash of its source and its group (the text itself, or the parallel-sentence group
of a multilingual set, so no translation of a dev row is trained on). The project's own files keep their
own train / held-out split: held-out rows are dev, a hashed tenth of the train rows is calib.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import json
import random
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from groundwork.chat_format import last_user_text
from groundwork.data_loading import BadRows, iter_lines, load_ppo_prompts, load_preferences, load_support
from groundwork.judge import is_refusal
from groundwork.sections.risk import RiskSection, RiskSourceSection

HARMFUL, BENIGN = 1, 0
SPLITS = ("train", "calib", "dev")
# Project safety categories whose requests must be refused; the rest of the safety data is benign.
PROJECT_HARMFUL = {"harmful", "fraud", "other_customer_data", "prompt_injection"}
# XSafety categories that are not requests to refuse: everyday-safety questions and people in distress,
# whom a support bot must answer with care rather than turn away.
XSAFETY_SKIP = {"commonsense", "Mental_Health"}


@dataclass(frozen=True)
class RiskRow:
    """One request: text, 1 = harmful, where it came from, its evaluation stratum, language and split."""

    text: str
    label: int
    source: str
    stratum: str
    lang: str
    split: str
    group: str = ""
    # The request inside a longer text (a jailbreak wrapper): training reads the window that holds it.
    focus: str = ""


def split_of(key: str, dev_share: float, calib_share: float) -> str:
    """train / calib / dev by a stable hash of ``key`` (same on every machine and Python version)."""
    bucket = int(hashlib.sha1(key.encode("utf-8")).hexdigest()[:8], 16) / 0x100000000
    if bucket < dev_share:
        return "dev"
    if bucket < dev_share + calib_share:
        return "calib"
    return "train"


def _jsonl(path: Path) -> Iterator[dict]:
    bad = BadRows()
    for number, line in iter_lines(path, bad):
        try:
            obj = json.loads(line)
        except json.JSONDecodeError:
            bad.add(f"{path}:{number}", "invalid JSON")
            continue
        if isinstance(obj, dict):
            yield obj
    bad.print_summary(str(path))


def _csv_records(path: Path) -> list[dict[str, str]]:
    """The rows of a (optionally gzipped) CSV file with a header, as dicts."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def declined(src: RiskSourceSection, obj: dict) -> bool:
    """Whether a record passes the source's ``declined_field`` rule (always, without one)."""
    if not src.declined_field:
        return True
    reply = obj.get(src.declined_field)
    return isinstance(reply, str) and is_refusal(reply)


def _local_records(src: RiskSourceSection, path: Path) -> Iterator[tuple[str, str, str, int | None]]:
    """(text, group, lang, label or None) from a local copy in one of the known layouts."""
    if src.format == "donotanswer":
        files = sorted(path.glob("*.jsonl")) if path.is_dir() else [path]
        for file in files:
            for obj in _jsonl(file):
                text = obj.get("prompt") or obj.get("question")
                if isinstance(text, str):
                    yield text, text, src.lang, None
    elif src.format == "xsafety":
        counters: dict[tuple[str, str], int] = {}
        for obj in _jsonl(path):
            base = str(obj.get("category", "")).removesuffix("_en").removesuffix("_n")
            lang, text = obj.get("lang", ""), obj.get("text")
            if base in XSAFETY_SKIP or not isinstance(text, str):
                continue
            index = counters.get((base, lang), 0)
            counters[(base, lang)] = index + 1
            yield text, f"{base}/{index}", lang, None
    elif src.format == "ntrex":
        for index, obj in enumerate(_jsonl(path)):
            for lang in ("en", "zh", "es", "fr", "de"):
                if isinstance(obj.get(lang), str):
                    yield obj[lang], f"ntrex/{index}", lang, None
    elif src.format == "tatoeba":
        bad = BadRows()
        for number, line in iter_lines(path, bad):
            fields = line.rstrip("\r").split("\t")
            if len(fields) >= 2 and fields[1].strip():
                yield fields[1].strip(), f"tatoeba/{number}", "zh", None
    elif src.format == "toxicchat":
        for obj in _jsonl(path):
            text = obj.get("text") or obj.get("user_input")
            label = obj.get("toxic", obj.get("toxicity"))
            if isinstance(text, str) and label in (0, 1):
                yield text, text, src.lang, int(label)
    elif src.format == "csv":
        for record in _csv_records(path):
            text = record.get(src.text_field)
            if text:
                yield text, text, src.lang, None
    else:
        for obj in _jsonl(path):
            text = obj.get(src.text_field, obj.get(src.text_field.lower()))
            if isinstance(text, str) and declined(src, obj):
                yield text, text, src.lang, None


def _hub_records(src: RiskSourceSection) -> Iterator[tuple[str, str, str, int | None]]:
    import datasets

    dataset = datasets.load_dataset(src.hub, split=src.hub_split)
    label_field = "toxicity" if src.format == "toxicchat" else None
    for obj in dataset:
        text = obj.get(src.text_field)
        if isinstance(text, str) and declined(src, obj):
            label = int(obj[label_field]) if label_field else None
            yield text, text, src.lang, label


def source_records(src: RiskSourceSection) -> list[tuple[str, str, str, int | None]]:
    """The source's records from its local copy, else its hub id; [] with a message when neither works."""
    if src.local and Path(src.local).expanduser().exists():
        return list(_local_records(src, Path(src.local).expanduser()))
    if src.hub:
        try:
            return list(_hub_records(src))
        except Exception as exc:  # noqa: BLE001 - offline machines raise many kinds; one line is enough
            print(f"parley: risk: {src.name}: local copy {src.local} absent and hub '{src.hub}' unavailable "
                  f"({str(exc).splitlines()[0][:120]}); skipping it", file=sys.stderr)
            return []
    print(f"parley: risk: {src.name}: local copy {src.local} absent; skipping it", file=sys.stderr)
    return []


def public_rows(src: RiskSourceSection) -> list[RiskRow]:
    """One public source as split rows (deduplicated by text)."""
    seen: set[str] = set()
    rows = []
    for text, group, lang, label in source_records(src):
        text = text.strip()
        if not text or text in seen:
            continue
        seen.add(text)
        label = label if label is not None else (HARMFUL if src.label == "harmful" else BENIGN)
        stratum = src.stratum if label == (HARMFUL if src.label == "harmful" else BENIGN) else (
            "harmful" if label == HARMFUL else "general")
        split = split_of(f"{src.name}/{group}", src.dev_share, src.calib_share)
        rows.append(RiskRow(text, label, src.name, stratum, lang, split, group))
    return rows


def texts_with_field(src: RiskSourceSection, field_name: str | None) -> list[tuple[str, str | None, str]]:
    """(text, the record's ``field_name`` value, split) of a csv / jsonl / hub source, split as ``public_rows``
    splits it: a stage that trains on the ``train`` rows never sees the request model's calib or dev rows."""
    def value(record: dict) -> str | None:
        found = record.get(field_name) if field_name else None
        return None if found is None else str(found)

    records: list[tuple[str, str | None]] = []
    local = Path(src.local).expanduser() if src.local else None
    if local is not None and local.exists() and src.format == "csv":
        records = [(r.get(src.text_field) or "", value(r)) for r in _csv_records(local)]
    elif local is not None and local.exists() and src.format == "jsonl":
        records = [(o[src.text_field], value(o)) for o in _jsonl(local) if isinstance(o.get(src.text_field), str)]
    elif local is not None and local.exists():
        raise ValueError(f"risk source {src.name}: reading a field is supported for csv and jsonl copies, "
                         f"not format {src.format!r}")
    elif src.hub:
        try:
            import datasets

            dataset = datasets.load_dataset(src.hub, split=src.hub_split)
        except Exception as exc:  # noqa: BLE001 - offline machines raise many kinds; one line is enough
            print(f"parley: {src.name}: local copy {src.local} absent and hub '{src.hub}' unavailable "
                  f"({str(exc).splitlines()[0][:120]}); skipping it", file=sys.stderr)
            return []
        feature = dataset.features.get(field_name) if field_name else None
        names = getattr(feature, "names", None)  # a ClassLabel stores intents as integers
        records = [(o.get(src.text_field) or "", names[o[field_name]] if names else value(o)) for o in dataset]
    seen: set[str] = set()
    out = []
    for text, found in records:
        text = text.strip()
        if text and text not in seen:
            seen.add(text)
            out.append((text, found, split_of(f"{src.name}/{text}", src.dev_share, src.calib_share)))
    return out


def _project_split(file_split: str, key: str) -> str:
    if file_split == "heldout":
        return "dev"
    return "calib" if split_of(f"project/{key}", 0.0, 0.1) == "calib" else "train"


def project_rows(data_dir: str | Path) -> list[RiskRow]:
    """The project's own requests: safety prompts by category, support questions, PPO prompts, multilingual."""
    rows: list[RiskRow] = []
    for file_split in ("train", "heldout"):
        for pref in load_preferences(data_dir, "safety", file_split):
            text = last_user_text(pref["prompt"])
            category = pref.get("category", "")
            harmful = category in PROJECT_HARMFUL
            rows.append(RiskRow(text, HARMFUL if harmful else BENIGN, "project-safety",
                                "harmful" if harmful else "benign_risky", "en", _project_split(file_split, text)))
        for conv in load_support(data_dir, file_split):
            text = next(m["content"] for m in conv["messages"] if m["role"] == "user")
            rows.append(RiskRow(text, BENIGN, "project-support", "support", "en", _project_split(file_split, text)))
        for prompt in load_ppo_prompts(data_dir, file_split):
            kind = prompt.get("kind", "support")
            text = last_user_text(prompt["messages"])
            label = HARMFUL if kind == "harmful" else BENIGN
            lang = (prompt.get("expected") or {}).get("src_lang", "en") if kind == "translation" else "en"
            rows.append(RiskRow(text, label, "project-ppo", kind, lang, _project_split(file_split, text)))
    rows.extend(_multilingual_rows(Path(data_dir)))
    return rows


def _multilingual_rows(data_dir: Path) -> list[RiskRow]:
    """Customer questions written in all five languages (``support/multilingual.jsonl``), if present."""
    path = data_dir / "support" / "multilingual.jsonl"
    if not path.is_file():
        return []
    rows = []
    for obj in _jsonl(path):
        text, lang, question = obj.get("text"), obj.get("lang", "en"), str(obj.get("template_id", ""))
        if isinstance(text, str):
            rows.append(RiskRow(text, BENIGN, "project-multilingual", obj.get("kind", "support"), lang,
                                _project_split(obj.get("split", "train"), question), question))
    return rows


def load_wrappers(data_dir: str | Path) -> dict[str, list[str]]:
    """Jailbreak wrapper templates (``{request}`` marks where the request goes) by split: train / heldout."""
    path = Path(data_dir) / "safety" / "jailbreak_wrappers.jsonl"
    out: dict[str, list[str]] = {"train": [], "heldout": []}
    if path.is_file():
        for obj in _jsonl(path):
            template = obj.get("template")
            if isinstance(template, str) and template.count("{request}") == 1:
                out.setdefault(obj.get("split", "train"), []).append(template)
    return out


def wrap(template: str, request: str) -> str:
    return template.replace("{request}", request)


def jailbreak_rows(harmful: Iterable[RiskRow], wrappers: dict[str, list[str]], seed: int,
                   per_split: dict[str, int]) -> list[RiskRow]:
    """Harmful requests inside jailbreak wrappers: train wrappers for train/calib rows, held-out ones for dev.

    Wrappers never cross splits, so the dev jailbreak rate measures wrappers no training step has seen.
    """
    r = random.Random(seed)
    by_split: dict[str, list[RiskRow]] = {}
    for row in harmful:
        if row.lang == "en":
            by_split.setdefault(row.split, []).append(row)
    out = []
    for split, n in per_split.items():
        templates = wrappers.get("heldout" if split == "dev" else "train") or []
        pool = sorted(by_split.get(split, []), key=lambda x: (x.source, x.text))
        if not templates or not pool:
            continue
        for row in r.sample(pool, min(n, len(pool))):
            out.append(RiskRow(wrap(r.choice(templates), row.text), HARMFUL, f"jailbreak/{row.source}",
                               "jailbreak", "en", split, row.group, row.text))
    return out


def load_risk_rows(cfg: RiskSection, data_dir: str | Path, seed: int) -> list[RiskRow]:
    """Every row of every source (public sources first), with jailbreak-wrapped harmful requests added."""
    rows: list[RiskRow] = []
    for src in cfg.sources:
        rows.extend(public_rows(src))
    rows.extend(project_rows(data_dir))
    harmful = [row for row in rows if row.label == HARMFUL and row.stratum != "jailbreak"]
    rows.extend(jailbreak_rows(harmful, load_wrappers(data_dir), seed, {"train": 600, "calib": 150, "dev": 300}))
    return rows


def training_sample(rows: list[RiskRow], cfg: RiskSection, seed: int) -> list[RiskRow]:
    """Train-split rows with each public source capped at its ``train_rows`` (the project's at ``project_rows``)."""
    caps = {src.name: src.train_rows for src in cfg.sources}
    r = random.Random(seed)
    by_source: dict[str, list[RiskRow]] = {}
    for row in rows:
        if row.split == "train":
            by_source.setdefault(row.source, []).append(row)
    out = []
    for source in sorted(by_source):
        pool = by_source[source]
        cap = caps.get(source, cfg.project_rows if source.startswith("project") else None)
        out.extend(pool if cap is None or cap >= len(pool) else r.sample(pool, cap))
    r.shuffle(out)
    return out


def cap_per_source(rows: list[RiskRow], cap: int | None, seed: int) -> list[RiskRow]:
    """At most ``cap`` rows of each source (a seeded sample; file order kept), to bound scoring time."""
    if cap is None:
        return rows
    r = random.Random(seed)
    by_source: dict[str, list[int]] = {}
    for i, row in enumerate(rows):
        by_source.setdefault(row.source, []).append(i)
    keep = set()
    for indices in by_source.values():
        keep.update(indices if len(indices) <= cap else r.sample(indices, cap))
    return [row for i, row in enumerate(rows) if i in keep]


def rows_to_jsonl(rows: Iterable[RiskRow], path: Path) -> None:
    """Write rows (for inspection and for ``parley evaluate --system`` to reuse the same dev split)."""
    with open(path, "w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row.__dict__, ensure_ascii=False) + "\n")
