"""Stop an answer at the first sentence it repeats, before the repeat reaches the customer.

Small policies fall into loops ("I can help you report problems with payment." four times over) that no
sampling setting removes for every prompt, and a repeated sentence never adds anything for the reader. The
stream goes on unchanged until the sentence being written could be a repeat (it opens like an earlier one);
that sentence is held back until it differs (then it is released) or it ends equal to an earlier sentence
(then it is dropped and generation stops). The first sentence is never held, so the time to first token does
not change. Sentences are split and compared as the system evaluation's "degenerate" class does
(:mod:`groundwork.answer_form`): whole, case-insensitively, longer than ``SHORT_SENTENCE_CHARS``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from groundwork.answer_form import SENTENCE_BOUNDARY, SHORT_SENTENCE_CHARS


def _key(sentence: str) -> str:
    return " ".join(sentence.split()).lower()


def drop_repeated_sentences(chunks: Iterator[str], on_repeat: Callable[[], None] | None = None) -> Iterator[str]:
    """Yield ``chunks`` until a sentence repeats an earlier one; drop that sentence, call ``on_repeat``, stop."""
    text = ""
    released = 0  # characters yielded so far
    start = 0  # where the sentence being written begins
    seen: set[str] = set()

    def repeats(key: str) -> bool:
        return len(key) > SHORT_SENTENCE_CHARS and key in seen

    try:
        for chunk in chunks:
            text += chunk
            for boundary in SENTENCE_BOUNDARY.finditer(text, start):
                key = _key(text[start:boundary.start()])
                if repeats(key):
                    if start > released:
                        yield text[released:start]
                    if on_repeat is not None:
                        on_repeat()
                    return
                if len(key) > SHORT_SENTENCE_CHARS:
                    seen.add(key)
                start = boundary.end()
            partial = _key(text[start:])
            hold = bool(partial) and any(earlier.startswith(partial) for earlier in seen)
            point = start if hold else len(text)
            if point > released:
                yield text[released:point]
                released = point
        if repeats(_key(text[start:])):
            text = text[:start]
            if on_repeat is not None:
                on_repeat()
        if len(text) > released:
            yield text[released:]
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            close()
