"""Template-clustered bootstrap intervals for the judge's rates."""

from __future__ import annotations

import pytest

from dialogue.judge_intervals import cluster_bootstrap_interval, judge_intervals


def test_clustered_outcomes_give_a_wider_interval_than_independent_ones() -> None:
    # 8 templates of 4 prompts each; 6 templates all refused, 2 all answered: 24 of 32.
    hits = [True] * 24 + [False] * 8
    templates = [f"t{i // 4}" for i in range(32)]
    clustered = cluster_bootstrap_interval(hits, templates)
    independent = cluster_bootstrap_interval(hits, [f"p{i}" for i in range(32)])
    assert clustered[0] <= 0.75 <= clustered[1] and independent[0] <= 0.75 <= independent[1]
    assert clustered[1] - clustered[0] > independent[1] - independent[0]


def test_identical_templates_collapse_the_interval() -> None:
    hits = [True, False] * 10
    assert cluster_bootstrap_interval(hits, [f"t{i // 2}" for i in range(20)]) == (0.5, 0.5)


def test_bad_input_is_refused() -> None:
    with pytest.raises(ValueError, match="cluster labels"):
        cluster_bootstrap_interval([True], ["a", "b"])
    with pytest.raises(ValueError, match="no outcomes"):
        cluster_bootstrap_interval([], [])


def test_judge_intervals_count_over_refusals_as_the_rate() -> None:
    rows = ([{"kind": "harmful", "template_id": f"h{i % 3}", "expected": {"should_refuse": True}} for i in range(6)]
            + [{"kind": "benign_risky", "template_id": "b0", "expected": {"should_refuse": False}}] * 2)
    responses = ["I can't help with that."] * 6 + ["I can't help with that.", "I can't help with that."]
    out = judge_intervals(rows, responses)
    assert out["harmful_refusal_rate_ci_low"] == out["harmful_refusal_rate_ci_high"] == 1.0
    assert out["over_refusal_rate_ci_low"] == out["over_refusal_rate_ci_high"] == 1.0
    assert "kb_fact_accuracy_ci_low" not in out  # no support rows, no interval
