"""The feedback controls in a real browser (headless Chromium via Playwright): a thumbs-down reveals the reason
choice, the reason is stored; "Another answer" shows two answers and the choice is stored."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from serve_fixtures import shared_server
from sqlalchemy import select

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


def test_dislike_reason_and_another_answer_in_the_browser(live, page) -> None:
    page.fill("#support-input textarea", "How do I reset my password?")
    page.click("#support-send")
    page.wait_for_function("document.querySelector('#support-citations')?.innerText.includes('Sources')")
    assert not page.locator("#reason-box").first.is_visible()

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
