"""The languages Parley translates between, and how translation requests are phrased."""

from __future__ import annotations

LANGUAGES: dict[str, str] = {
    "en": "English",
    "zh": "Chinese",
    "es": "Spanish",
    "fr": "French",
    "de": "German",
}


class UnknownLanguageError(ValueError):
    """A language code outside :data:`LANGUAGES`."""


def check_language(code: str) -> str:
    """Return the normalized code or raise with the list of supported ones."""
    normalized = (code or "").strip().lower()
    if normalized not in LANGUAGES:
        supported = ", ".join(f"{c} ({n})" for c, n in LANGUAGES.items())
        raise UnknownLanguageError(f"unknown language code {code!r}; supported: {supported}")
    return normalized


def translation_request(text: str, target: str, source: str | None = None) -> str:
    """The user message that asks the policy for a translation (same wording in SFT, PPO and serving)."""
    target_name = LANGUAGES[check_language(target)]
    if source:
        return f"Translate from {LANGUAGES[check_language(source)]} into {target_name}:\n{text}"
    return f"Translate into {target_name}:\n{text}"
