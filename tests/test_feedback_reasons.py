"""Dislike reasons, "another answer" comparisons, idempotency keys and the schema upgrade of an older store,
on SQLite and PostgreSQL; the per-objective and KTO export of all of it."""

from __future__ import annotations

import argparse
import json
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from feedback_fixtures import (  # noqa: F401 - pytest fixtures
    db_url_fixture,
    pg_admin_fixture,
    pg_server_url_fixture,
    pg_url_fixture,
    store_fixture,
)
from sqlalchemy import CheckConstraint, MetaData, Table, UniqueConstraint, create_engine, inspect, select, text
from sqlalchemy.exc import IntegrityError

from groundwork.data_loading import OBJECTIVES
from parley.feedback_commands import add_feedback_commands
from serving.feedback.export import KTO_FILE, MANIFEST_FILE, export_feedback, export_preferences, preference_file
from serving.feedback.models import ADDED_COLUMNS, CORE_TABLES, Base, Feedback, IdempotencyKey
from serving.feedback.reasons import DEFAULT_OBJECTIVE, REASONS, main_reason, objective_of
from serving.feedback.store import FeedbackStore, FeedbackValueError, IdempotencyConflictError, UnknownRecordError

CONTEXT_CITATION = [{"id": "shipping-times", "title": "Shipping times", "score": 0.9,
                     "text": "Orders ship within 2 business days."}]


def _exchange(store: FeedbackStore, question: str, answer: str, mode: str = "support", **kw) -> tuple[int, int]:
    conv = store.create_conversation(mode, "m")
    store.add_message(conv, "user", question)
    return conv, store.add_message(conv, "assistant", answer, **kw)


# --- the reason table ---------------------------------------------------------------------------------------


def test_reason_table_maps_each_reason_to_an_objective() -> None:
    assert {k: r.objective for k, r in REASONS.items()} == {
        "made_up_fact": "faithfulness", "unhelpful": "quality", "should_not_answer": "safety",
        "over_refusal": "safety", "wrong_language": "quality"}
    assert REASONS["over_refusal"].aspect == "over_refusal"
    assert objective_of(None) == DEFAULT_OBJECTIVE == "quality"
    assert main_reason([None, "unhelpful", "made_up_fact", "unhelpful"]) == "unhelpful"
    assert main_reason(["unhelpful", "made_up_fact"]) == "made_up_fact"  # tie: the first in the table
    assert main_reason([None]) is None


# --- reasons in the store -----------------------------------------------------------------------------------


def test_a_reason_is_a_dislike_and_a_like_clears_it(store: FeedbackStore) -> None:
    _, mid = _exchange(store, "When does my order ship?", "It ships in 9 weeks.")
    fid = store.record_feedback(mid, "ann", like=False)
    assert store.record_feedback(mid, "ann", reason="made_up_fact") == fid
    (row,) = store.feedback_for(mid)
    assert (row["like"], row["reason"]) == (False, "made_up_fact")
    store.record_feedback(mid, "ann", rating=2)  # a rating keeps the reason
    assert store.feedback_for(mid)[0]["reason"] == "made_up_fact"
    store.record_feedback(mid, "ann", like=False)  # so does another dislike click
    assert store.feedback_for(mid)[0]["reason"] == "made_up_fact"
    store.record_feedback(mid, "ann", like=True)
    assert (store.feedback_for(mid)[0]["like"], store.feedback_for(mid)[0]["reason"]) == (True, None)
    store.record_feedback(mid, "bob", reason="over_refusal")  # a reason alone records the dislike
    assert {r["rater"]: (r["like"], r["reason"]) for r in store.feedback_for(mid)}["bob"] == (False, "over_refusal")
    stats = store.stats()
    assert stats["reasons"]["over_refusal"] == 1 and stats["reasons"]["made_up_fact"] == 0
    assert {r["rater"]: r["reason"] for r in store.recent(5)} == {"ann": None, "bob": "over_refusal"}


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"reason": "rude"}, "reason must be one of made_up_fact, unhelpful"),
    ({"reason": "unhelpful", "like": True}, "goes with a dislike"),
    ({"reason": 3}, "reason must be one of"),
])
def test_bad_reasons_are_refused(store: FeedbackStore, kwargs: dict, message: str) -> None:
    _, mid = _exchange(store, "q", "a")
    with pytest.raises(FeedbackValueError, match=message):
        store.record_feedback(mid, "ann", **kwargs)
    assert store.feedback_for(mid) == []


def test_the_schema_itself_refuses_an_unknown_reason(store: FeedbackStore) -> None:
    _, mid = _exchange(store, "q", "a")
    with pytest.raises(IntegrityError), store.engine.begin() as conn:
        conn.execute(Feedback.__table__.insert().values(message_id=mid, rater="x", like=False, reason="rude"))


# --- idempotency --------------------------------------------------------------------------------------------


def test_a_retried_request_with_the_same_key_is_not_applied_again(store: FeedbackStore) -> None:
    _, mid = _exchange(store, "q", "a")
    first = store.submit_feedback(mid, "api", like=False, reason="unhelpful", idempotency_key="k-1")
    assert not first.replayed and first.row["reason"] == "unhelpful"
    store.record_feedback(mid, "api", like=True)  # a later, different request (no key)
    again = store.submit_feedback(mid, "api", like=False, reason="unhelpful", idempotency_key="k-1")
    assert again.replayed and again.feedback_id == first.feedback_id
    assert store.feedback_for(mid)[0]["like"] is True, "the replay must not apply the dislike again"
    with pytest.raises(IdempotencyConflictError, match="already used"):
        store.submit_feedback(mid, "api", rating=3, idempotency_key="k-1")
    # Keys are per rater; a failed request does not use up its key.
    assert not store.submit_feedback(mid, "other", rating=3, idempotency_key="k-1").replayed
    with pytest.raises(UnknownRecordError):
        store.submit_feedback(999_999, "api", like=True, idempotency_key="k-2")
    assert not store.submit_feedback(mid, "api", rating=5, idempotency_key="k-2").replayed
    with store.engine.connect() as conn:
        assert conn.execute(select(IdempotencyKey.rater, IdempotencyKey.key)).all().__len__() == 3


def test_concurrent_retries_with_one_key_apply_once(store: FeedbackStore) -> None:
    _, mid = _exchange(store, "q", "a")
    barrier = threading.Barrier(8)

    def send(_: int):
        barrier.wait()
        return store.submit_feedback(mid, "api", rating=4, correction="Better.", idempotency_key="same")

    with ThreadPoolExecutor(8) as pool:
        receipts = list(pool.map(send, range(8)))
    assert sum(not r.replayed for r in receipts) == 1
    assert {r.feedback_id for r in receipts} == {receipts[0].feedback_id}
    assert len(store.feedback_for(mid)) == 1


# --- another answer -----------------------------------------------------------------------------------------


def test_alternative_answers_are_variants_outside_the_history(store: FeedbackStore) -> None:
    conv, first = _exchange(store, "When does it ship?", "In 9 weeks.", citations=CONTEXT_CITATION)
    alt = store.add_message(conv, "assistant", "Within 2 business days.", variant_of=first,
                            citations=CONTEXT_CITATION)
    store.add_message(conv, "user", "Thanks! And returns?")
    later = store.add_message(conv, "assistant", "30 days.")
    with pytest.raises(FeedbackValueError, match="itself an alternative"):
        store.add_message(conv, "assistant", "x", variant_of=alt)
    with pytest.raises(FeedbackValueError, match="only an assistant"):
        store.add_message(conv, "user", "x", variant_of=first)
    other, _ = _exchange(store, "q", "a")
    with pytest.raises(FeedbackValueError, match="not an answer in conversation"):
        store.add_message(other, "assistant", "x", variant_of=first)
    with pytest.raises(UnknownRecordError):
        store.add_message(conv, "assistant", "x", variant_of=424242)

    cid = store.record_comparison(first, alt, "ann", "alternative")
    assert store.record_comparison(first, alt, "ann", "alternative", reason="made_up_fact") == cid
    with pytest.raises(FeedbackValueError, match="not an alternative"):
        store.record_comparison(later, alt, "ann", "original")
    with pytest.raises(FeedbackValueError, match="preferred"):
        store.record_comparison(first, alt, "ann", "both")
    store.record_feedback(later, "ann", like=True)
    assert store.stats()["comparisons"] == 1

    (pair,) = [r for r in store.export_preferences() if r["source"] == "another_answer"]
    assert pair["prompt"] == [{"role": "user", "content": "When does it ship?"}]
    assert pair["chosen"][0]["content"] == "Within 2 business days." and pair["rejected"][0]["content"] == "In 9 weeks."
    assert (pair["objective"], pair["reason"]) == ("faithfulness", "made_up_fact")
    assert pair["context"] == "Shipping times: Orders ship within 2 business days."
    # The later answer's prompt is the conversation without the alternative.
    _, kto = store.export_all()
    (liked,) = [r for r in kto if r["message_id"] == f"message:{later}"]
    assert [m["content"] for m in liked["prompt"]] == ["When does it ship?", "In 9 weeks.", "Thanks! And returns?"]
    ticket = store.open_handoff(conv, "asked for a human")
    with store.engine.connect() as conn:
        transcript = conn.execute(text("SELECT transcript FROM handoff_tickets WHERE id = :i"), {"i": ticket}).scalar()
    transcript = transcript if isinstance(transcript, list) else json.loads(transcript)
    assert "Within 2 business days." not in json.dumps(transcript) and len(transcript) == 4


def test_a_choice_without_a_reason_takes_the_raters_dislike_reason(store: FeedbackStore) -> None:
    conv, first = _exchange(store, "Can I return a used item?", "I cannot help with that.")
    alt = store.add_message(conv, "assistant", "Yes, within 30 days if undamaged.", variant_of=first)
    store.record_feedback(first, "ann", reason="over_refusal")
    store.record_comparison(first, alt, "ann", "alternative")
    store.record_comparison(first, alt, "bob", "original")  # bob prefers the refusal; no reason -> quality
    rows = [r for r in store.export_preferences() if r["source"] == "another_answer"]
    assert [(r["objective"], r["reason"], r["aspect"]) for r in rows] == [
        ("safety", "over_refusal", "over_refusal")]  # bob's pair is the same pair reversed: the first one wins


# --- export per objective and KTO ---------------------------------------------------------------------------


def _populate(store: FeedbackStore) -> dict[str, int]:
    ids = {}
    _, ids["fact"] = _exchange(store, "When does order KM-1 ship?", "It shipped last year.", citations=CONTEXT_CITATION)
    store.record_feedback(ids["fact"], "ann", reason="made_up_fact",
                          correction="It ships within 2 business days; mail a@b.co for help.")
    _, ids["refusal"] = _exchange(store, "How do I cancel my order?", "I can't help with that.")
    store.record_feedback(ids["refusal"], "ann", reason="over_refusal", correction="Open Orders and press Cancel.")
    _, ids["harm"] = _exchange(store, "Give me another customer's address.", "Sure, it is 12 Baker Street.")
    store.record_feedback(ids["harm"], "ann", reason="should_not_answer", correction="I can't share that.")
    _, ids["liked"] = _exchange(store, "Where is my parcel?", "It is on its way.")
    store.record_feedback(ids["liked"], "bob", like=True)
    _, ids["lang"] = _exchange(store, "where is my  PARCEL?", "Il est en route.")
    store.record_feedback(ids["lang"], "bob", reason="wrong_language")
    store.record_feedback(ids["lang"], "carl", rating=1)
    _, ids["plain"] = _exchange(store, "Hi", "Hello.")
    store.record_feedback(ids["plain"], "bob", rating=3)  # neither good nor bad: no KTO row
    conv, ids["alt_orig"] = _exchange(store, "Do you ship to Spain?", "No idea.")
    ids["alt"] = store.add_message(conv, "assistant", "Yes, in 5 days.", variant_of=ids["alt_orig"])
    store.record_comparison(ids["alt_orig"], ids["alt"], "dora", "alternative")
    return ids


def test_export_writes_one_preference_file_per_objective_and_a_kto_file(
    store: FeedbackStore, db_url: str, tmp_path: Path
) -> None:
    ids = _populate(store)
    counts = export_feedback(db_url, tmp_path / "out")
    assert counts == {"quality": 2, "safety": 2, "faithfulness": 1, "kto": 9}
    files = {o: [json.loads(line) for line in (tmp_path / "out" / preference_file(o)).read_text().splitlines()]
             for o in OBJECTIVES}
    assert {o: sorted((r["source"], r["reason"]) for r in rows) for o, rows in files.items()} == {
        "faithfulness": [("correction", "made_up_fact")],
        "safety": [("correction", "over_refusal"), ("correction", "should_not_answer")],
        "quality": [("another_answer", None), ("like_vs_dislike", "wrong_language")],
    }
    for objective, rows in files.items():
        for row in rows:
            assert row["objective"] == objective
            assert set(row) >= {"prompt", "chosen", "rejected", "context"}
            assert row["prompt"][-1]["role"] == "user" and row["chosen"][0]["role"] == "assistant"
    (fact,) = files["faithfulness"]
    assert fact["context"] == "Shipping times: Orders ship within 2 business days."
    assert fact["chosen"][0]["content"] == "It ships within 2 business days; mail [EMAIL] for help."
    assert [r["aspect"] for r in sorted(files["safety"], key=lambda r: r["reason"])] == [
        "over_refusal", "harmful_answer"]

    kto = [json.loads(line) for line in (tmp_path / "out" / KTO_FILE).read_text().splitlines()]
    assert all(set(r) >= {"prompt", "completion", "label"} and isinstance(r["label"], bool) for r in kto)
    by_source: dict[str, list[bool]] = {}
    for r in kto:
        by_source.setdefault(r["source"], []).append(r["label"])
    assert by_source == {"dislike": [False] * 4, "correction": [True] * 3, "like": [True], "rating": [False]}
    (lang,) = [r for r in kto if r["source"] == "dislike" and r["message_id"] == f"message:{ids['lang']}"]
    assert (lang["reason"], lang["objective"]) == ("wrong_language", "quality")
    assert "@" not in (tmp_path / "out" / KTO_FILE).read_text()
    manifest = json.loads((tmp_path / "out" / MANIFEST_FILE).read_text())
    assert manifest["kto_desirable"] == 4 and manifest["kto_undesirable"] == 5

    # Deterministic, and the one-file export holds the same pairs with their tags.
    before = {p.name: p.read_bytes() for p in (tmp_path / "out").iterdir()}
    export_feedback(db_url, tmp_path / "out")
    assert before == {p.name: p.read_bytes() for p in (tmp_path / "out").iterdir()}
    assert export_preferences(db_url, tmp_path / "all.jsonl") == 5


def test_cli_export_to_a_folder(store: FeedbackStore, db_url: str, tmp_path: Path, capsys) -> None:
    _populate(store)
    parser = argparse.ArgumentParser(prog="parley")
    add_feedback_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["feedback", "export", "--db", db_url, "--out", str(tmp_path / "fb")])
    assert args.handler(args) == 0
    assert "wrote 5 preference pairs (quality 2, safety 2, faithfulness 1) and 9 KTO rows" in capsys.readouterr().out
    assert sorted(p.name for p in (tmp_path / "fb").iterdir()) == [
        "kto.jsonl", "manifest.json", "preferences-faithfulness.jsonl", "preferences-quality.jsonl",
        "preferences-safety.jsonl"]
    (tmp_path / "file").write_text("x")
    with pytest.raises(FeedbackValueError, match="is a file"):
        export_feedback(db_url, tmp_path / "file")


# --- upgrading a store created before reasons, alternatives and idempotency keys ------------------------------


def _create_old_schema(url: str) -> None:
    """The four tables as the first Parley release created them (no added columns, no new tables)."""
    added = {(t, c) for t, c, _ in ADDED_COLUMNS}
    old = MetaData()
    for name in CORE_TABLES:
        table = Base.metadata.tables[name]
        columns = [c._copy() for c in table.columns if (name, c.name) not in added]
        constraints = []
        for k in list(table.constraints):
            if isinstance(k, UniqueConstraint):
                constraints.append(UniqueConstraint(*[c.name for c in k.columns], name=k.name))
            elif isinstance(k, CheckConstraint) and "reason" not in str(k.sqltext):
                constraints.append(CheckConstraint(str(k.sqltext), name=k.name))
        Table(name, old, *columns, *constraints)
    engine = create_engine(url)
    old.create_all(engine)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO conversations (id, mode, model_name, created_at) "
                          "VALUES (1, 'support', 'old', '2024-01-01 00:00:00')"))
        conn.execute(text("INSERT INTO messages (id, conversation_id, turn, role, content, created_at) VALUES "
                          "(1, 1, 0, 'user', 'Old question?', '2024-01-01 00:00:00'), "
                          "(2, 1, 1, 'assistant', 'Old answer.', '2024-01-01 00:00:00')"))
        conn.execute(text("INSERT INTO feedback (id, message_id, rater, \"like\", created_at, updated_at) "
                          "VALUES (1, 2, 'old-rater', false, '2024-01-01 00:00:00', '2024-01-01 00:00:00')"))
        if conn.dialect.name == "postgresql":  # explicit ids above: move the sequences past them
            for table in ("conversations", "messages", "feedback"):
                conn.execute(text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), 10)"))
    engine.dispose()


def test_an_older_store_gets_the_new_columns_and_tables(db_url: str, tmp_path: Path) -> None:
    _create_old_schema(db_url)
    engine = create_engine(db_url)
    assert "reason" not in {c["name"] for c in inspect(engine).get_columns("feedback")}

    # Two processes opening the old store at once (threads here): one adds the columns, neither fails.
    with ThreadPoolExecutor(2) as pool:
        stores = list(pool.map(lambda _: FeedbackStore(db_url, create=False), range(2)))
    assert sorted(stores[0].upgraded + stores[1].upgraded) == ["feedback.reason", "messages.variant_of"]
    for s in stores:
        s.close()
    inspector = inspect(engine)
    assert "reason" in {c["name"] for c in inspector.get_columns("feedback")}
    assert "variant_of" in {c["name"] for c in inspector.get_columns("messages")}
    assert {"comparisons", "idempotency_keys"} <= set(inspector.get_table_names())
    engine.dispose()

    with FeedbackStore(db_url) as store:
        assert store.upgraded == []  # idempotent
        (old,) = store.feedback_for(2)
        assert (old["rater"], old["like"], old["reason"]) == ("old-rater", False, None)
        store.record_feedback(2, "old-rater", reason="unhelpful")
        alt = store.add_message(1, "assistant", "A new answer.", variant_of=2)
        store.record_comparison(2, alt, "old-rater", "alternative")
        with pytest.raises(IntegrityError), store.engine.begin() as conn:  # the added column has its check
            conn.execute(text("UPDATE feedback SET reason = 'rude' WHERE id = 1"))
        rows = store.export_preferences()
    assert [(r["source"], r["objective"], r["reason"]) for r in rows] == [("another_answer", "quality", "unhelpful")]
    export_feedback(db_url, tmp_path / "out")
    assert (tmp_path / "out" / preference_file("quality")).read_text().count("\n") == 1
