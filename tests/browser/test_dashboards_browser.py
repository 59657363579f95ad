"""The dashboards in a real browser (Debian's headless Chromium, driven by Playwright): a team
lead's team page draws its Plotly charts from the JSON endpoint, shows the spend API's numbers,
and an org admin's overview drills down to a team by clicking its bars. Screenshots of both go
to ``VAR_DIR/screenshots/`` for a human to look at.

Skipped when ``/usr/bin/chromium`` is absent (``apt-get install chromium``).
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.conf import settings

from finops.money import usd_display
from tests.browser.test_login_browser import CHROMIUM, CHROMIUM_ARGS, PASSWORD

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs /usr/bin/chromium"),
]
CHART = ".js-plotly-plot .main-svg"  # Plotly marks the chart element itself js-plotly-plot


@pytest.fixture
def world(transactional_db):
    """Two teams with three weeks of traffic, budgets, rolled up; created before the browser
    opens (no ORM call may run while Playwright's loop is in this thread)."""
    from django.utils import timezone

    from reports.services import usage_rollup
    from teams.models import Role
    from tests import factories as f
    from tests.reports.ledger import event

    org = f.make_org("acme")
    search, ads = f.make_team(org, "search"), f.make_team(org, "ads")
    lead = f.make_user("lead@acme.test", password=PASSWORD)
    admin = f.make_user("admin@acme.test", password=PASSWORD)
    f.make_member(lead, org, Role.LEAD, search)
    f.make_member(admin, org, Role.ADMIN)
    key = f.make_key(search, "search-svc").key.pk
    now = timezone.now()
    models = [
        ("gpt-4o", "0.0025", 300),
        ("gpt-4o-mini", "0.00015", 120),
        ("claude-sonnet", "0.003", 900),
    ]
    for day in range(21):
        for i, (model, price, latency) in enumerate(models):
            for feature, endpoint in (("summarize", "/summary"), ("chat", "/chat")):
                event(org=org, team=search, key_id=key, feature=feature, endpoint=endpoint,
                      model=model, input_cost=Decimal(price) * (1 + day % 5), latency_ms=latency,
                      status="error" if (day + i) % 7 == 0 else "ok",
                      started_at=now - timedelta(days=day, minutes=5 + i))  # fmt: skip
        event(org=org, team=ads, feature="ads-copy", model="claude-sonnet", input_cost="0.02",
              started_at=now - timedelta(days=day, minutes=30))  # fmt: skip
    usage_rollup()
    f.make_budget(org, scope="team", team=search, limit="0.5")
    f.make_budget(org, scope="org", limit="2")
    return {"org": org.pk, "search": search.pk, "ads": ads.pk}


@pytest.fixture
def browser():
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


def _login(browser, base: str, username: str):
    page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
    page.set_default_timeout(20_000)
    page.goto(f"{base}/accounts/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/")
    return page


def test_team_page_and_overview_draw_their_charts(live_server, world, browser):
    shots = settings.VAR_DIR / "screenshots"
    shots.mkdir(parents=True, exist_ok=True)
    base = live_server.url

    page = _login(browser, base, "lead@acme.test")
    page.click("header a:text('Spend')")  # the nav link leads a lead to their team page
    page.wait_for_url(f"**/reports/teams/{world['search']}/")
    page.goto(f"{base}/reports/teams/{world['search']}/?range=30d")
    page.wait_for_selector("#dashboard.charts-ready")
    page.wait_for_selector(CHART)
    page.wait_for_selector(f"#chart-time-feature{CHART}")
    for chart in ("chart-budget-0", "chart-time-model", "chart-overhead", "chart-latency"):
        assert page.locator(f"#{chart}{CHART}").count() >= 1, chart
    assert page.locator("#chart-time-feature .barlayer .point").count() > 0

    # the table's number is the spend API's (same range, same user)
    start = page.input_value("input[name=start]")
    end = page.input_value("input[name=end]")
    api = page.evaluate(
        """async ([start, end]) => {
             const q = `group_by=feature&team=search&start=${start}&end=${end}`;
             const r = await fetch(`/api/v1/spend/?${q}`);
             return (await r.json()).rows;
           }""",
        [start, end],
    )
    # the page's one money format (finops.money.usd_display) of the API's full-precision figures
    expected = {r["feature"]: usd_display(Decimal(r["cost"])) for r in api}
    cells = page.locator("table[data-table=features] tbody tr")
    shown = {
        cells.nth(i).locator("td").nth(0).inner_text(): cells.nth(i)
        .locator("td")
        .nth(4)
        .inner_text()
        for i in range(cells.count())
    }
    assert shown == expected
    kpi = page.locator("[data-kpi=cost]").inner_text()
    assert kpi == usd_display(sum(Decimal(r["cost"]) for r in api))
    page.screenshot(path=str(shots / "team.png"), full_page=True)
    # another team's page does not exist for this lead
    assert page.goto(f"{base}/reports/teams/{world['ads']}/").status == 404

    page = _login(browser, base, "admin@acme.test")
    page.goto(f"{base}/reports/orgs/{world['org']}/?range=30d")
    page.wait_for_selector("#dashboard.charts-ready")
    for chart in ("chart-month", "chart-teams", "chart-efficiency", "chart-top-model"):
        page.wait_for_selector(f"#{chart}{CHART}")
    page.screenshot(path=str(shots / "overview.png"), full_page=True)

    # drill-down: a click on a team's bar opens the team's page with the same range
    bar = page.locator("#chart-teams .barlayer .trace").first.locator(".point path").last
    bar.scroll_into_view_if_needed()
    page.wait_for_timeout(200)
    box = bar.bounding_box()
    assert box is not None
    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.wait_for_url("**/reports/teams/*/?range=30d")
    assert page.locator("h1").inner_text().startswith(("Search", "Ads"))
