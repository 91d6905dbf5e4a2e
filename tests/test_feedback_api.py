"""``POST /v1/feedback`` against a live server: plain HTTP (httpx) and the openai client's raw request, idempotency,
validation errors in OpenAI's shape, unknown ids, PII redaction and the API key check."""

from __future__ import annotations

import json
import shutil
import subprocess

import httpx
import openai
import pytest
from serve_fixtures import MODEL, shared_server, start_server

from serving.feedback.store import FeedbackStore


@pytest.fixture(scope="module", name="live")
def live_fixture(tmp_path_factory: pytest.TempPathFactory):
    return shared_server(tmp_path_factory.mktemp("feedback-api"))


@pytest.fixture(scope="module", name="client")
def client_fixture(live) -> openai.OpenAI:
    return openai.OpenAI(base_url=live.api, api_key="unused", max_retries=0, timeout=60)


def _answer(client: openai.OpenAI, question: str = "How do I reset my password?") -> int:
    reply = client.chat.completions.create(model=MODEL, max_tokens=6, messages=[{"role": "user", "content": question}])
    return reply.model_extra["parley"]["message_id"]


def _rows(live, message_id: int) -> list[dict]:
    with FeedbackStore(live.db_url, create=False) as store:
        return store.feedback_for(message_id)


def test_like_then_dislike_with_a_reason_over_http(live, client: openai.OpenAI) -> None:
    mid = _answer(client)
    r = httpx.post(f"{live.api}/feedback", json={"message_id": mid, "label": "like", "rating": 5})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["object"] == "feedback" and (body["label"], body["rating"], body["reason"]) == ("like", 5, None)
    assert body["replayed"] is False and body["message_id"] == mid
    r = httpx.post(f"{live.api}/feedback", json={"message_id": mid, "label": "dislike", "reason": "made_up_fact"})
    assert r.status_code == 200 and r.json()["id"] == body["id"]
    assert (r.json()["label"], r.json()["rating"], r.json()["objective"]) == ("dislike", 5, "faithfulness")
    (row,) = _rows(live, mid)
    assert (row["rater"], row["like"], row["rating"], row["reason"]) == ("api", False, 5, "made_up_fact")


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_feedback_through_curl_as_the_readme_shows(live, client: openai.OpenAI) -> None:
    mid = _answer(client)
    body = json.dumps({"message_id": mid, "label": "dislike", "reason": "unhelpful",
                       "correction": "Call me at +1 415 555 0100 about it."})
    done = subprocess.run(["curl", "-sS", "-X", "POST", f"{live.api}/feedback", "-H", "Content-Type: application/json",
                           "-H", "Idempotency-Key: curl-1", "-d", body], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    reply = json.loads(done.stdout)
    assert (reply["label"], reply["reason"], reply["objective"]) == ("dislike", "unhelpful", "quality")
    (row,) = _rows(live, mid)
    assert row["like"] is False and "555 0100" not in (row["correction"] or "")


def test_a_retried_request_is_answered_once(live, client: openai.OpenAI) -> None:
    mid = _answer(client)
    request = {"message_id": mid, "label": "dislike", "reason": "unhelpful", "user": "end-user-7"}
    first = httpx.post(f"{live.api}/feedback", json=request, headers={"Idempotency-Key": "retry-1"})
    assert first.status_code == 200 and first.json()["replayed"] is False
    httpx.post(f"{live.api}/feedback", json={"message_id": mid, "label": "like", "user": "end-user-7"})
    again = httpx.post(f"{live.api}/feedback", json=request, headers={"Idempotency-Key": "retry-1"})
    assert again.status_code == 200 and again.headers["Idempotent-Replayed"] == "true"
    assert again.json()["replayed"] is True and again.json()["id"] == first.json()["id"]
    (row,) = _rows(live, mid)
    assert (row["rater"], row["like"], row["reason"]) == ("api:end-user-7", True, None), "the retry was applied"
    # The key in the body works the same; reusing a key for another request is a 409.
    body_key = {"message_id": mid, "rating": 2, "user": "end-user-7", "idempotency_key": "retry-1"}
    conflict = httpx.post(f"{live.api}/feedback", json=body_key)
    assert conflict.status_code == 409 and conflict.json()["error"]["code"] == "idempotency_key_reused"
    mismatch = httpx.post(f"{live.api}/feedback", json={**body_key, "idempotency_key": "b"},
                          headers={"Idempotency-Key": "a"})
    assert mismatch.status_code == 400 and mismatch.json()["error"]["param"] == "idempotency_key"
    assert len(_rows(live, mid)) == 1


def test_the_correction_is_stored_and_answered_redacted(live, client: openai.OpenAI) -> None:
    mid = _answer(client)
    correction = "Reset it under Account > Password; write to jane.doe@example.com or pay with 4111 1111 1111 1111."
    r = httpx.post(f"{live.api}/feedback", json={"message_id": mid, "label": "dislike", "correction": correction})
    assert r.status_code == 200
    stored = r.json()["correction"]
    assert "jane.doe@example.com" not in stored and "4111" not in stored and "[EMAIL]" in stored and "[CARD]" in stored
    assert _rows(live, mid)[0]["correction"] == stored


@pytest.mark.parametrize(("body", "status", "param", "message"), [
    ({"message_id": 1, "label": "meh"}, 400, "label", "label"),
    ({"message_id": 1, "rating": 9}, 400, "rating", "less than or equal to 5"),
    ({"message_id": 1, "label": "dislike", "reason": "rude"}, 400, "reason", "made_up_fact"),
    ({"message_id": 1, "label": "like", "reason": "unhelpful"}, 400, None, "goes with a dislike"),
    ({"message_id": 1}, 400, "label", "at least one of"),
    ({"message_id": "1", "label": "like"}, 400, "message_id", "integer"),
    ({"message_id": 1, "label": "like", "lable": "like"}, 400, "lable", "Extra inputs"),
    ({"message_id": 1, "label": "dislike", "correction": "x" * 5000}, 400, "correction", "limit"),
    ({"message_id": 424242, "label": "like"}, 404, "message_id", "message 424242 does not exist"),
])
def test_bad_requests_get_an_openai_shaped_error(live, body: dict, status: int, param: str | None,
                                                 message: str) -> None:
    r = httpx.post(f"{live.api}/feedback", json=body)
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert error["param"] == param and message in error["message"] and error["type"]


def test_malformed_bodies_and_user_messages(live, client: openai.OpenAI) -> None:
    for content in (b"", b"{not json", b"[1, 2]", b"\xff\xfe"):
        r = httpx.post(f"{live.api}/feedback", content=content, headers={"Content-Type": "application/json"})
        assert r.status_code == 400 and r.json()["error"]["message"]
    mid = _answer(client)
    r = httpx.post(f"{live.api}/feedback", json={"message_id": mid - 1, "label": "like"})  # the question
    assert r.status_code == 400 and "feedback is for answers" in r.json()["error"]["message"]


def test_the_openai_client_sends_feedback_as_a_raw_request(live, client: openai.OpenAI) -> None:
    mid = _answer(client, "Can I return shoes?")
    body = {"message_id": mid, "label": "dislike", "reason": "over_refusal"}
    result = client.post("/feedback", body=body, cast_to=object, options={"headers": {"Idempotency-Key": "oa-1"}})
    assert result["reason"] == "over_refusal" and result["objective"] == "safety" and not result["replayed"]
    raw = client.post("/feedback", body=body, cast_to=httpx.Response, options={"headers": {"Idempotency-Key": "oa-1"}})
    assert raw.status_code == 200 and raw.json()["replayed"] is True
    with pytest.raises(openai.NotFoundError, match="does not exist"):
        client.post("/feedback", body={"message_id": 10**9, "label": "like"}, cast_to=object)
    with pytest.raises(openai.BadRequestError, match="label"):
        client.post("/feedback", body={"message_id": mid, "label": "thumbs"}, cast_to=object)
    with pytest.raises(openai.ConflictError):
        client.post("/feedback", body={"message_id": mid, "rating": 1}, cast_to=object,
                    options={"headers": {"Idempotency-Key": "oa-1"}})


def test_feedback_needs_the_api_key_when_the_server_has_logins(live, tmp_path) -> None:
    with start_server(tmp_path, reuse=live, auth="ann:s3cret") as locked:
        keyed = openai.OpenAI(base_url=locked.api, api_key="ann:s3cret", max_retries=0, timeout=60)
        mid = _answer(keyed)
        r = httpx.post(f"{locked.api}/feedback", json={"message_id": mid, "label": "like"})
        assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(base_url=locked.api, api_key="ann:wrong", max_retries=0).post(
                "/feedback", body={"message_id": mid, "label": "like"}, cast_to=object)
        assert keyed.post("/feedback", body={"message_id": mid, "label": "like"}, cast_to=object)["label"] == "like"
        (row,) = _rows(locked, mid)
        assert row["rater"] == "api:ann"
