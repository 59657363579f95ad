"""Budgets and rate limits in the request path, over real HTTP."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import httpx
import pytest
from django.conf import settings
from django.db import connection
from django.db.models import Sum

from gateway.models import LLMModel, UsageEvent
from teams.models import Budget, Team
from teams.services import key_mint
from tests import factories as f
from tests.live import live_database_url, start_app
from tests.openai_schema import assert_valid

pytestmark = pytest.mark.live

BODY = {
    "model": "gpt-4o-mini",
    "messages": [{"role": "user", "content": "budget?"}],
    "max_tokens": 16,
}


def call(url: str, key: str, body: dict | None = None) -> httpx.Response:
    return httpx.post(
        f"{url}/v1/chat/completions",
        json=body or BODY,
        headers={"authorization": f"Bearer {key}"},
        timeout=30,
    )


def wait_until(check, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


@pytest.fixture
def capped(live):
    """A fresh team with its own key, for one test's budgets and limits."""
    with live.blocker.unblock():
        team = f.make_team(live.org)
        minted = key_mint(team=team, name="capped")
    yield team, minted.secret
    with live.blocker.unblock():
        Budget.objects.filter(team=team).delete()


def team_spent(live, team) -> Decimal:
    with live.blocker.unblock():
        return UsageEvent.objects.filter(team_id=team.pk).aggregate(s=Sum("cost"))["s"] or Decimal(
            0
        )


def test_block_budget_refuses_with_budget_exceeded_and_no_retry(live, capped):
    team, key = capped
    assert call(live.app.url, key).status_code == 200
    with live.blocker.unblock():
        Budget.objects.create(
            org=live.org,
            scope="team",
            team=team,
            period="month",
            limit_usd=Decimal("0.000001"),
            action="block",
        )
    wait_until(lambda: call(live.app.url, key).status_code == 429)
    response = call(live.app.url, key)
    assert response.status_code == 429
    body = response.json()
    assert_valid("ErrorResponse", body)
    assert body["error"]["code"] == "budget_exceeded"
    assert team.slug in body["error"]["message"] and "resets at" in body["error"]["message"]
    assert response.headers["x-should-retry"] == "false"


def test_success_carries_the_tightest_budget_remaining(live, capped):
    team, key = capped
    with live.blocker.unblock():
        Budget.objects.create(
            org=live.org,
            scope="team",
            team=team,
            period="day",
            limit_usd=Decimal("5"),
            action="block",
        )
        Budget.objects.create(
            org=live.org,
            scope="team",
            team=team,
            period="month",
            limit_usd=Decimal("2"),
            action="block",
        )
    wait_until(lambda: "x-finops-budget-remaining" in call(live.app.url, key).headers)
    remaining = Decimal(call(live.app.url, key).headers["x-finops-budget-remaining"])
    assert Decimal("1.99") < remaining < Decimal("2")


def test_budget_remaining_is_what_is_left_after_this_calls_cost_not_its_reservation(live, capped):
    """The header used to subtract the call's reservation (an upper bound, here 4,000 output
    tokens for a 16-token answer); it is the limit less what was spent, this call included."""
    team, key = capped
    with live.blocker.unblock():
        Budget.objects.create(
            org=live.org, scope="team", team=team, period="month", limit_usd=Decimal("2"),
            action="block",
        )  # fmt: skip
    wait_until(lambda: "x-finops-budget-remaining" in call(live.app.url, key).headers)
    first = Decimal(call(live.app.url, key).headers["x-finops-budget-remaining"])
    time.sleep(0.3)  # that call's settlement (right after its answer) is done
    response = call(live.app.url, key, {**BODY, "max_tokens": 4000})
    cost = Decimal(response.headers["x-finops-cost"])
    remaining = Decimal(response.headers["x-finops-budget-remaining"])
    assert abs(remaining - (first - cost)) <= Decimal("1e-8")  # costs are rounded up to 1e-9
    reservation = 4000 * Decimal("0.60") / 1_000_000  # gpt-4o-mini output price, per token
    assert remaining > first - reservation


def test_downgrade_budget_serves_the_cheaper_model_and_the_ledger_says_so(live, capped):
    team, key = capped
    with live.blocker.unblock():
        mini = LLMModel.objects.get(org=live.org, name="gpt-4o-mini")
        Budget.objects.create(
            org=live.org,
            scope="team",
            team=team,
            period="day",
            limit_usd=Decimal("0.000001"),
            action="downgrade",
            downgrade_to=mini,
        )
    body = dict(BODY, model="gpt-4o")
    wait_until(lambda: call(live.app.url, key, body).headers.get("x-finops-model") == "gpt-4o-mini")
    response = call(live.app.url, key, body)
    assert response.status_code == 200
    [row] = live.events(response.headers["x-request-id"])
    assert (row.requested_model, row.model, row.budget_action) == (
        "gpt-4o",
        "gpt-4o-mini",
        "downgrade",
    )


def test_alert_budget_counts_but_never_blocks(live, capped):
    team, key = capped
    with live.blocker.unblock():
        Budget.objects.create(
            org=live.org,
            scope="team",
            team=team,
            period="day",
            limit_usd=Decimal("0.000001"),
            action="alert",
        )
    time.sleep(0.5)
    assert all(call(live.app.url, key).status_code == 200 for _ in range(3))


def test_key_rpm_limit_gives_429_with_retry_after_and_ratelimit_headers(live, capped):
    team, _ = capped
    with live.blocker.unblock():
        minted = key_mint(team=team, name="rpm-2", rpm_limit=2)
    statuses = [call(live.app.url, minted.secret) for _ in range(3)]
    assert [r.status_code for r in statuses] == [200, 200, 429]
    limited = statuses[-1]
    assert limited.json()["error"]["code"] == "rate_limit_exceeded"
    assert int(limited.headers["retry-after"]) >= 1
    assert limited.headers["x-ratelimit-limit-requests"] == "2"
    assert statuses[0].headers["x-ratelimit-remaining-requests"] == "1"


def test_team_max_parallel_limit(live, capped):
    team, key = capped
    with live.blocker.unblock():
        Team.objects.filter(pk=team.pk).update(max_parallel=1)
        Team.objects.get(pk=team.pk).save()  # bump the config stamp
    time.sleep(0.5)
    body = dict(BODY, model="drip-model", stream=True)
    with httpx.stream(
        "POST",
        f"{live.app.url}/v1/chat/completions",
        json=body,
        headers={"authorization": f"Bearer {key}"},
        timeout=30,
    ) as first:
        assert first.status_code == 200
        second = call(live.app.url, key)
        assert second.status_code == 429 and second.json()["error"]["code"] == "rate_limit_exceeded"
        for _ in first.iter_lines():
            pass
    assert call(live.app.url, key).status_code == 200


def test_unreachable_counters_fail_closed_for_block_budgets_and_open_when_asked(
    live, live_tmp, capped
):
    team, key = capped
    with live.blocker.unblock():
        budget = Budget.objects.create(
            org=live.org,
            scope="team",
            team=team,
            period="month",
            limit_usd=Decimal("100"),
            action="block",
        )
        database_url = live_database_url()
    app = start_app(live_tmp, database_url=database_url, REDIS_URL="redis://127.0.0.1:1/0")
    try:
        response = call(app.url, key)
        assert response.status_code == 503
        assert response.json()["error"]["code"] == "budget_unavailable"
        with live.blocker.unblock():
            budget.fail_open = True
            budget.save()
        wait_until(lambda: call(app.url, key).status_code == 200)
    finally:
        app.stop()


@pytest.mark.skipif(
    connection.vendor != "postgresql" or not settings.REDIS_URL,
    reason="the cross-process guarantee needs PostgreSQL and Redis",
)
def test_200_concurrent_calls_on_2_processes_never_overspend_a_budget(live, live_tmp, capped):
    team, key = capped
    limit = Decimal("0.0004")
    with live.blocker.unblock():
        Budget.objects.create(
            org=live.org, scope="team", team=team, period="month", limit_usd=limit, action="block"
        )
        database_url = live_database_url()
    second = start_app(live_tmp, database_url=database_url)
    urls = [live.app.url, second.url]
    try:
        time.sleep(0.5)
        with ThreadPoolExecutor(64) as pool:
            responses = list(pool.map(lambda i: call(urls[i % 2], key), range(200)))
        codes = {r.status_code for r in responses}
        assert codes <= {200, 429}
        ok = [r for r in responses if r.status_code == 200]
        refused = [r for r in responses if r.status_code == 429]
        assert ok and refused
        assert all(r.json()["error"]["code"] == "budget_exceeded" for r in refused)
        # drain what room the burst's reservations left, one call at a time
        while call(urls[0], key).status_code == 200:
            pass
        ids = [r.headers["x-request-id"] for r in ok]
        wait_until(lambda: len(_ledger_rows(live, ids)) == len(ids), timeout=30)
        time.sleep(0.5)
        spent = team_spent(live, team)
        one_call = max(Decimal(r.headers["x-finops-cost"]) for r in ok)
        assert spent <= limit
        assert limit - spent < one_call * 3  # used up to within a call's estimate
    finally:
        second.stop()


def _ledger_rows(live, ids):
    with live.blocker.unblock():
        return list(
            UsageEvent.objects.filter(request_id__in=ids).values_list("request_id", flat=True)
        )


@pytest.mark.skipif(not settings.REDIS_URL, reason="limits shared across processes need Redis")
def test_rate_limit_holds_for_the_sum_of_two_processes(live, live_tmp, capped):
    team, _ = capped
    with live.blocker.unblock():
        minted = key_mint(team=team, name="rpm-10", rpm_limit=10)
        database_url = live_database_url()
    second = start_app(live_tmp, database_url=database_url)
    try:
        urls = [live.app.url, second.url]
        codes = [call(urls[i % 2], minted.secret).status_code for i in range(20)]
        assert codes.count(200) == 10 and codes.count(429) == 10
    finally:
        second.stop()
