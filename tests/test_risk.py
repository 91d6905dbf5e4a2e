"""The request-risk model: data splits, windows, training on the project's data (smoke size), save/load, the
threshold rule, and the routed composite that uses it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from dialogue.answer_classes import classify_answer, is_degenerate, is_non_answer
from groundwork.recipe import load_recipe
from groundwork.sections.reward import CompositeSection
from groundwork.sections.risk import RiskSourceSection
from reward_models.lagrange import combine, combine_routed, form_flags, refusal_flags
from reward_models.risk_data import HARMFUL, public_rows, split_of
from reward_models.risk_model import RequestRiskModel, request_text, text_windows, window_with
from reward_models.risk_train import auc, auc_interval, choose_threshold

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module", name="trained")
def trained_fixture(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    from reward_models.risk_train import run_risk_training

    out = tmp_path_factory.mktemp("risk")
    recipe = load_recipe(ROOT / "configs" / "smoke.yaml", [f"run.output_dir={out}"])
    metrics = run_risk_training(recipe)
    return out / "smoke" / "risk", metrics


def test_split_is_stable_and_keeps_parallel_rows_together(tmp_path: Path) -> None:
    assert split_of("xsafety/Insult/3", 0.25, 0.15) == split_of("xsafety/Insult/3", 0.25, 0.15)
    shares = [split_of(f"k{i}", 0.25, 0.15) for i in range(4000)]
    assert abs(shares.count("dev") / 4000 - 0.25) < 0.03 and abs(shares.count("calib") / 4000 - 0.15) < 0.03
    path = tmp_path / "x.jsonl"
    rows = [{"lang": lang, "category": "Insult" if lang != "en" else "Insult_n", "text": f"{lang} text {i}"}
            for lang in ("en", "zh", "fr") for i in range(40)]
    path.write_text("\n".join(json.dumps(r) for r in rows), encoding="utf-8")
    loaded = public_rows(RiskSourceSection(name="xsafety", local=str(path), format="xsafety", label="harmful"))
    by_group: dict[str, set[str]] = {}
    for row in loaded:
        by_group.setdefault(row.group, set()).add(row.split)
        assert row.label == HARMFUL
    assert len(by_group) == 40 and all(len(splits) == 1 for splits in by_group.values())


def test_declined_field_keeps_only_requests_whose_own_reply_declines(tmp_path: Path) -> None:
    path = tmp_path / "stl.jsonl"
    rows = [{"instruction": "Explain how to pick a lock to break into a house.",
             "refusal": "I'm sorry, but I can't help with breaking into a house."},
            {"instruction": "Summarize the theory of relativity.",
             "refusal": "The theory of relativity is a set of two theories developed by Albert Einstein."},
            {"instruction": "A row without a reply."}]
    path.write_text("\n".join(json.dumps(r) for r in rows), encoding="utf-8")
    source = RiskSourceSection(name="stl", local=str(path), text_field="instruction", label="harmful")
    assert len(public_rows(source)) == 3
    kept = public_rows(RiskSourceSection(**{**source.__dict__, "declined_field": "refusal"}))
    assert [row.text for row in kept] == [rows[0]["instruction"]]


def test_absent_source_is_skipped_with_a_message(capsys) -> None:
    assert public_rows(RiskSourceSection(name="gone", local="/nonexistent/file.jsonl")) == []
    assert "skipping" in capsys.readouterr().err


def test_windows_cover_long_prompts_and_training_reads_the_request() -> None:
    long = " ".join(["filler"] * 300) + " how do I build a weapon at home"
    windows = text_windows(long, 80)
    assert len(windows) > 3 and all(len(w.split()) <= 80 for w in windows)
    assert "weapon" in windows[-1]
    assert "weapon" in window_with(long, "how do I build a weapon at home", 80)
    assert text_windows("短文本", 80) == ["短文本"]
    assert len(text_windows("字" * 500, 80)) > 1


def test_request_text_reads_the_latest_user_turns() -> None:
    conv = [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}, {"role": "user", "content": "c"}]
    assert request_text(conv) == "a\nc" and request_text("plain") == "plain"


def test_threshold_rule_bounds_false_blocks() -> None:
    rng = np.random.default_rng(0)
    support = rng.uniform(0, 0.5, 200)
    risky = rng.uniform(0.2, 0.8, 100)
    probs = np.concatenate([support, risky])
    strata = ["support"] * 200 + ["benign_risky"] * 100
    threshold, rule = choose_threshold(probs, strata, 0.02, 0.10)
    assert np.mean(support >= threshold) <= 0.02 and np.mean(risky >= threshold) <= 0.10
    # The lowest such threshold: one step lower breaks a bound.
    lower = np.nextafter(threshold, 0) - 1e-9
    assert np.mean(support >= lower) > 0.02 or np.mean(risky >= lower) > 0.10
    assert "2.0%" in rule


def test_answer_threshold_rule_flags_at_most_the_allowed_share_and_is_the_lowest() -> None:
    from reward_models.risk_answers import choose_answer_threshold

    scores = np.random.default_rng(1).uniform(0, 1, 500)
    threshold, rule = choose_answer_threshold(scores, 0.01)
    assert np.mean(scores >= threshold) <= 0.01
    assert np.mean(scores >= np.nextafter(threshold, 0) - 1e-9) > 0.01
    assert "1.0%" in rule and "500" in rule
    assert choose_answer_threshold(np.array([]), 0.01)[0] == 1.0


def test_the_answer_threshold_is_chosen_on_project_answers_and_reported(trained) -> None:
    from reward_models.risk_answers import benign_answers, compliance_answers

    stage, metrics = trained
    model = RequestRiskModel.from_pretrained(stage / "model")
    assert model.settings.answer_threshold == metrics["answer_threshold"] == model.answer_threshold
    benign = benign_answers(ROOT / "data", "train")
    assert len(benign) > 500 and any("€" in a or "¿" in a or "ü" in a for a in benign)  # translations too
    assert np.mean(np.array(model.probabilities(benign)) >= model.answer_threshold) <= 0.01
    assert 0.0 <= metrics["heldout_benign_answers_flagged"] <= 0.05
    assert metrics["heldout_answers"]["compliance"] == len(compliance_answers(ROOT / "data", "heldout")) > 50


def test_the_benign_threshold_is_chosen_on_harmful_calib_requests_and_reported(trained) -> None:
    import json

    stage, metrics = trained
    model = RequestRiskModel.from_pretrained(stage / "model")
    assert model.benign_threshold == metrics["benign_threshold"] is not None and "harmful calib" in \
        metrics["benign_threshold_rule"]
    calib = [json.loads(line) for line in (stage / "calib.jsonl").read_text(encoding="utf-8").splitlines()]
    harmful = np.array(model.probabilities([row["text"] for row in calib if row["label"] == 1]))
    # The rule's bound, on the rows it was chosen on (scores move by float noise with the batch they are in).
    assert np.mean(harmful < model.benign_threshold - 1e-4) <= 0.01
    for key in ("dev_clearly_benign_support", "dev_clearly_benign_harmful_label"):
        assert 0.0 <= metrics[key] <= 1.0


def test_trained_model_saves_loads_and_scores(trained) -> None:
    stage, metrics = trained
    model = RequestRiskModel.from_pretrained(stage / "model")
    p = model.probabilities(["When will my order arrive?", "How do I steal a customer's card number?", ""])
    assert len(p) == 3 and all(0.0 <= x <= 1.0 for x in p)
    assert model.probability([{"role": "user", "content": "When will my order arrive?"}]) == pytest.approx(p[0])
    assert 0.0 < metrics["threshold"] < 1.0 and metrics["threshold"] == model.threshold
    assert metrics["dev_rows"] > 0 and metrics["dev_auc"] is not None
    assert (stage / "risk_scores.png").stat().st_size > 1000
    assert (stage / "dev.jsonl").is_file() and (stage / "metrics.json").is_file()
    # The tiny random encoder learns little; the character n-gram part alone already separates the project's
    # harmful requests from its support questions on the held-out rows.
    assert metrics["dev_auc_vs_support"] > 0.8
    low, high = metrics["dev_auc_interval"]
    assert low <= metrics["dev_auc"] <= high
    assert metrics["dev_auc_en_interval"][0] <= metrics["dev_auc_en"] <= metrics["dev_auc_en_interval"][1]


def test_probabilities_from_cached_windows_follow_a_refitted_combiner(trained) -> None:
    """The stage scores the calib windows once and refits the combiner on them: the cached windows must give what
    scoring afresh gives under the new weights, riskiest window included."""
    stage, _ = trained
    model = RequestRiskModel.from_pretrained(stage / "model")
    long_prompt = " ".join(["Please tell me a story about a friendly dragon."] * 30) + " How do I steal a card?"
    texts = ["When will my order arrive?", long_prompt, "How do I steal a customer's card number?"]
    cached = model.window_scores(texts)
    assert len(cached.owner) > len(texts)  # the long prompt has several windows
    for weights in ([1.0, 0.0], [0.0, 1.0], [0.7, -0.3]):
        model.settings.combiner_weights = weights
        assert model.probabilities_from(cached) == pytest.approx(model.probabilities(texts))


def test_auc_interval_holds_the_auc_and_narrows_with_more_rows() -> None:
    rng = np.random.default_rng(1)

    def sample(n: int) -> tuple[list[float], list[float]]:
        return list(rng.normal(1.0, 1.0, n)), list(rng.normal(0.0, 1.0, 2 * n))

    few, many = sample(30), sample(1000)
    few_interval, many_interval = auc_interval(*few), auc_interval(*many)
    assert few_interval[0] <= auc(*few) <= few_interval[1]
    assert many_interval[0] <= auc(*many) <= many_interval[1]
    assert few_interval[1] - few_interval[0] > 2 * (many_interval[1] - many_interval[0])
    assert auc_interval([0.9, 0.8], [0.1, 0.2]) == [1.0, 1.0]  # separated in every resample
    assert auc_interval([], [0.1]) is None


def test_missing_model_folder_is_one_clear_error(tmp_path: Path) -> None:
    from groundwork.errors import ModelNotFoundError

    with pytest.raises(ModelNotFoundError, match="no request-risk model"):
        RequestRiskModel.from_pretrained(tmp_path)


def test_routed_composite_weighs_safety_by_the_request_risk() -> None:
    cfg = CompositeSection(quality_weight=1.0, faithfulness_weight=0.5, safety_weight=0.25)
    scores = {"quality": 0.4, "faithfulness": -0.2, "safety": 1.2}
    assert combine_routed(scores, 1.0, cfg, 0.3) == pytest.approx(1.75 * 1.2)
    assert combine_routed(scores, 0.0, cfg, 0.3) == pytest.approx(0.4 - 0.1)
    mixed = combine_routed(scores, 0.25, cfg, 0.3)
    assert mixed == pytest.approx(0.25 * 1.75 * 1.2 + 0.75 * 0.3)
    assert combine_routed(scores, None, cfg, 0.3) == pytest.approx(combine(scores, cfg, 0.3))


def test_form_penalty_makes_a_non_answer_lose_in_the_ordinary_route_only() -> None:
    cfg = CompositeSection(form_weight=2.0)
    question = "When will my order arrive?"
    answers = ["I can help you with that.", "When will my order arrive? When will my order arrive?",
               "I'm sorry, but I can't help with that.", "Standard shipping takes 3 to 5 business days."]
    assert form_flags([question] * 4, answers) == [1.0, 1.0, 0.0, 0.0]
    scores = {"quality": 0.5, "faithfulness": 0.5, "safety": 0.0}
    assert combine_routed(scores, 0.0, cfg, 0.0, 1.0) == pytest.approx(1.0 - 2.0)
    assert combine_routed(scores, 0.25, cfg, 0.0, 1.0) == pytest.approx(0.75 * (1.0 - 2.0))
    assert combine_routed(scores, 1.0, cfg, 0.0, 1.0) == combine_routed(scores, 1.0, cfg, 0.0, 0.0)
    assert combine_routed(scores, None, cfg, 0.0, 1.0) == pytest.approx(combine(scores, cfg, 0.0) - 2.0)


def test_a_refusal_costs_by_how_safe_the_request_is() -> None:
    cfg = CompositeSection(refusal_weight=2.0)
    answers = ["I'm sorry, but I can't help with that.", "I can help you with that.",
               "Standard shipping takes 3 to 5 business days."]
    assert refusal_flags(answers) == [1.0, 0.0, 0.0]
    scores = {"quality": 0.5, "faithfulness": 0.5, "safety": 0.8}
    assert combine_routed(scores, 0.0, cfg, 0.0, 0.0, 1.0) == pytest.approx(1.0 - 2.0)  # a support question
    assert combine_routed(scores, 0.25, cfg, 0.0, 0.0, 1.0) == pytest.approx(
        0.25 * 2.5 * 0.8 + 0.75 * (1.0 - 2.0))
    assert combine_routed(scores, 1.0, cfg, 0.0, 0.0, 1.0) == combine_routed(scores, 1.0, cfg, 0.0)  # harmful
    assert combine_routed(scores, None, cfg, 0.0, 0.0, 1.0) == combine_routed(scores, None, cfg, 0.0)  # no router
    off = CompositeSection(refusal_weight=0.0)
    assert combine_routed(scores, 0.0, off, 0.0, 0.0, 1.0) == combine_routed(scores, 0.0, off, 0.0)


@pytest.mark.parametrize(("text", "question", "expected"), [
    ("I can help you with that.", "When will my order arrive?", "non_answer"),
    ("Happy to help! Is there anything else I can help you with?", "Where is my refund?", "non_answer"),
    ("Sure.", "Where is my refund?", "non_answer"),
    ("We can help you with that.", "Where is my refund?", "non_answer"),
    ("I'm sorry for any misunderstanding, I can help with that.", "Where is my refund?", "non_answer"),
    ("I'm sorry for the confusion. Refunds reach your card within 5 business days.", "Where is my refund?",
     "substantive"),
    ("Refunds reach your card within 5 business days after we receive the return.", "Where is my refund?",
     "substantive"),
    ("I'm sorry, but I can't help with that request.", "How do I pick a lock?", "refused"),
    ("The item ships in 2 days. The item ships in 2 days. The item ships in 2 days.", "When?", "degenerate"),
    ("Where is my parcel from last week please tell me", "Where is my parcel from last week", "degenerate"),
    ("您的订单将在三到五个工作日内送达，请留意物流信息。", "我的订单什么时候到？", "substantive"),
])
def test_answer_classes(text: str, question: str, expected: str) -> None:
    assert classify_answer(text, question, blocked=False) == expected


def test_blocked_and_replaced_take_precedence() -> None:
    assert classify_answer("anything", "q", blocked=True) == "blocked"
    assert classify_answer("Refunds take 5 days.", "q", blocked=False, replaced=True) == "refused"
    assert is_non_answer("") and not is_degenerate("One sentence only here.")


def test_audit_min_reads_only_the_objectives_the_routed_composite_uses() -> None:
    from dialogue.reward_audit import audit_min

    agreement = {"harmful": {"right": 3, "wrong": 2, "quality": 0.1, "faithfulness": 0.2, "safety": 0.9,
                             "composite": 0.85},
                 "support": {"right": 3, "wrong": 2, "quality": 0.7, "faithfulness": 0.95, "safety": 0.05,
                             "composite": 0.8}}
    assert audit_min(agreement) == (0.7, "support/quality")
    agreement["harmful"]["safety"] = 0.4
    assert audit_min(agreement) == (0.4, "harmful/safety")
    assert audit_min({}) == (None, None)


def test_frozen_encoder_mode_trains_saves_and_loads(tmp_path: Path) -> None:
    from reward_models.risk_train import run_risk_training

    recipe = load_recipe(ROOT / "configs" / "smoke.yaml", [f"run.output_dir={tmp_path}", "risk.encoder_mode=frozen",
                                                           "risk.eval_rows_per_source=30"])
    metrics = run_risk_training(recipe)
    model = RequestRiskModel.from_pretrained(tmp_path / "smoke" / "risk" / "model")
    assert model.settings.encoder_mode == "frozen" and model.head is not None
    texts = ["When will my order arrive?", "How do I steal a customer's card number?"]
    again = RequestRiskModel.from_pretrained(tmp_path / "smoke" / "risk" / "model").probabilities(texts)
    assert model.probabilities(texts) == pytest.approx(again)
    assert metrics["threshold"] == model.threshold and metrics["dev_auc"] is not None
