"""The feedback loop in a real browser (headless Chromium via Playwright): ask, open "Why this answer", a
thumbs-down reveals the reason choice and the reason is stored, "Another answer" shows two answers and the choice
is stored, and ``parley feedback export`` then holds the tagged pair and the KTO row."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from serve_fixtures import shared_server
from sqlalchemy import select

from serving.app.explain_view import TITLE
from serving.feedback.models import Comparison, Message
from serving.feedback.store import FeedbackStore

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
ON_CI = os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")
pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists() and not ON_CI,
                                reason="chromium is not installed (apt-get install -y chromium)")


@pytest.fixture(scope="module", name="live")
def live_fixture(tmp_path_factory: pytest.TempPathFactory):
    return shared_server(tmp_path_factory.mktemp("browser-feedback"))


@pytest.fixture(scope="module", name="page")
def page_fixture(live) -> Iterator:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 1200, "height": 1400})
        page.set_default_timeout(60_000)
        page.goto(live.url)
        page.wait_for_selector("#support-input textarea")
        yield page
        browser.close()


QUESTION = "How do I reset my password?"


def test_ask_explain_dislike_with_a_reason_choose_another_answer_and_export(live, page, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    page.fill("#support-input textarea", QUESTION)
    page.click("#support-send")
    page.wait_for_function("document.querySelector('#support-citations')?.innerText.includes('Sources')")
    assert not page.locator("#reason-box").first.is_visible()
    chat = page.locator("#support-chat")
    chat.get_by_text(TITLE).last.click()  # "Why this answer", collapsed until opened
    expect(chat.locator(".why-guard").last).to_be_visible()

    page.locator('#support-chat button[aria-label="Dislike"]').last.click()
    page.wait_for_function("document.querySelector('#feedback-status')?.innerText.includes('What was wrong')")
    page.locator("#reason-box").first.wait_for(state="visible")
    page.locator("#reason label", has_text="Made-up or wrong fact").click()
    page.click("#reason-btn")
    page.locator("#reason-box").first.wait_for(state="hidden")

    page.click("#another-btn")
    page.locator("#compare").first.wait_for(state="visible")
    page.wait_for_function("document.querySelector('#answer-second')?.innerText.trim().length > 0")
    page.locator("#choice label", has_text="The second answer").click()
    page.click("#choice-btn")
    page.wait_for_function("document.querySelector('#feedback-status')?.innerText.includes('second answer')")
    page.locator("#compare").first.wait_for(state="hidden")

    with FeedbackStore(live.db_url, create=False) as store, store.engine.connect() as conn:
        (row,) = store.recent(1)
        assert (row["like"], row["reason"], row["mode"]) == (False, "made_up_fact", "support")
        original = row["message_id"]
        alternative = conn.execute(select(Message.id).where(Message.variant_of == original)).scalar_one()
        choice = conn.execute(select(Comparison.preferred).where(Comparison.alternative_id == alternative)).one()
    assert choice.preferred == "alternative"

    out = tmp_path / "export"
    done = subprocess.run([sys.executable, "-m", "parley.cli", "feedback", "export", "--db", live.db_url,
                           "--out", str(out)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    pairs = [json.loads(line) for line in (out / "preferences-faithfulness.jsonl").read_text().splitlines()]
    ours = [p for p in pairs if p["prompt"][-1]["content"] == QUESTION]
    assert ours and ours[-1]["objective"] == "faithfulness"  # the pair carries the dislike's reason
    kto = [json.loads(line) for line in (out / "kto.jsonl").read_text().splitlines()]
    assert any(r["prompt"][-1]["content"] == QUESTION and r["label"] is False for r in kto)
