"""Load project data and public datasets into TRL's conversational formats.

Every loader returns plain dict rows in one of two shapes:

* conversations: ``{"messages": [...], "context": str | None}``
* preferences:   ``{"prompt": [...], "chosen": [...], "rejected": [...], "context": str | None}``

Malformed rows are never dropped silently: each is recorded in a
:class:`BadRows` report with file and line, and either skipped (with a count
printed) or turned into a :class:`DataError`, per ``data.on_bad_row``.
"""

from __future__ import annotations

import csv
import gzip
import json
import re
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from groundwork.chat_format import normalize_messages
from groundwork.errors import DataError
from groundwork.languages import LANGUAGES, translation_request
from groundwork.refusal_pairs import compliance_for, refusal_for

Row = dict[str, Any]
OBJECTIVES = ("quality", "safety", "faithfulness")
SPLITS = ("train", "heldout")


@dataclass
class BadRows:
    """Malformed rows met while loading; ``policy`` is ``"skip"`` or ``"error"``."""

    policy: str = "skip"
    problems: list[str] = field(default_factory=list)

    def add(self, where: str, reason: str) -> None:
        message = f"{where}: {reason}"
        if self.policy == "error":
            raise DataError(f"malformed row at {message} (set data.on_bad_row=skip to skip such rows)")
        self.problems.append(message)

    def summary(self) -> str:
        if not self.problems:
            return "no malformed rows"
        return f"skipped {len(self.problems)} malformed row(s); first: {self.problems[0]}"

    def print_summary(self, label: str) -> None:
        if self.problems:
            print(f"parley: {label}: {self.summary()}", file=sys.stderr)


def _require_file(path: Path) -> Path:
    if not path.is_file():
        raise DataError(f"data file not found: {path}")
    return path


def _open_text(path: Path):
    opener = gzip.open if path.suffix == ".gz" else open
    return opener(path, "rt", encoding="utf-8", errors="strict", newline="")


def iter_lines(path: Path, bad: BadRows) -> Iterator[tuple[int, str]]:
    """Yield (line number, text) and record lines that are not valid UTF-8."""
    _require_file(path)
    with open(path, "rb") as raw:
        data = gzip.decompress(raw.read()) if path.suffix == ".gz" else raw.read()
    for number, line in enumerate(data.split(b"\n"), start=1):
        if not line.strip():
            continue
        try:
            yield number, line.decode("utf-8")
        except UnicodeDecodeError as exc:
            bad.add(f"{path}:{number}", f"invalid UTF-8 ({exc.reason} at byte {exc.start})")


def read_jsonl(path: str | Path, convert: Callable[[dict], Row | None], bad: BadRows) -> list[Row]:
    """Parse a JSON-lines file, converting each object; bad rows go to ``bad``."""
    path = Path(path)
    rows = []
    for number, line in iter_lines(path, bad):
        where = f"{path}:{number}"
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            bad.add(where, f"invalid JSON ({exc.msg})")
            continue
        if not isinstance(obj, dict):
            bad.add(where, "expected a JSON object")
            continue
        try:
            row = convert(obj)
        except (KeyError, TypeError, ValueError) as exc:
            bad.add(where, f"{type(exc).__name__}: {exc}")
            continue
        if row is not None:
            rows.append(row)
    return rows


def _text(obj: dict, key: str) -> str:
    value = obj[key]
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"'{key}' must be a non-empty string")
    return value


def _optional_context(obj: dict) -> str | None:
    context = obj.get("context")
    if context is not None and not isinstance(context, str):
        raise ValueError("'context' must be a string or null")
    return context or None


def conversation_row(obj: dict) -> Row:
    """A ``messages`` row ending in an assistant turn."""
    messages = normalize_messages(obj["messages"])
    if messages[-1]["role"] != "assistant":
        raise ValueError("the last message must be the assistant's")
    if any(not m["content"].strip() for m in messages):
        raise ValueError("empty message content")
    row: Row = {"messages": messages, "context": _optional_context(obj)}
    kb_ids = obj.get("kb_ids")
    if kb_ids is not None:  # the KB articles the context came from (SFT can rebuild it by retrieval)
        if not isinstance(kb_ids, list) or not all(isinstance(i, str) for i in kb_ids):
            raise ValueError("'kb_ids' must be a list of article ids")
        row["kb_ids"] = list(kb_ids)
    return row


def prompt_row(obj: dict) -> Row:
    """A prompt-only row (``messages`` or ``prompt``), kept with its metadata."""
    source = obj.get("messages", obj.get("prompt"))
    if source is None:
        raise KeyError("'messages' or 'prompt'")
    messages = normalize_messages(source)
    if messages[-1]["role"] != "user" or not messages[-1]["content"].strip():
        raise ValueError("the last message must be a non-empty user turn")
    row = {k: v for k, v in obj.items() if k not in ("messages", "prompt")}
    row.update(messages=messages, context=_optional_context(obj))
    return row


def preference_row(obj: dict) -> Row:
    """A ``prompt/chosen/rejected`` row; chosen and rejected are one assistant message each."""
    prompt = normalize_messages(obj["prompt"])
    chosen = normalize_messages(obj["chosen"])
    rejected = normalize_messages(obj["rejected"])
    for name, answer in (("chosen", chosen), ("rejected", rejected)):
        if answer[-1]["role"] != "assistant" or not answer[-1]["content"].strip():
            raise ValueError(f"'{name}' must end with a non-empty assistant message")
    if chosen[-1]["content"] == rejected[-1]["content"]:
        raise ValueError("chosen and rejected are identical")
    row = {"prompt": prompt, "chosen": chosen[-1:], "rejected": rejected[-1:], "context": _optional_context(obj)}
    if "category" in obj:
        row["category"] = obj["category"]
    return row


# --- project data -----------------------------------------------------------------------------------------


def _split_file(data_dir: str | Path, family: str, split: str) -> Path:
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r}; expected one of {SPLITS}")
    return Path(data_dir) / family / f"{split}.jsonl"


def load_kb(data_dir: str | Path, bad: BadRows | None = None) -> list[Row]:
    """Knowledge-base articles ``{id, title, topic, text, facts}``."""
    def convert(obj: dict) -> Row:
        return {"id": _text(obj, "id"), "title": _text(obj, "title"), "topic": obj.get("topic", ""),
                "text": _text(obj, "text"), "facts": obj.get("facts", [])}

    return read_jsonl(Path(data_dir) / "kb" / "articles.jsonl", convert, bad or BadRows())


def load_support(data_dir: str | Path, split: str, bad: BadRows | None = None) -> list[Row]:
    """Grounded support conversations."""
    return read_jsonl(_split_file(data_dir, "support", split), conversation_row, bad or BadRows())


def translation_conversations(pair: dict[str, str]) -> list[Row]:
    """Both directions between English and every other language of one parallel row."""
    rows = []
    for code in LANGUAGES:
        if code == "en" or not pair.get(code):
            continue
        for src, tgt in (("en", code), (code, "en")):
            request = translation_request(pair[src], tgt)
            rows.append({
                "messages": [{"role": "user", "content": request}, {"role": "assistant", "content": pair[tgt]}],
                "context": None, "src_lang": src, "tgt_lang": tgt,
            })
    return rows


def load_translation_pairs(data_dir: str | Path, split: str, bad: BadRows | None = None) -> list[Row]:
    """Parallel rows ``{en, zh, es, fr, de}``."""
    def convert(obj: dict) -> Row:
        return {code: _text(obj, code) for code in LANGUAGES} | {"template_id": obj.get("template_id", "")}

    return read_jsonl(_split_file(data_dir, "translation", split), convert, bad or BadRows())


def load_translation(data_dir: str | Path, split: str, bad: BadRows | None = None) -> list[Row]:
    """Translation requests as conversations, both directions for every language pair."""
    return [row for pair in load_translation_pairs(data_dir, split, bad) for row in translation_conversations(pair)]


def load_preferences(data_dir: str | Path, objective: str, split: str, bad: BadRows | None = None) -> list[Row]:
    """Preference pairs for one reward objective."""
    if objective not in OBJECTIVES:
        raise DataError(f"unknown objective {objective!r}; expected one of {OBJECTIVES}")
    path = Path(data_dir) / "preferences" / objective / f"{split}.jsonl"
    return read_jsonl(path, preference_row, bad or BadRows())


def load_ppo_prompts(data_dir: str | Path, split: str, bad: BadRows | None = None) -> list[Row]:
    """PPO / evaluation prompts with ``kind`` and ``expected`` metadata."""
    return read_jsonl(_split_file(data_dir, "ppo", split), prompt_row, bad or BadRows())


# --- public datasets --------------------------------------------------------------------------------------

_HH_TURN = re.compile(r"\n\n(Human|Assistant): ")


def parse_hh_transcript(transcript: str) -> list[dict[str, str]]:
    """Split an HH-RLHF ``\\n\\nHuman: ...\\n\\nAssistant: ...`` transcript into messages."""
    parts = _HH_TURN.split(transcript)
    if len(parts) < 3 or parts[0].strip():
        raise ValueError("not an HH-RLHF transcript (expected it to start with '\\n\\nHuman: ')")
    messages = []
    for speaker, content in zip(parts[1::2], parts[2::2], strict=True):
        role = "user" if speaker == "Human" else "assistant"
        if messages and messages[-1]["role"] == role:
            messages[-1]["content"] += "\n\n" + content.strip()
        else:
            messages.append({"role": role, "content": content.strip()})
    return messages


def hh_preference_row(obj: dict) -> Row:
    """One HH-RLHF pair: shared prefix becomes the prompt, the final assistant turns differ."""
    chosen = parse_hh_transcript(_text(obj, "chosen"))
    rejected = parse_hh_transcript(_text(obj, "rejected"))
    if chosen[-1]["role"] != "assistant" or rejected[-1]["role"] != "assistant":
        raise ValueError("transcript does not end with an assistant turn")
    if chosen[:-1] != rejected[:-1]:
        raise ValueError("chosen and rejected differ before the last assistant turn")
    return preference_row({"prompt": chosen[:-1], "chosen": chosen[-1:], "rejected": rejected[-1:]})


def halueval_preference_row(obj: dict) -> Row:
    """HaluEval QA: the right answer is chosen over the hallucinated one, given the knowledge."""
    return preference_row({
        "prompt": [{"role": "user", "content": _text(obj, "question")}],
        "chosen": [{"role": "assistant", "content": _text(obj, "right_answer")}],
        "rejected": [{"role": "assistant", "content": _text(obj, "hallucinated_answer")}],
        "context": _text(obj, "knowledge"),
    })


def donotanswer_preference_row(obj: dict) -> Row:
    """A Do-Not-Answer harmful request: a refusal chosen over a compliance written for it (see refusal_pairs)."""
    request = _text(obj, "prompt")
    return preference_row({
        "prompt": [{"role": "user", "content": request}],
        "chosen": [{"role": "assistant", "content": refusal_for(request)}],
        "rejected": [{"role": "assistant", "content": compliance_for(request)}],
        "category": "public_harmful",
    })


def _read_csv(path: Path, convert: Callable[[dict], Row | None], bad: BadRows) -> list[Row]:
    _require_file(path)
    rows = []
    try:
        with _open_text(path) as handle:
            reader = csv.DictReader(handle)
            for record in reader:
                where = f"{path}:{reader.line_num}"
                if None in record or any(v is None for v in record.values()):
                    bad.add(where, "wrong number of columns")
                    continue
                try:
                    row = convert(record)
                except (KeyError, ValueError) as exc:
                    bad.add(where, f"{type(exc).__name__}: {exc}")
                    continue
                if row is not None:
                    rows.append(row)
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: invalid UTF-8 ({exc.reason})") from exc
    return rows


def bitext_row(record: dict) -> Row:
    """Bitext customer support: instruction -> response conversation."""
    return conversation_row({"messages": [
        {"role": "user", "content": _text(record, "instruction")},
        {"role": "assistant", "content": _text(record, "response")},
    ]})


def banking77_row(record: dict) -> Row:
    """Banking77: a customer question with its intent label (prompt only)."""
    return prompt_row({"messages": [{"role": "user", "content": _text(record, "text")}],
                       "category": _text(record, "category")})


def load_tatoeba(path: Path, bad: BadRows) -> list[Row]:
    """Tatoeba ``english<TAB>chinese`` lines as translation conversations in both directions."""
    rows = []
    for number, line in iter_lines(path, bad):
        fields = line.rstrip("\r").split("\t")
        if len(fields) < 2 or not fields[0].strip() or not fields[1].strip():
            bad.add(f"{path}:{number}", "expected 'english<TAB>chinese'")
            continue
        rows.extend(translation_conversations({"en": fields[0].strip(), "zh": fields[1].strip()}))
    return rows


def load_hub(path: str, split: str, bad: BadRows) -> list[Row]:
    """A hub dataset id (or local dataset dir) with ``messages`` or ``prompt/chosen/rejected`` columns."""
    import datasets

    try:
        dataset = datasets.load_dataset(path, split=split)
    except Exception as exc:  # noqa: BLE001 - the hub raises many types; the user needs one line
        raise DataError(f"cannot load dataset '{path}' split '{split}': {str(exc).splitlines()[0]}") from exc
    convert = preference_row if "chosen" in dataset.column_names else conversation_row
    rows = []
    for index, obj in enumerate(dataset):
        try:
            rows.append(convert(dict(obj)))
        except (KeyError, TypeError, ValueError) as exc:
            bad.add(f"{path}[{split}]:{index}", f"{type(exc).__name__}: {exc}")
    return rows


def load_source(kind: str, path: str, split: str = "train", max_rows: int | None = None,
                bad: BadRows | None = None) -> list[Row]:
    """Load one extra dataset named in a recipe (see ``SourceSection``)."""
    bad = bad or BadRows()
    file = Path(path).expanduser()
    if kind == "hh-rlhf":
        rows = read_jsonl(file, hh_preference_row, bad)
    elif kind == "halueval":
        rows = read_jsonl(file, halueval_preference_row, bad)
    elif kind == "donotanswer":
        rows = read_jsonl(file, donotanswer_preference_row, bad)
    elif kind == "bitext":
        rows = _read_csv(file, bitext_row, bad)
    elif kind == "banking77":
        rows = _read_csv(file, banking77_row, bad)
    elif kind == "tatoeba":
        rows = load_tatoeba(file, bad)
    elif kind == "jsonl":
        rows = read_jsonl(file, lambda o: preference_row(o) if "chosen" in o else conversation_row(o), bad)
    elif kind == "hub":
        rows = load_hub(path, split, bad)
    else:
        raise DataError(f"unknown data source kind {kind!r}")
    return rows[:max_rows] if max_rows is not None else rows


def load_optional_source(kind: str, path: str, stage: str, bad: BadRows) -> list[Row]:
    """A public set a recipe names, or no rows (with a message) where the local copy is absent.

    Recipes name copies under ``../shared/datasets``, which a fresh user machine does not have; the
    default recipe must still run there.
    """
    if not Path(path).expanduser().is_file():
        print(f"parley: {stage}: public set {path} not found; skipping it")
        return []
    return load_source(kind, path, bad=bad)


def preference_to_conversation(row: Row) -> Row:
    """The chosen side of a preference pair as a conversation (a demonstration for SFT)."""
    return {"messages": row["prompt"] + row["chosen"], "context": row.get("context")}


def to_prompt_completion(row: Row, system_prompt: str | None = None) -> Row:
    """Conversation row -> TRL conversational prompt/completion (loss on the last assistant turn only)."""
    from groundwork.chat_format import build_messages

    messages = build_messages(row["messages"], row.get("context"), system_prompt)
    return {"prompt": messages[:-1], "completion": messages[-1:]}
