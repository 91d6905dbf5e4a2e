"""Safety guard: the calibrated request-risk model on what comes in, a response check on what goes out.

Input: p(harmful | conversation) from :class:`~reward_models.risk_model.RequestRiskModel`; at or above its
threshold (chosen on a calib split by the rule stored with the model) the request gets a fixed polite refusal
and never reaches the policy. Output: each answer is classed as a refusal (the judge's multilingual refusal
patterns), harmful compliance (not a refusal, and the request it answers scores at or above the threshold, or
the answer itself at or above the answer threshold, which was chosen on answers: the request model reads an
ordinary answer as a riskier text than the request it answers) or an ordinary answer; harmful compliance is
replaced. The service holds streamed text
back until the answer so far passes, so a customer never sees what the check then removes. A third threshold
marks requests as clearly benign (few harmful calib requests score below it): the support chat hands a policy
refusal of such a request to a human instead. Without a risk model the guard is off and says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

INPUT_REFUSAL = (
    "I'm sorry, but I can't help with that request. I'm happy to help with orders, deliveries, returns, "
    "your account or a translation."
)
OUTPUT_REPLACEMENT = (
    "I'm sorry, I can't give a reliable answer to that. I can connect you with a human colleague if you like."
)

ResponseKind = Literal["refusal", "harmful_compliance", "answer"]

# Streamed answers are checked from their first word on, and first words repeat ("You", "Yes", "Your order"):
# answer texts up to this many characters keep their risk score, so the check before the first token is shown
# costs a lookup instead of a model call once a word has been seen. The verdict is the same either way.
SHORT_ANSWER_CHARS = 24
SHORT_ANSWER_CACHE = 4096


@dataclass(frozen=True)
class Verdict:
    """Whether a text passed, the risk it scored (None when the guard is off), the text to show and why."""

    safe: bool
    score: float | None
    text: str
    reason: str = ""
    kind: ResponseKind | None = None


class Guard:
    """Request-risk model + response check; ``threshold`` None = the one stored with the model.

    ``answer_threshold`` None = the stored answer threshold, or ``threshold`` itself when that is given.
    """

    def __init__(self, risk: Any | None, threshold: float | None = None, answer_threshold: float | None = None) -> None:
        self.risk = risk
        self.threshold = threshold if threshold is not None else (risk.threshold if risk is not None else None)
        if answer_threshold is None and risk is not None:
            answer_threshold = threshold if threshold is not None else risk.answer_threshold
        self.answer_threshold = answer_threshold
        self._short_answer_risk = lru_cache(maxsize=SHORT_ANSWER_CACHE)(self._score_answer)

    @classmethod
    def load(cls, risk_dir: str | Path | None, threshold: float | None = None) -> Guard:
        """The request-risk model saved at ``risk_dir`` (``runs/<run>/risk/model``), or an inactive guard."""
        if not risk_dir:
            return cls(None, threshold)
        from reward_models.risk_model import RequestRiskModel

        return cls(RequestRiskModel.from_pretrained(risk_dir), threshold)

    @property
    def enabled(self) -> bool:
        return self.risk is not None

    @property
    def benign_threshold(self) -> float | None:
        """Below this request risk a request is clearly benign (None: guard off or no threshold stored)."""
        return getattr(self.risk, "benign_threshold", None) if self.risk is not None else None

    def clearly_benign(self, request_risk: float | None) -> bool:
        """Whether a request's risk lies below the benign threshold (never without a guard or a threshold)."""
        threshold = self.benign_threshold
        return threshold is not None and request_risk is not None and request_risk < threshold

    def note(self) -> str:
        """One line for the UI footer."""
        if not self.enabled:
            return "Safety guard: off (start the server with --risk-model to turn it on)."
        benign = "" if self.benign_threshold is None else f"; clearly benign below p < {self.benign_threshold:.3f}"
        return (f"Safety guard: on (request-risk model, threshold p >= {self.threshold:.3f}; answers replaced at "
                f"p >= {self.answer_threshold:.3f}{benign}).")

    def request_risk(self, conversation: list[dict[str, str]] | str) -> float:
        return float(self.risk.probability(conversation))

    def check_input(self, conversation: list[dict[str, str]]) -> Verdict:
        """Screen the latest user message (with the user turns before it)."""
        last = conversation[-1]["content"] if conversation else ""
        if not self.enabled:
            return Verdict(True, None, last, "guard off")
        p = self.request_risk(conversation)
        if p >= self.threshold:
            return Verdict(False, p, INPUT_REFUSAL, f"request risk {p:.3f} >= threshold {self.threshold:.3f}")
        return Verdict(True, p, last, f"request risk {p:.3f} < threshold {self.threshold:.3f}")

    def classify_response(self, request_risk: float, response: str) -> tuple[ResponseKind, float]:
        """(refusal | harmful_compliance | answer, the answer's own risk score)."""
        from groundwork.judge import is_refusal

        if is_refusal(response):
            return "refusal", 0.0
        if not response.strip():
            p_answer = 0.0
        elif len(response) <= SHORT_ANSWER_CHARS:
            p_answer = self._short_answer_risk(response)
        else:
            p_answer = self._score_answer(response)
        if request_risk >= self.threshold or p_answer >= self.answer_threshold:
            return "harmful_compliance", p_answer
        return "answer", p_answer

    def _score_answer(self, response: str) -> float:
        return float(self.risk.probability(response))

    def check_output(self, conversation: list[dict[str, str]], response: str, context: str | None = None,
                     request_risk: float | None = None) -> Verdict:
        """Screen a (partial or whole) answer; harmful compliance is replaced."""
        if not self.enabled:
            return Verdict(True, None, response, "guard off")
        if request_risk is None:
            request_risk = self.request_risk(conversation)
        kind, p_answer = self.classify_response(request_risk, response)
        if kind == "harmful_compliance":
            return Verdict(False, max(request_risk, p_answer), OUTPUT_REPLACEMENT,
                           f"answer risk {p_answer:.3f} (answer threshold {self.answer_threshold:.3f}) or request "
                           f"risk {request_risk:.3f} (threshold {self.threshold:.3f}) too high, and the answer is "
                           "not a refusal", kind)
        return Verdict(True, max(request_risk, p_answer), response, f"answer classed as {kind}", kind)
