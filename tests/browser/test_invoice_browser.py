"""The "Invoice vs ledger" page in a real browser (Debian's headless Chromium, driven by
Playwright) at 1400 px: the trend chart draws, no table overflows the page or its box, the day
drill-down opens, and the console stays free of errors. A screenshot goes to
``VAR_DIR/screenshots/invoices.png`` for a human to look at.

Skipped when ``/usr/bin/chromium`` is absent (``apt-get install chromium``).
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.conf import settings

from finops.money import share_display, usd_display
from tests.browser.test_login_browser import CHROMIUM, CHROMIUM_ARGS, PASSWORD

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs /usr/bin/chromium"),
]
CHART = ".js-plotly-plot .main-svg"
# Every table.data wider than its box (with its first row's cell widths), and the page wider
# than the window.
OVERFLOW = """() => {
  const wide = [];
  for (const t of document.querySelectorAll("table.data")) {
    const box = t.parentElement.getBoundingClientRect();
    if (t.scrollWidth > Math.ceil(box.width) + 1) {
      const cells = Array.from(t.querySelectorAll("tbody tr:first-child td"));
      const widths = cells.map((c) => Math.round(c.getBoundingClientRect().width));
      wide.push(`${t.dataset.table}: ${t.scrollWidth} > ${box.width} (${widths})`);
    }
  }
  const root = document.documentElement;
  if (root.scrollWidth > root.clientWidth) wide.push(`page: ${root.scrollWidth}`);
  return wide;
}"""


def _console(errors: list[str], message) -> None:
    """A console error, except the browser's own request of ``/favicon.ico`` (none is served)."""
    if message.type == "error" and not message.location.get("url", "").endswith("/favicon.ico"):
        errors.append(f"{message.text} ({message.location.get('url', '')})")


@pytest.fixture
def world(transactional_db):
    """An org with an admin and three months of one provider's figures against the ledger;
    created before the browser opens (no ORM call may run while Playwright's loop is here)."""
    from reports.pages.invoices_data import months_back
    from teams.models import Role
    from tests import factories as f
    from tests.reports.test_invoice_page import D2, LAST, invoice_world

    org = f.make_org("acme")
    team = f.make_team(org, "search")
    admin = f.make_user("admin@acme.test", password=PASSWORD)
    f.make_member(admin, org, Role.ADMIN)
    provider = f.make_provider(org, "sim")
    f.make_model(org, "gpt-4o-mini", provider=provider)
    invoice_world(org, team, provider)
    return {
        "org": org.pk,
        "month": LAST.strftime("%Y-%m"),
        "day": D2.isoformat(),
        "before": months_back(LAST, 1).strftime("%Y-%m"),
    }


@pytest.fixture
def browser():
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


def test_invoice_page_draws_its_trend_without_overflow_or_console_errors(
    live_server, world, browser
):
    shots = settings.VAR_DIR / "screenshots"
    shots.mkdir(parents=True, exist_ok=True)
    base = live_server.url
    page = browser.new_context(viewport={"width": 1400, "height": 900}).new_page()
    page.set_default_timeout(20_000)
    errors: list[str] = []
    page.on("console", lambda m: _console(errors, m))
    page.on("pageerror", lambda exc: errors.append(str(exc)))

    page.goto(f"{base}/accounts/login/")
    page.fill("input[name=username]", "admin@acme.test")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/")

    # the overview's coverage figure leads to the page
    page.goto(f"{base}/reports/orgs/{world['org']}/")
    page.click("[data-kpi=invoice-coverage] a")
    page.wait_for_url("**/invoices/?month=*")

    page.goto(f"{base}/reports/orgs/{world['org']}/invoices/?provider=sim&month={world['month']}")
    page.wait_for_selector("#invoices.charts-ready")
    page.wait_for_selector(f"#chart-trend{CHART}")
    assert page.locator("#chart-trend .barlayer .point").count() >= 4  # provider and ledger bars
    assert page.locator("[data-kpi=provider_cost]").inner_text() == usd_display(Decimal("4.10"))
    assert page.locator("table[data-table=models] tbody tr").count() == 2
    assert page.evaluate(OVERFLOW) == []
    page.screenshot(path=str(shots / "invoices.png"), full_page=True)

    # drill-down: a day's models and token types, and the provider's projects / keys
    page.click(f"table[data-table=days] a:text('{world['day']}')")
    page.wait_for_url(f"**day={world['day']}")
    page.wait_for_selector("table[data-table=day_accounts]")
    assert "key_laptop" in page.locator("table[data-table=day_accounts]").inner_text()
    page.wait_for_selector(f"#chart-trend{CHART}")
    assert page.evaluate(OVERFLOW) == []
    page.screenshot(path=str(shots / "invoices-day.png"), full_page=True)

    # the trend table's month links switch the month
    page.click(f"table[data-table=trend] a:text('{world['before']}')")
    page.wait_for_url(f"**month={world['before']}")
    page.wait_for_selector("#invoices.charts-ready")
    assert page.locator("[data-kpi=coverage]").inner_text() == share_display(Decimal(1))
    assert errors == [], errors
