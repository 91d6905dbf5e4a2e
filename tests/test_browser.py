"""A real headless browser (Debian chromium driven by Playwright) against a live server: ask a support question,
watch the answer stream in with citations, click like, translate a sentence, log in to the operator console and
open its Feedback view.

``PARLEY_SCREENSHOTS=1`` also writes PNGs of the views to ``docs/screenshots/`` (the committed ones were
taken with ``PARLEY_SERVE_TEST_MODEL=smollm2-135m-instruct`` for readable answers). Never run
``playwright install``: the system chromium is used (``.ci/system-deps.sh`` installs it).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from serve_fixtures import OPERATOR, ROOT, shared_server

from serving.feedback.store import FeedbackStore

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SHOTS = ROOT / "docs" / "screenshots"
TIMEOUT_MS = 60_000

ON_CI = os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")
# Locally a missing chromium skips; on CI (.ci/system-deps.sh installs it) the launch fails loudly instead.
pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists() and not ON_CI,
                                reason="chromium is not installed (apt-get install -y chromium)")

# Counts text changes of the newest bot bubble, to see the answer arrive in pieces rather than at once.
WATCH_STREAM = """
() => {
  window.__updates = 0;
  const chat = document.querySelector('#support-chat');
  new MutationObserver(() => { window.__updates += 1; })
    .observe(chat, {subtree: true, childList: true, characterData: true});
}
"""


@pytest.fixture(scope="module", name="live")
def live_fixture(tmp_path_factory: pytest.TempPathFactory):
    return shared_server(tmp_path_factory.mktemp("browser"))


@pytest.fixture(scope="module", name="page")
def page_fixture(live) -> Iterator:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 1200, "height": 1000})
        page.set_default_timeout(TIMEOUT_MS)
        page.goto(live.url)
        page.wait_for_selector("#support-input textarea")
        yield page
        browser.close()


def _shot(page, name: str) -> None:
    if os.environ.get("PARLEY_SCREENSHOTS") == "1":
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def test_support_question_streams_with_citations_and_like_is_stored(live, page) -> None:
    page.evaluate(WATCH_STREAM)
    page.fill("#support-input textarea", "How long does account deletion take?")
    page.click("#support-send")
    page.wait_for_function("document.querySelector('#support-citations')?.innerText.includes('Sources')")
    bot = page.locator('#support-chat [data-testid="bot"]').last
    assert bot.inner_text().strip()
    assert page.evaluate("window.__updates") >= 3
    assert "Deleting your account" in page.inner_text("#support-citations")
    assert "Safety guard: off" in page.inner_text("#guard-note")

    page.locator('#support-chat button[aria-label="Like"]').last.click()
    page.wait_for_function("document.querySelector('#feedback-status')?.innerText.includes('saved')")
    _shot(page, "support")
    with FeedbackStore(live.db_url, create=False) as store:
        recent = store.recent(1)
    assert recent and recent[0]["like"] is True and recent[0]["mode"] == "support"


def test_translate_a_sentence(page) -> None:
    page.get_by_role("tab", name="Translate").click()
    page.fill("#translate-input textarea", "Bonjour, je voudrais retourner mes chaussures.")
    page.click("#translate-btn")
    page.wait_for_function("document.querySelector('#translate-detected')?.innerText.includes('French')")
    bot = page.locator('#translate-chat [data-testid="bot"]').last
    bot.wait_for()
    page.wait_for_function(
        "document.querySelector('#translate-chat [data-testid=\"bot\"]')?.innerText.trim().length > 0")
    _shot(page, "translate")


def test_operator_console_login_and_feedback_view_shows_counts(live, page) -> None:
    assert page.get_by_role("tab", name="Feedback").count() == 0  # not in the customer's app
    page.goto(f"{live.operator}/")
    page.get_by_label("username").fill(OPERATOR[0])
    page.get_by_label("password").fill(OPERATOR[1])
    page.get_by_role("button", name="Login").click()
    page.wait_for_selector("#tickets-table")
    page.get_by_role("tab", name="Feedback").click()
    page.click("#admin-refresh")
    page.wait_for_function("document.querySelector('#admin-counts')?.innerText.includes('Likes:')")
    page.wait_for_selector("#admin-plot img, #admin-plot svg")
    page.wait_for_function("!document.body.innerText.includes('processing')")
    _shot(page, "feedback")
