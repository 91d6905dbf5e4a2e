"""Stop an answer at the first sentence it repeats, before the repeat reaches the customer.

Small policies fall into loops ("I can help you report problems with payment." four times over) that no
sampling setting removes for every prompt, and a repeated sentence never adds anything for the reader. The
stream goes on unchanged until the sentence being written could be a repeat (it opens like an earlier one);
that sentence is held back until it differs (then it is released) or it ends equal to an earlier sentence
(then it is dropped and generation stops). The first sentence is never held, so the time to first token does
not change. Sentences are compared whole, case-insensitively, from 12 characters up (the same rule as the
system evaluation's "degenerate" class).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

MIN_SENTENCE_CHARS = 12
_BOUNDARY = re.compile(r"(?<=[.!?。！？])\s+|\n+")


def _key(sentence: str) -> str:
    return " ".join(sentence.split()).lower()


def drop_repeated_sentences(chunks: Iterator[str], on_repeat: Callable[[], None] | None = None) -> Iterator[str]:
    """Yield ``chunks`` until a sentence repeats an earlier one; drop that sentence, call ``on_repeat``, stop."""
    text = ""
    released = 0  # characters yielded so far
    start = 0  # where the sentence being written begins
    seen: set[str] = set()

    def repeats(sentence: str) -> bool:
        key = _key(sentence)
        return len(key) > MIN_SENTENCE_CHARS and key in seen

    try:
        for chunk in chunks:
            text += chunk
            for boundary in _BOUNDARY.finditer(text, start):
                sentence = text[start:boundary.start()]
                if repeats(sentence):
                    if start > released:
                        yield text[released:start]
                    if on_repeat is not None:
                        on_repeat()
                    return
                if len(_key(sentence)) > MIN_SENTENCE_CHARS:
                    seen.add(_key(sentence))
                start = boundary.end()
            partial = _key(text[start:])
            hold = bool(partial) and any(earlier.startswith(partial) for earlier in seen)
            point = start if hold else len(text)
            if point > released:
                yield text[released:point]
                released = point
        if repeats(text[start:]):
            text = text[:start]
            if on_repeat is not None:
                on_repeat()
        if len(text) > released:
            yield text[released:]
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            close()
