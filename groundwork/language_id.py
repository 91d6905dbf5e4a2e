"""Language identification restricted to Parley's five languages (langid.py, loaded once)."""

from __future__ import annotations

from functools import lru_cache

from groundwork.languages import LANGUAGES


@lru_cache(maxsize=1)
def _identifier():
    from langid.langid import LanguageIdentifier, model

    identifier = LanguageIdentifier.from_modelstring(model, norm_probs=True)
    identifier.set_languages(list(LANGUAGES))
    return identifier


def detect_language(text: str) -> tuple[str, float]:
    """Most likely language code among :data:`LANGUAGES` and its probability."""
    if not text or not text.strip():
        return "en", 0.0
    code, probability = _identifier().classify(text)
    return code, float(probability)
