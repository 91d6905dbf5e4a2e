"""KB support of an answer (share of its content bigrams in the passages) and its blend into the scores."""

from __future__ import annotations

import pytest

from reward_models.grounding import SCALE, blend_grounding, kb_support

PASSAGE = ("Home goods such as furniture, cookware and small kitchen appliances have a 1-year limited warranty "
           "from the date of delivery. Electronics have a 2-year limited warranty.")


def test_an_answer_quoting_the_passage_is_supported_and_an_invented_one_is_not():
    quoted = kb_support("Small kitchen appliances have a 1-year limited warranty from the date of delivery.", PASSAGE)
    invented = kb_support("Pots, pans and small appliances are protected against defects by the warranty page.",
                          PASSAGE)
    assert quoted is not None and invented is not None
    assert quoted > 0.7 and invented < 0.3


def test_support_does_not_apply_without_passages_or_across_languages_and_is_zero_for_a_word():
    assert kb_support("Cookware has a 1-year limited warranty.", None) is None
    assert kb_support("Cookware has a 1-year limited warranty.", "  ") is None
    assert kb_support("Les articles de cuisine ont une garantie limitée d'un an à compter de la livraison.",
                      PASSAGE) is None
    assert kb_support("Cheers.", PASSAGE) == 0.0


def test_blend_moves_only_weighted_objectives_on_rows_with_passages():
    items = [("Is cookware covered?", "Cookware has a 1-year limited warranty from the date of delivery.", PASSAGE),
             ("Is cookware covered?", "Pots are protected by the warranty page forever.", PASSAGE),
             ("Translate into German: Hello.", "Hallo.", None)]
    scores = {"quality": [0.0, 1.0, 0.5], "faithfulness": [0.0, 1.0, 0.5], "safety": [0.3, 0.3, 0.3]}
    blended = blend_grounding(scores, items, {"faithfulness": 0.5})
    support = [kb_support(r, c) for _, r, c in items[:2]]
    assert blended["faithfulness"][0] == pytest.approx(0.5 * SCALE * (support[0] - 0.5))
    assert blended["faithfulness"][1] == pytest.approx(0.5 + 0.5 * SCALE * (support[1] - 0.5))
    assert blended["faithfulness"][0] > blended["faithfulness"][1]
    assert blended["faithfulness"][2] == 0.5
    assert blended["quality"] == scores["quality"] and blended["safety"] == scores["safety"]
    assert blend_grounding(scores, items, {}) == scores


def test_blend_reads_passages_from_the_system_message_as_the_reward_model_does():
    from groundwork.chat_format import build_messages

    answer = "Small kitchen appliances have a 1-year limited warranty from the date of delivery."
    messages = build_messages([{"role": "user", "content": "Is my toaster covered?"}], [PASSAGE])
    blended = blend_grounding({"faithfulness": [0.0]}, [(messages, answer, None)], {"faithfulness": 0.5})
    assert blended["faithfulness"][0] == pytest.approx(0.5 * SCALE * (kb_support(answer, PASSAGE) - 0.5))
    assert blended["faithfulness"][0] > 0.9
