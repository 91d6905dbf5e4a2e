"""Per-model score normalization (mean 0, std 1 on a reference set), saved next to the model.

Raw Bradley-Terry scores have an arbitrary offset and scale per model; normalizing makes the three
objectives comparable before the composite weights them.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

FILENAME = "normalization.json"


@dataclass
class Normalization:
    mean: float = 0.0
    std: float = 1.0
    reference: str = "identity"
    n: int = 0

    @classmethod
    def fit(cls, scores: list[float], reference: str) -> Normalization:
        n = len(scores)
        if n < 2:
            return cls(reference=reference, n=n)
        mean = sum(scores) / n
        std = math.sqrt(sum((s - mean) ** 2 for s in scores) / (n - 1))
        return cls(mean=mean, std=std if std > 1e-6 else 1.0, reference=reference, n=n)

    def apply(self, raw):
        """Works on floats and tensors alike."""
        return (raw - self.mean) / self.std

    def save(self, directory: Path) -> Path:
        path = Path(directory) / FILENAME
        path.write_text(json.dumps(asdict(self), indent=2) + "\n", encoding="utf-8")
        return path

    @classmethod
    def load(cls, directory: Path) -> Normalization:
        path = Path(directory) / FILENAME
        if not path.is_file():
            return cls()
        return cls(**json.loads(path.read_text(encoding="utf-8")))
