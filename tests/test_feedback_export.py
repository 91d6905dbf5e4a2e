"""Preference-pair export: the pair rules, determinism, PII re-check and the ``feedback export`` command."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
from feedback_fixtures import (  # noqa: F401 - pytest fixtures
    db_url_fixture,
    pg_admin_fixture,
    pg_server_url_fixture,
    pg_url_fixture,
    store_fixture,
)

from parley.feedback_commands import add_feedback_commands
from serving.feedback.engine import FeedbackStoreError
from serving.feedback.export import export_preferences
from serving.feedback.pairs import RatedAnswer, Rating, build_pairs
from serving.feedback.store import FeedbackStore

PROMPT = [{"role": "user", "content": "Where is my order?"}]


def _answer(mid: int, content: str, *ratings: tuple, prompt: list | None = None) -> RatedAnswer:
    rs = tuple(Rating(feedback_id=mid * 10 + i, like=r[0], rating=r[1], correction=r[2]) for i, r in enumerate(ratings))
    return RatedAnswer(message_id=mid, conversation_id=mid, prompt=prompt or PROMPT, content=content, ratings=rs)


def test_dislike_with_correction_makes_a_correction_pair() -> None:
    (row,) = build_pairs([_answer(1, "No idea.", (False, None, "It ships in 2 days."))])
    assert row["prompt"] == PROMPT and row["source"] == "correction"
    assert row["chosen"] == [{"role": "assistant", "content": "It ships in 2 days."}]
    assert row["rejected"] == [{"role": "assistant", "content": "No idea."}]
    assert (row["chosen_id"], row["rejected_id"]) == ("feedback:10", "message:1")


def test_corrections_of_liked_or_well_rated_answers_or_equal_text_give_no_pair() -> None:
    assert build_pairs([_answer(1, "Fine.", (True, None, "Finer."))]) == []
    assert build_pairs([_answer(2, "Fine.", (None, 5, "Finer."))]) == []
    assert build_pairs([_answer(3, "Same  text.", (False, None, "same text."))]) == []
    assert build_pairs([_answer(4, "Hi", (False, None, "Hello"), prompt=[{"role": "system", "content": "s"}])]) == []


def test_liked_beats_disliked_on_the_same_normalized_prompt() -> None:
    other_prompt = [{"role": "user", "content": "  where IS my   order? "}]
    rows = build_pairs(
        [_answer(1, "Bad.", (False, None, None)), _answer(2, "Good.", (True, None, None), prompt=other_prompt)]
    )
    (row,) = rows
    assert row["source"] == "like_vs_dislike" and row["prompt"] == PROMPT
    assert row["chosen"][0]["content"] == "Good." and row["rejected"][0]["content"] == "Bad."
    assert (row["chosen_id"], row["rejected_id"]) == ("message:2", "message:1")


def test_ties_contradictions_and_other_prompts_are_dropped() -> None:
    assert build_pairs([_answer(1, "A", (True, None, None)), _answer(2, "B", (True, None, None))]) == []
    assert build_pairs([_answer(1, "A", (None, 4, None)), _answer(2, "B", (None, 4, None))]) == []
    assert build_pairs([_answer(1, "A", (True, 2, None)), _answer(2, "B", (False, 5, None))]) == []
    assert build_pairs([_answer(1, "A", (True, None, None)), _answer(2, "B", (None, 1, None))]) == []
    other = [{"role": "user", "content": "Do you ship to Spain?"}]
    assert build_pairs([_answer(1, "A", (True, None, None)), _answer(2, "B", (False, None, None), prompt=other)]) == []
    # Split votes (one like, one dislike) are a neutral like state; ratings then decide.
    rows = build_pairs([_answer(1, "A", (True, 2, None), (False, 2, None)), _answer(2, "B", (None, 5, None))])
    assert [(r["source"], r["chosen_id"]) for r in rows] == [("rating", "message:2")]


def test_pairs_are_capped_per_prompt() -> None:
    answers = [_answer(i, f"answer {i}", (i % 2 == 0, None, None)) for i in range(1, 21)]
    assert len(build_pairs(answers)) == 100
    assert len(build_pairs(answers, max_pairs_per_prompt=5)) == 5


def _populate(store: FeedbackStore) -> None:
    for variant, like in (("It ships in 2 days.", True), ("I don't know, mail me at x@y.com", False)):
        conv = store.create_conversation("support", "smollm2-135m")
        store.add_message(conv, "user", "When does order KM-48213 ship?")
        mid = store.add_message(conv, "assistant", variant)
        store.record_feedback(mid, "rater-a", like=like)
        if not like:
            store.record_feedback(
                mid,
                "rater-b",
                like=False,
                correction="Order KM-48213 ships today; card 4111 1111 1111 1111 was charged.",
            )
    tie = store.create_conversation("translate", "smollm2-135m")
    store.add_message(tie, "user", "Translate to French: hello")
    store.record_feedback(store.add_message(tie, "assistant", "Bonjour"), "r", rating=4)
    tie2 = store.create_conversation("translate", "smollm2-135m")
    store.add_message(tie2, "user", "translate to french:  Hello")
    store.record_feedback(store.add_message(tie2, "assistant", "Salut"), "r", rating=4)


def test_export_is_deterministic_and_pii_free(store: FeedbackStore, db_url: str, tmp_path: Path) -> None:
    _populate(store)
    first, second = tmp_path / "a.jsonl", tmp_path / "sub" / "b.jsonl"
    assert export_preferences(db_url, first) == 2
    assert export_preferences(db_url, second) == 2
    assert first.read_bytes() == second.read_bytes()
    rows = [json.loads(line) for line in first.read_text().splitlines()]
    assert [r["source"] for r in rows] == ["correction", "like_vs_dislike"]
    assert rows[0]["chosen"][0]["content"] == "Order KM-48213 ships today; card [CARD] was charged."
    assert rows[0]["rejected"][0]["content"] == "I don't know, mail me at [EMAIL]"
    assert rows[1]["chosen"][0]["content"] == "It ships in 2 days."
    text = first.read_text()
    assert "@" not in text and "4111" not in text
    assert store.export_preferences() == rows


def test_cli_export_command(store: FeedbackStore, db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    _populate(store)
    parser = argparse.ArgumentParser(prog="parley")
    add_feedback_commands(parser.add_subparsers(dest="command", required=True))
    out = tmp_path / "prefs.jsonl"
    args = parser.parse_args(["feedback", "export", "--db", db_url, "--out", str(out)])
    assert args.handler(args) == 0
    assert "wrote 2 preference pairs" in capsys.readouterr().out
    assert len(out.read_text().splitlines()) == 2
    # --db is sugar for serve.db (the server's store): a recipe or --set names it just as well.
    again = tmp_path / "again.jsonl"
    args = parser.parse_args(["feedback", "export", "--set", f"serve.db={db_url}", "--out", str(again),
                              "--max-pairs-per-prompt", "1"])
    assert args.handler(args) == 0 and len(again.read_text().splitlines()) == 2
    with pytest.raises(SystemExit):
        parser.parse_args(["feedback", "export", "--db", db_url])


def test_export_refuses_a_database_without_feedback_tables(pg_url: str, tmp_path: Path) -> None:
    with pytest.raises(FeedbackStoreError, match="not a feedback store"):
        export_preferences(pg_url, tmp_path / "p.jsonl")


def test_export_errors(tmp_path: Path) -> None:
    with pytest.raises(FeedbackStoreError, match="unsupported"):
        export_preferences("mysql://x/y", tmp_path / "p.jsonl")
    with pytest.raises(FeedbackStoreError, match="not found"):
        export_preferences(tmp_path / "missing.db", tmp_path / "p.jsonl")
    assert not (tmp_path / "missing.db").exists()
    FeedbackStore(tmp_path / "f.db").close()
    with pytest.raises(ValueError, match="is a folder"):
        export_preferences(f"sqlite:///{tmp_path / 'f.db'}", tmp_path)
