"""A public support set in miniature: a csv of requests with an intent column, and its request-source entry."""

from __future__ import annotations

import csv
from pathlib import Path

from groundwork.sections.risk import RiskSourceSection


def intent_csv(path: Path, intents: tuple[str, ...], rows: int, text: str = "request {index} {intent}") -> Path:
    """``rows`` requests cycling through ``intents``; ``text`` formats each (``{index}``, ``{intent}`` spaced)."""
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["instruction", "intent"])
        writer.writeheader()
        for index in range(rows):
            intent = intents[index % len(intents)]
            writer.writerow({"instruction": text.format(index=index, intent=intent.replace("_", " ")),
                             "intent": intent})
    return path


def csv_source(path: Path) -> RiskSourceSection:
    """The csv as a benign support source of ``risk.sources``."""
    return RiskSourceSection(name="support-csv", local=str(path), format="csv", text_field="instruction",
                             label="benign", stratum="support")
