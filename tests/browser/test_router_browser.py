"""The router and A/B pages in a real browser (headless Chromium via Playwright): Plotly draws
the traffic and quality-curve charts, the what-if slider moves the numbers and the chart's marker
without a request, and the A/B page draws one chart per metric. A screenshot of each goes to
``VAR_DIR/screenshots/``. Skipped when ``/usr/bin/chromium`` is absent."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.conf import settings

from tests.browser.test_dashboards_browser import CHART, _login
from tests.browser.test_login_browser import CHROMIUM, CHROMIUM_ARGS, PASSWORD

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs /usr/bin/chromium"),
]


@pytest.fixture
def world(transactional_db):
    """A router with a week of routed traffic and labelled pairs, and an experiment; created
    before the browser opens."""
    from django.utils import timezone

    from evaluation.models import EvalPair, Experiment, Feedback
    from teams.models import Role
    from tests import factories as f
    from tests.reports.ledger import event

    org = f.make_org("acme")
    search = f.make_team(org, "search")
    lead = f.make_user("lead@acme.test", password=PASSWORD)
    f.make_member(lead, org, Role.LEAD, search)
    key = f.make_key(search, "search-svc").key
    strong = f.make_model(org, "gpt-4o", input_per_mtok="2.50", output_per_mtok="10.00")
    weak = f.make_model(org, "gpt-4o-mini")
    router = f.make_router(org, "smart", strong=strong, weak=weak, threshold=0.5)
    now = timezone.now()
    for i in range(60):
        score = (i % 20) / 20
        model = "gpt-4o" if score >= 0.5 else "gpt-4o-mini"
        event(org=org, team=search, key_id=key.pk, model=model, router="smart",
              router_decision="strong" if score >= 0.5 else "weak", router_score=score,
              prompt_tokens=500 + 10 * i, completion_tokens=100,
              started_at=now - timedelta(hours=i), experiment="cheaper",
              experiment_arm="candidate" if i % 3 == 0 else "control",
              request_id=f"r{i}", latency_ms=100 + 7 * i)  # fmt: skip
        hard = i % 4 == 0
        EvalPair.objects.create(
            org_id=org.pk, team_id=search.pk, router=router, request_id=f"p{i}",
            expires_at=now + timedelta(days=30),
            messages=[{"role": "user", "content": "prove it " * (i + 1) if hard else "hi"}],
            router_score=score, served="strong" if score >= 0.5 else "weak",
            strong_model="gpt-4o", weak_model="gpt-4o-mini",
            judge_strong=1.0, judge_weak=0.2 if hard else 0.95,
        )  # fmt: skip
        if i % 2 == 0:
            Feedback.objects.create(org_id=org.pk, key_id=key.pk, request_id=f"r{i}",
                                    score=0.5 + (i % 5) / 10)  # fmt: skip
    experiment = Experiment.objects.create(
        org=org, name="cheaper", route="gpt-4o", candidate=weak, key=key,
        created_at=now - timedelta(days=5),
    )  # fmt: skip
    return {"router": router.pk, "experiment": experiment.pk}


@pytest.fixture
def browser():
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


def test_router_page_draws_its_charts_and_the_slider_moves_the_numbers(live_server, world, browser):
    shots = settings.VAR_DIR / "screenshots"
    shots.mkdir(parents=True, exist_ok=True)
    base = live_server.url
    page = _login(browser, base, "lead@acme.test")
    page.goto(f"{base}/reports/routers/{world['router']}/?range=7d")
    page.wait_for_selector(f"#chart-traffic{CHART}")
    page.wait_for_selector(f"#chart-curve{CHART}")
    assert page.locator("#chart-curve .scatterlayer .trace").count() >= 3  # random, curve, marker
    assert page.is_visible("#whatif-threshold")
    requests = []
    page.on("request", lambda r: requests.append(r.url))
    page.locator("#whatif-threshold").fill("0")
    assert page.inner_text("#whatif-share") == "100.0%"
    all_strong = page.inner_text("#whatif-cost")
    page.locator("#whatif-threshold").fill("1")
    assert page.inner_text("#whatif-share") == "0.0%"
    assert page.inner_text("#whatif-value").startswith("1.00")
    assert float(page.inner_text("#whatif-cost")) < float(all_strong)
    assert requests == []  # the slider never asks the server
    page.screenshot(path=str(shots / "router.png"), full_page=True)

    page.goto(f"{base}/reports/experiments/{world['experiment']}/")
    for chart in ("chart-cost", "chart-latency", "chart-errors", "chart-quality"):
        page.wait_for_selector(f"#{chart}{CHART}")
    page.screenshot(path=str(shots / "experiment.png"), full_page=True)
