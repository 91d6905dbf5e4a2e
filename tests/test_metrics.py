"""``/metrics`` on a live server: chat turns from the UI and the API, a like, a refused over-long message and a
handoff ticket move the counters and gauges; the output parses as Prometheus text and holds no conversation
text. Plus the generation gate's queue-depth bookkeeping."""

from __future__ import annotations

import re
import threading
import time

import httpx
import openai
import pytest
from gradio_client import Client
from gradio_client.exceptions import AppError
from prometheus_client.parser import text_string_to_metric_families
from serve_fixtures import MODEL, OPERATOR, shared_server

from serving.limits import BusyError, Gate

SECRET = "my card 4111 1111 1111 1111 and zebra-kumquat-7731"


@pytest.fixture(scope="module", name="live")
def live_fixture(tmp_path_factory: pytest.TempPathFactory):
    return shared_server(tmp_path_factory.mktemp("metrics"))


def _scrape(live) -> tuple[dict[tuple[str, tuple[tuple[str, str], ...]], float], str]:
    response = httpx.get(f"{live.url}/metrics", timeout=30)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(response.text):  # raises on anything that is not Prometheus text
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples, response.text


def _value(samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_requests_latency_feedback_and_tickets_are_counted(live) -> None:
    before, _ = _scrape(live)
    client = Client(live.url, verbose=False)
    try:
        client.predict(f"Where is my order? {SECRET}", api_name="/support")
        assert "saved" in client.predict(True, api_name="/vote")[0]
        with pytest.raises(AppError, match="limit is 500"):
            client.predict("x" * 501, api_name="/support")
        api = openai.OpenAI(base_url=live.api, api_key="unused", max_retries=0, timeout=60)
        api.chat.completions.create(model=MODEL, max_tokens=4, messages=[{"role": "user", "content": "Hello"}])
        _, status = client.predict(api_name="/human")
        ticket = int(re.search(r"#(\d+)", status).group(1))
    finally:
        client.close()
    after, text = _scrape(live)

    def moved(name: str, **labels: str) -> float:
        return _value(after, name, **labels) - _value(before, name, **labels)

    assert moved("parley_requests_total", route="ui", mode="support", outcome="stop") == 1
    assert moved("parley_requests_total", route="api", mode="support", outcome="stop") == 1
    assert moved("parley_requests_total", route="ui", mode="support", outcome="limit") == 1
    assert moved("parley_request_duration_seconds_count", route="ui", mode="support") == 1
    assert moved("parley_request_duration_seconds_count", route="api", mode="support") == 1
    assert moved("parley_time_to_first_token_seconds_count", route="ui", mode="support") == 1
    assert moved("parley_request_duration_seconds_sum", route="ui", mode="support") > 0
    assert moved("parley_feedback_total", kind="like") == 1
    assert moved("parley_handoff_tickets_opened_total") == 1
    assert moved("parley_handoff_tickets_open") == 1
    assert _value(after, "parley_feedback_votes", vote="like") >= 1
    assert 0 < _value(after, "parley_like_ratio") <= 1
    assert _value(after, "parley_guard_blocks_total", stage="input") == 0  # the shared server has no guard
    assert ("parley_guard_blocks_total", (("stage", "output"),)) in after
    assert _value(after, "parley_queue_depth", queue="generation") == 0
    assert ("parley_queue_depth", (("queue", "ui"),)) in after
    assert _value(after, "parley_generation_slots") == live.cfg.concurrency
    assert _value(after, "parley_model_info", model=MODEL, guard="off") == 1
    for private in ("4111 1111", "zebra-kumquat", "Where is my order", "session-", OPERATOR[1]):
        assert private not in text

    closed = httpx.post(f"{live.api}/operator/tickets/{ticket}/close", timeout=30, json={"note": "done"},
                        headers={"Authorization": f"Bearer {':'.join(OPERATOR)}"})
    assert closed.status_code == 200
    final, _ = _scrape(live)
    for name, change in (("parley_handoff_tickets_closed_total", 1), ("parley_handoff_tickets_open", -1)):
        assert _value(final, name) - _value(after, name) == change, name


def test_metrics_speak_openmetrics_when_asked(live) -> None:
    response = httpx.get(f"{live.url}/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"})
    assert response.headers["content-type"].startswith("application/openmetrics-text")
    assert response.text.rstrip().endswith("# EOF")


def test_gate_reports_waiting_and_running_generations() -> None:
    gate = Gate(slots=1, waiting=1, wait_timeout_s=5)
    assert (gate.slots, gate.running, gate.waiting) == (1, 0, 0)
    gate.acquire()
    assert gate.running == 1
    waiter = threading.Thread(target=lambda: (gate.acquire(), gate.release()))
    waiter.start()
    deadline = time.monotonic() + 5
    while gate.waiting != 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert gate.waiting == 1
    with pytest.raises(BusyError):  # the one waiting place is taken
        gate.acquire()
    gate.release()
    waiter.join(5)
    assert (gate.running, gate.waiting) == (0, 0)
