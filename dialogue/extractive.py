"""The extractive baseline of ``parley evaluate``: no generation, one sentence copied from the knowledge base.

For each request the KB is searched the way the server searches it (:class:`serving.retrieval.KnowledgeBase`,
the customer's last message as the query, ``serve.kb_dir``) and the answer is the sentence of the top passage
that shares the most content words with the request (token-set F1 of content words, the rule the server's
"why this answer" highlight uses: :func:`serving.explain.best_sentence`); a passage no sentence of which shares
a word with the request gives its first sentence. The baseline asks what retrieval alone achieves: a tuned
policy that does not beat it on KB facts is not using its generation for support questions.

It is not a policy: it has no KL to a reference and is left out of the PPO-vs-SFT comparison. The same rule
answers as an engine (:class:`ExtractiveEngine`) so the system table can put it through the served code path
(retrieval, guard, limits) on the public support prompts.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from groundwork.chat_format import last_user_text

NAME = "extractive"
METHOD = ("top retrieved KB passage (serving.retrieval, the last user message as query), its sentence with the "
          "highest content-word F1 with the request (serving.explain.best_sentence; the first sentence if none "
          "shares a word)")


def extract_answer(question: str, passage: str) -> str:
    """The sentence of ``passage`` most relevant to ``question`` (its first sentence when none shares a word)."""
    from serving.explain import best_sentence, content_words, sentences

    best = best_sentence(passage, set(content_words(question)))
    if best["sentence"]:
        return best["sentence"]
    spans = sentences(passage)
    return passage[spans[0][0]:spans[0][1]] if spans else ""


def kb_location(serve_kb_dir: str | None, data_dir: str | Path) -> Path:
    """The KB the server reads (``serve.kb_dir``), else the project data's ``kb/`` (a relative ``serve.kb_dir``
    read from another working directory)."""
    if serve_kb_dir and Path(serve_kb_dir).exists():
        return Path(serve_kb_dir)
    return Path(data_dir) / "kb"


def extractive_answers(rows: Sequence[dict[str, Any]], kb: Any, top_k: int = 3) -> tuple[list[str], list[str | None]]:
    """Each row's extractive answer and the id of the passage it came from (None and "" without a hit)."""
    answers: list[str] = []
    sources: list[str | None] = []
    for row in rows:
        question = last_user_text(row["messages"])
        hits = kb.search(question, top_k)
        answers.append(extract_answer(question, hits[0].text) if hits else "")
        sources.append(hits[0].id if hits else None)
    return answers, sources


class ExtractiveEngine:
    """An engine of the chat service that answers with :func:`extract_answer` on the first retrieved passage.

    The service hands an engine the passages as ``"<title>: <text>"`` strings; ``kb`` maps them back to the
    passage text so the title is never part of the answer.
    """

    name = NAME

    def __init__(self, kb: Any | None = None) -> None:
        from serving.retrieval import prompt_passage

        self._texts = {prompt_passage(p.title, p.text): p.text for p in (kb.passages if kb is not None else [])}

    def stream(self, messages: Sequence[dict[str, str]], context: Sequence[str] | None = None, cancel: Any = None,
               **_sampling: Any) -> Iterator[str]:
        if not context:
            return
        first = context[0]
        answer = extract_answer(last_user_text(list(messages)), self._texts.get(first, first))
        if answer:
            yield answer

    def close(self) -> None:
        return None
