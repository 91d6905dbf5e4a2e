"""Redact personal data before a chat message, a correction or a handoff transcript is stored or logged.

Human feedback becomes training data, so an e-mail address or a card number typed by a customer
must never reach the database, the logs or an exported preference file. Detection is rule based:

* e-mail addresses (also ``name [at] host [dot] com``),
* IBANs, validated with the ISO 7064 mod-97 check,
* payment card numbers of 13-19 digits (spaces/dashes allowed), validated with the Luhn check, so order
  numbers and random long numbers are left alone,
* phone numbers: international ``+..``, US ``(555) 123-4567``, European national numbers with a leading
  ``0``, Chinese mobiles, and any 7-15 digit number right after a word like "phone", "Telefon", "电话",
* street addresses where a pattern is recognisable: ``12 Baker Street``, ``Hauptstraße 5``,
  ``12 rue de la Paix``, ``Calle Mayor 5``.

Dates, times, money amounts and order/ticket ids are masked before the phone detectors run, which is
what keeps "01.05.2024 10:30" or "order 0123-4567-89" out of ``[PHONE]``. Detection errs on the side of
redacting: a long number that happens to pass Luhn becomes ``[CARD]``. Names and postcodes are not
detected. The output never contains a digit run or an ``@`` from a detected span, and ``redact`` is
idempotent (placeholders hold no digits).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

PLACEHOLDERS = {
    "email": "[EMAIL]",
    "iban": "[IBAN]",
    "card": "[CARD]",
    "phone": "[PHONE]",
    "address": "[ADDRESS]",
}
_MASK = "\x00"  # same-length stand-in for text a later detector must not see (keeps offsets aligned)


@dataclass(frozen=True)
class PiiSpan:
    """One detected piece of personal data: its kind and its ``[start, end)`` offsets in the input."""

    kind: str
    start: int
    end: int


# --- validators ---------------------------------------------------------------------------------------


def luhn_valid(digits: str) -> bool:
    """The Luhn checksum used by every payment card network."""
    if not digits.isdigit():
        return False
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def iban_valid(iban: str) -> bool:
    """ISO 13616 check: move the country code and check digits to the end, read letters as 10-35, mod 97 == 1."""
    compact = re.sub(r"\s", "", iban).upper()
    if not (15 <= len(compact) <= 34 and compact[:2].isalpha() and compact[2:4].isdigit() and compact.isalnum()):
        return False
    rearranged = compact[4:] + compact[:4]
    return int("".join(str(int(ch, 36)) for ch in rearranged)) % 97 == 1


def _digits(text: str) -> str:
    return re.sub(r"\D", "", text)


# --- patterns -----------------------------------------------------------------------------------------

_AT = r"(?:@|\s?[\[(]at[\])]\s?)"
_DOT = r"(?:\.|\s?[\[(]dot[\])]\s?)"
EMAIL_RE = re.compile(
    rf"(?<![\w.+-])[A-Za-z0-9][A-Za-z0-9._%+-]*{_AT}[A-Za-z0-9-]+(?:{_DOT}[A-Za-z0-9-]+)*{_DOT}[A-Za-z]{{2,24}}\b",
    re.IGNORECASE,
)
IBAN_RE = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?\b", re.IGNORECASE)
# A run of digits with single space/dash separators; the exact 13-19 digit window is chosen by Luhn below.
CARD_RUN_RE = re.compile(r"(?<![\w+\-.,])\d+(?:[ -]\d+)*(?![\w\-]|[.,]\d)")

# Spans the phone detectors must not touch: dates, times, money amounts, order/ticket/tracking ids.
_PROTECTED_RES = [
    re.compile(r"\b\d{4}[-/.]\d{1,2}[-/.]\d{1,2}\b"),  # 2024-05-01
    re.compile(r"\b\d{1,2}[-/.]\d{1,2}[-/.]\d{4}\b"),  # 01.05.2024, 5/1/2024
    re.compile(r"\b\d{1,2}:\d{2}(?::\d{2})?\b"),  # 10:30
    re.compile(
        r"(?:[$€£¥]|\b(?:USD|EUR|GBP|CNY|RMB|CHF)\b)\s?\d+(?:[ ,.]\d{3})*(?:[.,]\d{1,2})?"
        r"|\b\d+(?:[ ,.]\d{3})*(?:[.,]\d{1,2})?\s?(?:[$€£¥元]|(?:USD|EUR|GBP|CNY|RMB|CHF|euros?|dollars?)\b)",
        re.IGNORECASE,
    ),
    re.compile(
        r"\b(?:order|invoice|tracking|reference|ref|booking|ticket|case|rma|bestellung|commande|pedido|订单)"
        r"(?:\s*(?:no\.?|number|nr\.?|nummer|id|#))?\s*[:#]?\s*[A-Z0-9][A-Z0-9-]*",
        re.IGNORECASE,
    ),
]

_PHONE_WORDS = (
    r"phone|telephone|tel|mobile|cell|call|whatsapp|fax|telefon|handy|rufnummer|"
    r"t[ée]l[ée]phone|t[ée]l|portable|tel[ée]fono|m[óo]vil|llamar"
)
_PHONE_RES = [
    # After a phone keyword any 7-15 digit number is a phone number, formatted or not.
    re.compile(rf"\b(?:{_PHONE_WORDS})\b[^\d\n+]{{0,20}}(\+?\d[\d\s().\-/]{{5,}}\d)", re.IGNORECASE),
    re.compile(r"(?:电话|手机|联系方式|号码)[^\d\n+]{0,6}(\+?\d[\d\s().\-]{5,}\d)"),
    # International: +CC followed by digits, optional (0) or (area), separators.
    re.compile(r"(?<![\w+])(\+\s?\d(?:[\s.\-/]?(?:\(\d{1,4}\)|\d)){6,20})"),
    # US/Canada: (555) 123-4567, 555-123-4567, 1-800-555-0199.
    re.compile(r"(?<![\w+.\-])((?:1[\s.\-])?(?:\(\d{3}\)\s?|\d{3}[\s.\-])\d{3}[\s.\-]\d{4})(?![\w\-]|[.,]\d)"),
    # Chinese mobile: 1[3-9]x xxxx xxxx.
    re.compile(r"(?<![A-Za-z0-9_\-])((?:86[\s\-]?)?1[3-9]\d(?:[\s\-]?\d{4}){2})(?!\d)"),
    # European national numbers with a trunk 0: 030 12345678, 06 12 34 56 78, 020 7946 0958.
    re.compile(r"(?<![\w+.,/\-])(0\d{1,4}(?:[\s./\-]?\d{2,4}){1,5})(?![\w\-]|[.,]\d)"),
]
_PHONE_DIGITS = (7, 15)

_EN_SUFFIX_ABBR = r"St|Ave|Rd|Blvd|Ln|Hwy|Pkwy"
_EN_SUFFIX_FULL = (
    r"Street|Avenue|Road|Boulevard|Lane|Drive|Highway|Parkway|Way|Place|Court|Close|Square|Terrace|Crescent|Row"
)
_STREET_NAME_WORD = r"(?:[A-Z][\w'’\-]*|\d+(?:st|nd|rd|th))"
_ADDRESS_RES = [
    # 221B Baker Street, 1600 Pennsylvania Avenue NW, 5th Ave (capitalised street name, any suffix case).
    re.compile(
        rf"\b\d{{1,5}}[A-Za-z]?,?\s+(?:{_STREET_NAME_WORD}\s+){{1,4}}"
        rf"(?:(?i:{_EN_SUFFIX_FULL})\b|(?i:{_EN_SUFFIX_ABBR})\b\.?)(?:\s+(?:N|S|E|W|NE|NW|SE|SW)\b)?"
        r"(?:,?\s+(?:Apt|Apartment|Suite|Unit|Flat|#)\.?\s*[A-Z0-9-]+)?"
    ),
    # 123 main st: lower-case names only with an abbreviated suffix (full words are too common in prose).
    re.compile(rf"\b\d{{1,5}}[a-z]?\s+(?:[a-z][a-z'\-]*\s+){{1,3}}(?:{_EN_SUFFIX_ABBR.lower()})\b\.?"),
    # Hauptstraße 12, Berliner Str. 5a, Am Ring 3.
    re.compile(
        r"\b(?:[A-ZÄÖÜ][\wäöüß\-]*\s)?[A-ZÄÖÜ]?[\wäöüß\-]*"
        r"(?:straße|strasse|str\.|weg|gasse|platz|allee|ring|damm|ufer|chaussee)"
        r"\s+\d{1,4}\s?[a-z]?\b",
        re.IGNORECASE,
    ),
    # 12 rue de la Paix, 5, avenue des Champs-Élysées, 3 bis boulevard Voltaire.
    re.compile(
        r"\b\d{1,4}(?:\s?(?:bis|ter))?,?\s+(?:rue|avenue|av\.|boulevard|bd|place|chemin|impasse|allée|quai|cours)"
        r"(?:\s+(?:d[eu]s?|de\s+la|l['’]|la|le|les|du)?\s*[A-ZÉÈ][\w'’\-]*){1,4}",
        re.IGNORECASE,
    ),
    # Calle Mayor 5, calle de Alcalá, 23, Avenida de la Constitución 10, C/ Mayor 5.
    re.compile(
        r"\b(?:calle|c/|avenida|avda\.|paseo|plaza|carrera|camino|ronda)\s+"
        r"(?:(?:de(?:l| la| los| las)?|la|el)\s+)?(?:[A-ZÁÉÍÓÚÑ][\wáéíóúñ\-]*\s?){1,4},?\s*(?:n[º°o]\.?\s*)?\d{1,4}\b",
        re.IGNORECASE,
    ),
]


# --- detection ----------------------------------------------------------------------------------------


def _mask(text: str, spans: Iterable[tuple[int, int]]) -> str:
    chars = list(text)
    for start, end in spans:
        chars[start:end] = _MASK * (end - start)
    return "".join(chars)


def _card_window(run: str, offset: int) -> tuple[int, int] | None:
    """The longest (then leftmost) group window of a digit run that is a 13-19 digit Luhn-valid card number."""
    groups = [(m.start(), m.end()) for m in re.finditer(r"\d+", run)]
    best: tuple[int, int] | None = None
    for i in range(len(groups)):
        for j in range(i, len(groups)):
            start, end = groups[i][0], groups[j][1]
            digits = _digits(run[start:end])
            if len(digits) > 19:
                break
            if len(digits) < 13 or len(set(digits)) == 1 or not luhn_valid(digits):
                continue
            if best is None or end - start > best[1] - best[0]:
                best = (start, end)
    return None if best is None else (offset + best[0], offset + best[1])


def _detect(text: str, claimed: list[PiiSpan]) -> None:
    """Append detected spans to ``claimed``; each detector sees earlier finds masked out."""
    work = _mask(text, ((s.start, s.end) for s in claimed))

    def claim(kind: str, start: int, end: int) -> None:
        nonlocal work
        claimed.append(PiiSpan(kind, start, end))
        work = work[:start] + _MASK * (end - start) + work[end:]

    for m in EMAIL_RE.finditer(work):
        claim("email", m.start(), m.end())
    for m in IBAN_RE.finditer(work):
        if iban_valid(m.group()):
            claim("iban", m.start(), m.end())
    for m in CARD_RUN_RE.finditer(work):
        window = _card_window(m.group(), m.start())
        if window:
            claim("card", *window)

    protected = [(m.start(), m.end()) for rx in _PROTECTED_RES for m in rx.finditer(work)]
    for rx in _PHONE_RES:
        phone_view = _mask(work, protected)
        for m in rx.finditer(phone_view):
            start, end = m.span(1)
            if _PHONE_DIGITS[0] <= len(_digits(m.group(1))) <= _PHONE_DIGITS[1]:
                claim("phone", start, end)
    for rx in _ADDRESS_RES:
        for m in rx.finditer(work):
            if _MASK not in m.group():
                claim("address", m.start(), m.end())


def find_pii(text: str) -> list[PiiSpan]:
    """All detected spans, sorted by position and non-overlapping."""
    if not isinstance(text, str):
        raise TypeError(f"find_pii expects a string, got {type(text).__name__}")
    spans: list[PiiSpan] = []
    _detect(text, spans)
    return sorted(spans, key=lambda s: s.start)


def redact(text: str) -> str:
    """``text`` with every detected span replaced by its typed placeholder, e.g. ``[EMAIL]``."""
    spans = find_pii(text)
    if not spans:
        return text
    parts, pos = [], 0
    for span in spans:
        parts.append(text[pos : span.start])
        parts.append(PLACEHOLDERS[span.kind])
        pos = span.end
    parts.append(text[pos:])
    return "".join(parts)


def contains_pii(text: str) -> bool:
    """Whether :func:`redact` would change ``text``."""
    return bool(find_pii(text))


def redact_obj(value: Any, redactor: Callable[[str], str] = redact) -> Any:
    """Redact every string inside a JSON-like value (dicts, lists, scalars); keys are kept as they are."""
    if isinstance(value, str):
        return redactor(value)
    if isinstance(value, dict):
        return {k: redact_obj(v, redactor) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact_obj(v, redactor) for v in value]
    return value
