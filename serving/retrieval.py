"""Knowledge-base retrieval: the support chat grounds each answer on the top-k KB passages.

The KB (``articles.jsonl`` files of ``{id, title, topic, text, facts}``) is embedded once at start-up
with the bundled MiniLM sentence-transformers model; a query is one embedding plus a dot product over a
few hundred normalized vectors, so no vector database is needed at this size.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from groundwork.errors import DataError


@dataclass(frozen=True)
class Passage:
    """One KB article as shown to the model (``text``) and to the user (``title``, ``id``)."""

    id: str
    title: str
    text: str
    score: float = 0.0

    def citation(self) -> dict[str, Any]:
        return {"id": self.id, "title": self.title, "score": round(self.score, 4), "text": self.text}


def prompt_passage(title: str, text: str) -> str:
    """A passage as the policy reads it in its prompt: served (the chat's KB context) and in SFT alike."""
    return f"{title}: {text}"


def load_articles(kb_dir: str | Path) -> list[Passage]:
    """Every article of every ``*.jsonl`` file under ``kb_dir`` (sorted by file name, then line)."""
    kb_dir = Path(kb_dir)
    files = sorted(kb_dir.glob("*.jsonl")) if kb_dir.is_dir() else [kb_dir] if kb_dir.is_file() else []
    if not files:
        raise DataError(f"knowledge base {kb_dir} has no *.jsonl files")
    passages: list[Passage] = []
    for path in files:
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                passages.append(Passage(id=str(row["id"]), title=str(row.get("title") or row["id"]),
                                        text=str(row["text"]).strip()))
            except (json.JSONDecodeError, KeyError, TypeError) as exc:
                raise DataError(f"{path}:{number}: not a KB article with 'id' and 'text' ({exc})") from exc
    if not passages:
        raise DataError(f"knowledge base {kb_dir} is empty")
    return passages


class KnowledgeBase:
    """KB passages and their MiniLM embeddings; :meth:`search` returns the top-k by cosine similarity."""

    def __init__(self, passages: list[Passage], encoder: Any) -> None:
        self.passages = passages
        self.encoder = encoder
        texts = [f"{p.title}. {p.text}" for p in passages]
        self.vectors = encoder.encode(texts, normalize_embeddings=True, convert_to_tensor=True, batch_size=32)

    @classmethod
    def load(cls, kb_dir: str | Path, encoder_dir: str | Path | None = None) -> KnowledgeBase:
        """Read the KB and embed it with the bundled MiniLM (or ``encoder_dir``)."""
        from sentence_transformers import SentenceTransformer

        from groundwork.models import minilm_dir

        encoder = SentenceTransformer(str(encoder_dir or minilm_dir()), device="cpu")
        return cls(load_articles(kb_dir), encoder)

    def search(self, query: str, k: int = 3) -> list[Passage]:
        """The ``k`` passages closest to ``query``, best first."""
        import torch

        if not query.strip():
            return []
        query_vector = self.encoder.encode([query], normalize_embeddings=True, convert_to_tensor=True)
        scores = (self.vectors @ query_vector.T).squeeze(1)
        top = torch.topk(scores, min(k, len(self.passages)))
        return [
            Passage(self.passages[i].id, self.passages[i].title, self.passages[i].text, float(s))
            for s, i in zip(top.values.tolist(), top.indices.tolist(), strict=True)
        ]

    def search_including(self, query: str, k: int, ids: list[str]) -> list[Passage]:
        """:meth:`search`'s ``k`` passages with those of ``ids`` that it missed put in place of its last hits:
        the passages a training row shows, its own article always among them."""
        hits = self.search(query, k)
        found = {hit.id for hit in hits}
        missing = [passage for passage in self.passages if passage.id in ids and passage.id not in found]
        return [*hits[: max(k - len(missing), 0)], *missing] if missing else hits
