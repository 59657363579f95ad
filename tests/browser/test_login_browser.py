"""A real browser (Debian's headless Chromium, driven by Playwright) logs in and reaches home.

Skipped when ``/usr/bin/chromium`` is absent (``apt-get install chromium``; ``.ci/run`` does it).
"""

from __future__ import annotations

from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PASSWORD = "pw-Browser-12345"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs /usr/bin/chromium"),
]


@pytest.fixture
def browser_page():
    sync_api = pytest.importorskip("playwright.sync_api")
    # Playwright's sync API runs an event loop in this thread, so no ORM call may happen here
    # while the browser is open: the data is created before, the live server works in its own
    # thread, and the database flush comes after this fixture's teardown.
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.set_default_timeout(15_000)
            yield page
        finally:
            browser.close()


@pytest.fixture
def acme_lead(transactional_db):
    from teams.models import Role
    from tests import factories as f

    org = f.make_org("acme")
    team = f.make_team(org, "search")
    user = f.make_user("lead@acme.test", password=PASSWORD)
    f.make_member(user, org, Role.LEAD, team)
    return user


def test_login_in_a_browser_reaches_home_and_logs_out(live_server, acme_lead, browser_page):
    page = browser_page
    page.goto(f"{live_server.url}/")
    assert "/accounts/login/" in page.url  # home requires login

    page.fill("input[name=username]", "lead@acme.test")
    page.fill("input[name=password]", "wrong-password")
    page.click("button[type=submit]")
    assert page.locator("p.error").is_visible()

    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}/")
    assert page.locator("h1").inner_text() == "Welcome, lead@acme.test"
    assert page.locator("table.data").first.is_visible()
    assert "Team lead" in page.content()
    # the stylesheet was served and applied (the top bar is dark)
    colour = page.eval_on_selector(".topbar", "e => getComputedStyle(e).backgroundColor")
    assert colour == "rgb(29, 35, 48)"

    page.click("header form button[type=submit]")  # POST logout
    page.wait_for_url("**/accounts/login/")
    page.goto(f"{live_server.url}/")
    assert "/accounts/login/" in page.url
