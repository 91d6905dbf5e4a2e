"""The reward's rule checks: which language a translation request asks for, and the cap on answers in another
language or of bad form."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from groundwork.languages import LANGUAGES, requested_target, translation_request
from reward_models.rule_gate import cap_rule_failures, wrong_by_rule, wrong_language

DATA = Path(__file__).resolve().parent.parent / "data"


@pytest.mark.parametrize("request_text, target", [
    ("Translate into German: Your parcel is on its way.", "de"),
    ("Could you put this customer message into Simplified Chinese? Drop off the package.", "zh"),
    ("Render the following in Chinese (Simplified): The item has been refunded.", "zh"),
    ("French translation needed: Your refund is on its way.", "fr"),
    ("Translate from German into English:\nIhr Paket ist unterwegs.", "en"),
    ("¿Puedes traducir esta frase al inglés? Hemos abonado 49,99 $.", "en"),
    ("Merci de traduire ceci en anglais :\nLe colis arrivera demain.", "en"),
    ("Kannst du diesen Satz ins Englische übersetzen? Ihr Paket ist unterwegs.", "en"),
    ("请把下面这句话翻译成英文：您的包裹已发出。", "en"),
    # Not translation requests, though they name a language.
    ("Is the user manual available in German?", None),
    ("Where is my order? I wrote to you in French yesterday.", None),
    ("", None),
])
def test_requested_target_reads_the_instruction(request_text, target):
    assert requested_target(request_text) == target


def test_requested_target_ignores_a_language_named_inside_the_text_to_translate():
    text = "Translate into Spanish: " + "Our store is open every day of the week. " * 4 + "Translate it into German."
    assert requested_target(text) == "es"


def test_requested_target_reads_every_project_translation_prompt_and_no_other():
    rows = [json.loads(line) for name in ("train.jsonl", "heldout.jsonl")
            for line in (DATA / "ppo" / name).read_text(encoding="utf-8").splitlines() if line.strip()]
    for row in rows:
        text = row["messages"][-1]["content"]
        expected = row["expected"]["tgt_lang"] if row["kind"] == "translation" else None
        assert requested_target(text) == expected, text
    for code in LANGUAGES:
        assert requested_target(translation_request("Hello in French, world.", code, "en")) == code


def test_wrong_language_flags_echoes_but_not_the_translation_or_other_requests():
    request = [{"role": "user", "content": "Translate into German: Your order will arrive on Friday."}]
    assert wrong_language(request, "Your order will arrive on Friday.")
    assert not wrong_language(request, "Ihre Bestellung wird am Freitag ankommen.")
    assert not wrong_language(request, "   ")
    assert not wrong_language("When will my order arrive?", "Votre commande arrivera vendredi.")


def test_cap_applies_to_capped_objectives_on_flagged_rows_only():
    items = [("Translate into German: Your order will arrive on Friday.", "Your order will arrive on Friday.", None),
             ("Translate into German: Your order will arrive on Friday.",
              "Ihre Bestellung wird am Freitag ankommen.", None),
             ("When will my order arrive?", "It arrives on Friday.", None)]
    scores = {"quality": [1.5, 0.5, 1.0], "faithfulness": [-3.0, 0.2, 0.4], "safety": [2.0, 2.0, 2.0]}
    capped = cap_rule_failures(scores, items, {"quality": -2.0, "faithfulness": -2.0})
    assert capped["quality"] == [-2.0, 0.5, 1.0]
    assert capped["faithfulness"] == [-3.0, 0.2, 0.4]  # already below the cap
    assert capped["safety"] == scores["safety"]
    assert cap_rule_failures(scores, items, {}) == scores


def test_bad_form_is_wrong_by_rule_but_a_short_refusal_or_answer_is_not():
    question = "How long does standard shipping take to Canada?"
    assert wrong_by_rule(question, "I can help you with that.")
    assert wrong_by_rule(question, "It takes five days. It takes five days. It takes five days.")
    assert wrong_by_rule(question, question)
    assert not wrong_by_rule(question, "Within 5 business days.")
    assert not wrong_by_rule("How do I make a weapon?", "I can't help with that.")
