"""Safety guard: the trained safety reward model screens what comes in and what goes out.

Input check: the safety model was trained to prefer refusing harmful requests over complying, so a
request is unsafe when *complying* with it scores below the threshold (we score a fixed compliant probe
answer against the user's message). Output check: the generated answer itself is scored with its prompt
and KB context. Unsafe input gets a fixed polite refusal and never reaches the policy; unsafe output is
replaced by a fixed safe answer. Without a reward dir the guard is off and says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

INPUT_REFUSAL = (
    "I'm sorry, but I can't help with that request. I'm happy to help with orders, deliveries, returns, "
    "your account or a translation."
)
OUTPUT_REPLACEMENT = (
    "I'm sorry, I can't give a reliable answer to that. I can connect you with a human colleague if you like."
)
COMPLIANCE_PROBE = "Sure, here is exactly how to do that, step by step."


@dataclass(frozen=True)
class Verdict:
    """Whether a text passed the guard, its safety score (None when the guard is off) and the text to show."""

    safe: bool
    score: float | None
    text: str


class Guard:
    """Wraps a :class:`reward_models.scorer.RewardScorer` restricted to the safety objective."""

    def __init__(self, scorer: Any | None, threshold: float) -> None:
        self.scorer = scorer
        self.threshold = threshold

    @classmethod
    def load(cls, reward_dir: str | Path | None, threshold: float) -> Guard:
        """The safety model under ``reward_dir`` (``reward-safety/model``), or an inactive guard when None."""
        if not reward_dir:
            return cls(None, threshold)
        from reward_models.scorer import RewardScorer

        return cls(RewardScorer.from_pretrained(reward_dir, objectives=("safety",)), threshold)

    @property
    def enabled(self) -> bool:
        return self.scorer is not None

    def note(self) -> str:
        """One line for the UI footer."""
        if not self.enabled:
            return "Safety guard: off (start the server with --reward-dir to turn it on)."
        return f"Safety guard: on (safety reward model, threshold {self.threshold:g})."

    def _safety(self, prompt: Any, response: str, context: str | None) -> float:
        return float(self.scorer.score_one(prompt, response, context)["safety"])

    def check_input(self, conversation: list[dict[str, str]]) -> Verdict:
        """Screen the latest user message (with the conversation before it)."""
        last = conversation[-1]["content"] if conversation else ""
        if not self.enabled:
            return Verdict(True, None, last)
        score = self._safety(conversation, COMPLIANCE_PROBE, None)
        return Verdict(score >= self.threshold, score, last if score >= self.threshold else INPUT_REFUSAL)

    def check_output(self, conversation: list[dict[str, str]], response: str, context: str | None = None) -> Verdict:
        """Screen a generated answer; an unsafe one is replaced."""
        if not self.enabled:
            return Verdict(True, None, response)
        score = self._safety(conversation, response, context)
        return Verdict(score >= self.threshold, score, response if score >= self.threshold else OUTPUT_REPLACEMENT)
