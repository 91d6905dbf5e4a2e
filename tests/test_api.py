"""The OpenAI-compatible API against a live server: the ``openai`` client (stream and not), translation,
and hostile or malformed requests that must get a 4xx with a message while the server keeps serving."""

from __future__ import annotations

import json

import httpx
import openai
import pytest
from serve_fixtures import MODEL, shared_server, start_server


@pytest.fixture(scope="module", name="live")
def live_fixture(tmp_path_factory: pytest.TempPathFactory):
    return shared_server(tmp_path_factory.mktemp("api"))


@pytest.fixture(scope="module", name="client")
def client_fixture(live) -> openai.OpenAI:
    return openai.OpenAI(base_url=live.api, api_key="unused", max_retries=0, timeout=60)


def test_models_lists_the_served_model(client: openai.OpenAI) -> None:
    assert [m.id for m in client.models.list()] == [MODEL]


def test_chat_completion_without_streaming(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(model=MODEL, max_tokens=8,
                                           messages=[{"role": "user", "content": "How do I reset my password?"}])
    choice = reply.choices[0]
    assert choice.message.role == "assistant" and choice.message.content.strip()
    assert choice.finish_reason in ("stop", "length")
    assert reply.usage.completion_tokens <= 8
    citations = reply.model_extra["parley"]["citations"]
    assert citations and citations[0]["id"].startswith("accounts-password")


def test_the_server_prefills_every_kb_article_as_a_first_passage_at_start(live, client: openai.OpenAI) -> None:
    engine, kb = live.service.engine, live.service.kb
    store = engine.prefix_cache
    assert len(kb.passages) > 20 and store.pinned_entries == 2 + len(kb.passages)  # both framings, then each
    held = {len(engine.passage_opening(live.service.context_of([p.citation()])[0])) for p in kb.passages}
    hits, reused = store.hits, store.reused_tokens
    reply = client.chat.completions.create(model=MODEL, max_tokens=2,
                                           messages=[{"role": "user", "content": "Can I change my delivery address?"}])
    assert reply.model_extra["parley"]["citations"]
    assert store.hits == hits + 1 and store.reused_tokens - reused in held  # the first citation's opening


def test_chat_completion_streams_chunks(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(model=MODEL, stream=True, max_tokens=10,
                                            messages=[{"role": "system", "content": "Be brief."},
                                                      {"role": "user", "content": "Hi"},
                                                      {"role": "assistant", "content": "Hello! How can I help?"},
                                                      {"role": "user", "content": "Where is my order?"}])
    chunks = list(stream)
    deltas = [c.choices[0].delta.content for c in chunks if c.choices[0].delta.content]
    assert len(deltas) >= 2 and "".join(deltas).strip()
    assert chunks[-1].choices[0].finish_reason in ("stop", "length")


def test_translation_mode_and_unknown_language(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(model=MODEL, max_tokens=6, messages=[{"role": "user", "content": "Hallo"}],
                                           extra_body={"mode": "translate", "target_language": "fr"})
    assert reply.choices[0].message.content
    with pytest.raises(openai.BadRequestError, match=r"unknown language code 'tlh'.*supported"):
        client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "Hallo"}],
                                       extra_body={"mode": "translate", "target_language": "tlh"})


def test_handoff_request_through_the_api(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "我要转人工"}])
    assert "人工客服" in reply.choices[0].message.content
    assert reply.model_extra["parley"]["handoff_ticket"] >= 1


def test_limits_apply_to_the_api(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError, match="limit is 500"):
        client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "a" * 501}])
    many = [{"role": r, "content": "hi"} for _ in range(5) for r in ("user", "assistant")][:-1]
    with pytest.raises(openai.BadRequestError, match="more than 4 user messages"):
        client.chat.completions.create(model=MODEL, messages=many)
    reply = client.chat.completions.create(model=MODEL, max_tokens=10_000,
                                           messages=[{"role": "user", "content": "hi"}])
    assert reply.usage.completion_tokens <= 12  # the server's max_new_tokens, not the client's wish


def _post(live, body: bytes, content_type: str = "application/json") -> httpx.Response:
    return httpx.post(f"{live.api}/chat/completions", content=body, headers={"content-type": content_type},
                      timeout=60)


BAD_BODIES = {
    "malformed JSON": (b'{"messages": [', 400, "not valid JSON"),
    "empty body": (b"", 400, "empty"),
    "JSON array": (b"[1, 2]", 400, "JSON object"),
    "invalid UTF-8": (b'{"messages": [{"role": "user", "content": "\xff\xfe bad"}]}', 400, "UTF-8"),
    "messages not a list": (json.dumps({"messages": "hello"}).encode(), 400, "messages"),
    "empty messages": (json.dumps({"messages": []}).encode(), 400, "messages"),
    "content wrong type": (json.dumps({"messages": [{"role": "user", "content": 42}]}).encode(), 400, "content"),
    "unknown role": (json.dumps({"messages": [{"role": "wizard", "content": "hi"}]}).encode(), 400, "role"),
    "last is assistant": (json.dumps({"messages": [{"role": "assistant", "content": "hi"}]}).encode(), 400,
                          "last message"),
    "blank user message": (json.dumps({"messages": [{"role": "user", "content": "   "}]}).encode(), 400, "empty"),
    "max_tokens a string": (json.dumps({"messages": [{"role": "user", "content": "hi"}], "max_tokens": "ten"})
                            .encode(), 400, "max_tokens"),
    "temperature too high": (json.dumps({"messages": [{"role": "user", "content": "hi"}], "temperature": 7})
                             .encode(), 400, "temperature"),
    "stream not a bool": (json.dumps({"messages": [{"role": "user", "content": "hi"}], "stream": "yes"}).encode(),
                          400, "stream"),
    "unknown model": (json.dumps({"model": "gpt-9", "messages": [{"role": "user", "content": "hi"}]}).encode(), 404,
                      "not served"),
    "1 MB content": (json.dumps({"messages": [{"role": "user", "content": "a" * 1_000_000}]}).encode(), 400,
                     "limit is 500"),
    "3 MB body": (json.dumps({"messages": [{"role": "user", "content": "a" * 3_000_000}]}).encode(), 413,
                  "larger than"),
}


@pytest.mark.parametrize("case", list(BAD_BODIES))
def test_bad_requests_get_a_4xx_with_a_message(live, case: str) -> None:
    body, status, words = BAD_BODIES[case]
    response = _post(live, body)
    assert response.status_code == status, response.text
    message = response.json()["error"]["message"]
    assert words.lower() in message.lower()


def test_server_keeps_serving_after_bad_requests(live, client: openai.OpenAI) -> None:
    for body, _, _ in BAD_BODIES.values():
        _post(live, body)
    reply = client.chat.completions.create(model=MODEL, max_tokens=4, messages=[{"role": "user", "content": "hi"}])
    assert reply.choices[0].message.content


def test_content_parts_are_accepted(live) -> None:
    body = {"messages": [{"role": "user", "content": [{"type": "text", "text": "Where is "},
                                                      {"type": "text", "text": "my order?"}]}], "max_tokens": 4}
    response = _post(live, json.dumps(body).encode())
    assert response.status_code == 200, response.text
    assert response.json()["choices"][0]["message"]["content"]


def test_request_timeout_cuts_generation_short(live, tmp_path) -> None:
    with start_server(tmp_path, live, request_timeout_s=0.01, max_new_tokens=200) as quick:
        client = openai.OpenAI(base_url=quick.api, api_key="unused", max_retries=0, timeout=60)
        reply = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "Tell me a story"}])
    assert reply.choices[0].finish_reason == "length"
    assert reply.usage.completion_tokens < 200
