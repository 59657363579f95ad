"""Every page a demo admin opens, in a real browser (Debian's headless Chromium, Playwright) at
1280x800 on the demo data (two days of its history): no horizontal overflow, no console error, no
request to another origin, every chart drawn with data, and the visible dollar amounts in the
one money format (``finops.money``). Skipped without ``/usr/bin/chromium``."""

from __future__ import annotations

import contextlib
import re
from datetime import UTC, datetime
from urllib.parse import urlsplit

import pytest

from tests.browser.test_login_browser import CHROMIUM, CHROMIUM_ARGS

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs /usr/bin/chromium"),
]
# $5,000.00 and up or down to a cent; $0.0013 under a cent (two significant digits); a price
# per million tokens; a negative amount
MONEY = re.compile(
    r"-?\$(\d{1,3}(,\d{3})*\.\d{2}|0\.0*[1-9]\d?)( / Mtok)?$|-?\$\d+(\.\d{1,4})? / Mtok$"
)
AMOUNT = re.compile(r"-?\$\d[\d,]*(?:\.\d+)?(?: / Mtok)?")
# the amounts a reader sees outside the charts: table cells, KPI cards, text (one per line, so
# cells never run together; axis ticks are Plotly's, formatted per axis)
TEXT = """() => Array.from(
  (document.querySelector('main') || document.body)
    .querySelectorAll('table td, table th, .dash-kpi strong, .dash-kpi small, p, li, dd'))
  .filter((el) => !el.closest('svg, .js-plotly-plot'))
  .map((el) => el.innerText).join('\\n')"""
UNDRAWN = """() => Array.from(document.querySelectorAll('.dash-chart')).every(
  (el) => el.classList.contains('js-plotly-plot') || el.textContent.trim() !== '')"""
CHARTS = """() => Array.from(document.querySelectorAll('.js-plotly-plot')).map((el) => ({
  id: el.id,
  points: (el.data || []).reduce((n, t) => n + ((t.x || t.values || t.y || []).length), 0),
}))"""


@pytest.fixture
def demo(transactional_db):
    from evaluation.models import Experiment
    from gateway.models import Router
    from provisioning.demo import demo_load
    from reports.models import BudgetAlert
    from teams.models import Organization, Team

    info = demo_load(history_days=2, seed=20, now=datetime.now(UTC))
    org = Organization.objects.get(slug=info.org_slug)
    team = Team.objects.filter(org=org).order_by("slug").first()
    month = datetime.now(UTC).strftime("%Y-%m")
    pages = {
        "home": "/",
        "overview": f"/reports/orgs/{org.pk}/",
        "team": f"/reports/teams/{team.pk}/",
        "keys": f"/teams/{team.pk}/keys/",
        "catalog": f"/reports/orgs/{org.pk}/models/",
        "statements": f"/reports/teams/{team.pk}/statements/",
        "statement": f"/reports/teams/{team.pk}/statements/{month}/",
        "invoices": f"/reports/orgs/{org.pk}/invoices/",
        "api docs": "/api/v1/docs/",
        "admin ledger": "/admin/gateway/usageevent/",
    }
    router = Router.objects.filter(org=org).first()
    if router is not None:
        pages["router"] = f"/reports/routers/{router.pk}/"
    experiment = Experiment.objects.filter(org=org).first()
    if experiment is not None:
        pages["experiment"] = f"/reports/experiments/{experiment.pk}/"
    alert = BudgetAlert.objects.filter(org=org).order_by("-pk").first()
    if alert is not None:
        pages["alert"] = f"/reports/alerts/{alert.pk}/"
    return {"username": info.username, "password": info.password, "pages": pages}


@pytest.fixture
def browser():
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


def test_every_page_fits_draws_and_speaks_one_money_format(live_server, demo, browser):
    base = live_server.url
    origin = urlsplit(base).netloc
    page = browser.new_context(viewport={"width": 1280, "height": 800}).new_page()
    page.set_default_timeout(20_000)
    errors: list[str] = []
    foreign: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on(
        "console",
        lambda m: errors.append(m.text) if m.type == "error" else None,
    )
    page.on(
        "request",
        lambda r: (
            foreign.append(r.url)
            if urlsplit(r.url).netloc not in (origin, "") and not r.url.startswith("data:")
            else None
        ),
    )
    page.goto(f"{base}/accounts/login/")
    page.fill("input[name=username]", demo["username"])
    page.fill("input[name=password]", demo["password"])
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/")
    problems: list[str] = []
    assert set(demo["pages"]) >= {"router", "experiment", "alert"}, demo["pages"]
    for name, path in demo["pages"].items():
        errors.clear()
        response = page.goto(f"{base}{path}", wait_until="load")
        if response is None or response.status != 200:
            problems.append(f"{name}: HTTP {response.status if response else '?'}")
            continue
        # the charts draw from their JSON after the load: wait until no chart box is undrawn
        with contextlib.suppress(Exception):  # reported below as a chart without points
            page.wait_for_function(UNDRAWN, timeout=3_000)
        width = page.evaluate(
            "() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]"
        )
        if width[0] > width[1]:
            problems.append(f"{name}: overflows ({width[0]} > {width[1]})")
        for chart in page.evaluate(CHARTS):
            if chart["points"] == 0:
                problems.append(f"{name}: chart {chart['id']} has no points")
        if errors:
            problems.append(f"{name}: console {errors[:3]}")
        if name not in ("api docs", "admin ledger"):
            text = page.evaluate(TEXT)
            bad = [
                text[max(0, m.start() - 60) : m.end() + 20]
                for m in AMOUNT.finditer(text)
                if not MONEY.match(m.group(0))
            ]
            if bad:
                problems.append(f"{name}: amounts off the format {bad[:3]}")
    assert foreign == [], foreign
    assert problems == [], "\n".join(problems)
