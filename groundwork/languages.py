"""The languages Parley translates between, and how translation requests are phrased."""

from __future__ import annotations

import re

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


# Each language's name as a translation request names its target, in Spanish, French, German and Chinese (the
# English names are LANGUAGES'), for :func:`requested_target`.
_OTHER_NAMES: dict[str, tuple[str, ...]] = {
    "en": ("inglés", "ingles", "anglais", "englische", "englisch", "英文", "英语"),
    "zh": ("chino", "chinois", "chinesische", "chinesisch", "中文", "汉语", "华语"),
    "es": ("español", "espanol", "espagnol", "spanische", "spanisch", "西班牙语", "西班牙文"),
    "fr": ("francés", "frances", "français", "francais", "französische", "französisch", "法语", "法文"),
    "de": ("alemán", "aleman", "allemand", "deutsche", "deutsch", "德语", "德文"),
}
_NAME_TO_CODE = {name: code for code, names in _OTHER_NAMES.items() for name in names}
_NAME_TO_CODE.update({name.lower(): code for code, name in LANGUAGES.items()})
_NAMES = "|".join(sorted((re.escape(n) for n in _NAME_TO_CODE), key=len, reverse=True))
# A target: "into/in/to/al/en/ins/auf [Simplified] <name>", "<name> translation", or Chinese "翻译成/译为<name>".
_TARGET = re.compile(
    rf"(?:\b(?:into|in|to|al|a|en|ins|auf)\s+(?:simplified\s+|traditional\s+)?({_NAMES})\b"
    rf"|\b({_NAMES})\s+(?:\(simplified\)\s+)?translation\b"
    rf"|(?:翻译成|翻译为|译成|译为|翻成)\s*({_NAMES}))",
    re.IGNORECASE,
)
_TRANSLATION_CUE = re.compile(
    r"translat|render|put (?:this|it|the following)|say (?:this|it|that)|trad[uú]|übersetz|翻译|译",
    re.IGNORECASE,
)


def requested_target(request: str, window: int = 160) -> str | None:
    """The language a translation request asks for, or None when ``request`` does not ask for a translation.

    Reads the request's opening ``window`` characters, where the instruction sits ("Translate into German:
    ...", "¿Puedes traducir esta frase al inglés? ...", "翻译成英语：..."), so that a language named inside the
    text to translate is not taken for the target. Used by the reward's language check
    (:mod:`reward_models.rule_gate`): a translation in the wrong language is wrong whatever it says.
    """
    head = (request or "")[:window]
    if not _TRANSLATION_CUE.search(head):
        return None
    match = _TARGET.search(head)
    if match is None:
        return None
    return _NAME_TO_CODE[next(g for g in match.groups() if g).lower()]
