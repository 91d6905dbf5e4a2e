"""Safety as a constraint: the PPO-Lagrangian multiplier and the composite it weights.

The policy maximizes ``quality + faithfulness + (w_s + lambda) * safety`` (divided by ``1 + lambda`` so the
reward scale stays put). With a request-risk model the composite is routed by p = p(harmful | request):
``p * safety-alone + (1 - p) * (quality + faithfulness)`` (:func:`combine_routed`): on a risky request only
whether the answer is safe matters; on an ordinary one, the safety model (which tells refusals from
compliance) has nothing to say. After each PPO step
``lambda += lr * (threshold - mean_safety)``, clipped to ``[0, lagrange_max]``: it grows while the batch is
less safe than the threshold and decays back to 0 once the constraint holds, so safety only dominates when it
is actually violated (Safe-RLHF's dual update).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from groundwork.sections.reward import CompositeSection


class LagrangeMultiplier:
    """The dual variable of the safety constraint ``E[safety] >= threshold``."""

    def __init__(self, cfg: CompositeSection) -> None:
        self.cfg = cfg
        self.value = max(0.0, cfg.lagrange_init)

    def update(self, mean_safety: float) -> float:
        step = self.cfg.lagrange_lr * (self.cfg.safety_threshold - mean_safety)
        self.value = min(self.cfg.lagrange_max, max(0.0, self.value + step))
        return self.value


def combine(scores: Mapping[str, float], cfg: CompositeSection, lagrange: float):
    """Composite of normalized per-objective scores (floats or tensors); missing objectives count 0."""
    total = 0.0
    if "quality" in scores:
        total = total + cfg.quality_weight * scores["quality"]
    if "faithfulness" in scores:
        total = total + cfg.faithfulness_weight * scores["faithfulness"]
    if "safety" in scores:
        total = total + (cfg.safety_weight + lagrange) * scores["safety"]
    return total / (1.0 + lagrange)


def safety_route_weight(cfg: CompositeSection) -> float:
    """Scale of a safety-routed reward: the three weights together, so it spans what a full composite does."""
    return cfg.quality_weight + cfg.faithfulness_weight + cfg.safety_weight


def combine_routed(scores: Mapping[str, float], risk: float | None, cfg: CompositeSection, lagrange: float,
                   bad_form=0.0, refused=0.0):
    """The composite for a request of risk ``risk`` = p(harmful) (floats or tensors).

    ``risk * (w_q + w_f + w_s) * safety + (1 - risk) * (w_q * quality + w_f * faithfulness - w_form * bad
    - w_refusal * refused)``, where ``bad_form`` is 1 for an answer of bad form
    (:func:`groundwork.answer_form.bad_form`: filler only, repeated or echoed; never a refusal) and ``refused``
    is 1 for a refusal, else 0. A refusal thus costs in proportion to how safe the request model finds the
    request: nothing for a harmful one, the full weight for a support question. Routing makes the multiplier
    unnecessary (``lagrange`` is unused here): safety already decides alone where it matters. Without a risk
    (no request-risk model) it is :func:`combine` minus the form penalty (no one says which refusals are wrong).
    """
    penalty = cfg.form_weight * bad_form
    if risk is None or "safety" not in scores:
        return combine(scores, cfg, lagrange) - penalty
    safe_part = safety_route_weight(cfg) * scores["safety"]
    ordinary = combine(without_safety(scores), cfg, 0.0) - penalty - cfg.refusal_weight * refused
    return risk * safe_part + (1.0 - risk) * ordinary


def form_flags(questions: Sequence[str], responses: Sequence[str]) -> list[float]:
    """1.0 for each answer of bad form, else 0.0 (the ``bad_form`` of :func:`combine_routed`)."""
    from groundwork.answer_form import bad_form

    return [float(bad_form(r, q)) for q, r in zip(questions, responses, strict=True)]


def refusal_flags(responses: Sequence[str]) -> list[float]:
    """1.0 for each refusal (:func:`groundwork.judge.is_refusal`), else 0.0 (the ``refused`` of
    :func:`combine_routed`)."""
    from groundwork.judge import is_refusal

    return [float(is_refusal(r)) for r in responses]


def without_safety(scores: Mapping[str, object]) -> dict[str, object]:
    """The scores minus the safety objective (:func:`combine` counts a missing objective as 0)."""
    return {objective: value for objective, value in scores.items() if objective != "safety"}
