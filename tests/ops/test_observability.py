"""Operations endpoints and logs: /readyz checks the database and (when configured) Redis,
/metrics aggregates every worker process and needs a bearer token outside DEBUG, JSON logs carry the
request id."""

from __future__ import annotations

import logging
import re

import orjson
import pytest
from django.test import Client, override_settings

from finops.logging import JsonFormatter, request_id_var

MESSAGES = [{"role": "user", "content": "Count me in the metrics."}]


def sample(text: str, name: str, **labels) -> float:
    """The value of one sample in a Prometheus exposition (0 when absent)."""
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    pattern = rf"^{re.escape(name)}\{{{re.escape(want)}\}} ([0-9.e+-]+)$" if want else None
    for line in text.splitlines():
        if pattern and re.match(pattern, line):
            return float(line.rsplit(" ", 1)[1])
        if not want and line.startswith(name + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


# --- in-process ------------------------------------------------------------------------------


@pytest.mark.django_db
def test_readyz_reports_the_database_and_redis_when_configured(settings):
    body = Client().get("/readyz").json()
    assert body["status"] == "ok" and body["database"] == "ok"
    assert ("redis" in body) == bool(settings.REDIS_URL)


@pytest.mark.django_db
def test_readyz_is_503_when_redis_is_configured_but_unreachable(settings):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    response = Client().get("/readyz")
    assert response.status_code == 503
    assert response.json()["status"] == "unavailable"
    assert response.json()["redis"] != "ok"


@pytest.mark.django_db
def test_metrics_need_the_bearer_token_when_one_is_set():
    with override_settings(FINOPS_METRICS_TOKEN="scrape-me-please"):
        assert Client().get("/metrics").status_code == 401
        wrong = Client().get("/metrics", HTTP_AUTHORIZATION="Bearer nope")
        assert wrong.status_code == 401
        ok = Client().get("/metrics", HTTP_AUTHORIZATION="Bearer scrape-me-please")
        assert ok.status_code == 200
        assert "finops_ledger_spool_bytes" in ok.content.decode()
    with override_settings(DEBUG=True):  # a laptop: no token set, no token asked for
        assert Client().get("/metrics").status_code == 200


@pytest.mark.django_db
def test_metrics_refuse_everyone_in_production_while_no_token_is_set():
    """They name every tenant's models and budget ratios: never served anonymously."""
    with override_settings(DEBUG=False, FINOPS_METRICS_TOKEN=""):
        response = Client().get("/metrics", HTTP_AUTHORIZATION="Bearer ")
        assert response.status_code == 401
        assert "FINOPS_METRICS_TOKEN" in response.content.decode()
        assert Client().get("/metrics").status_code == 401


@pytest.mark.django_db
def test_budget_utilisation_is_exported_from_the_rollups():
    from decimal import Decimal

    from teams.models import Budget
    from tests import factories as f

    org = f.make_org("metrics-org")
    team = f.make_team(org, "search")
    budget = Budget.objects.create(
        org=org, scope="team", team=team, period="month", limit_usd=Decimal("10")
    )
    with override_settings(FINOPS_METRICS_TOKEN="t0ken"):
        text = Client().get("/metrics", HTTP_AUTHORIZATION="Bearer t0ken").content.decode()
    labels = dict(org="metrics-org", budget=str(budget.pk), scope="team", period="month")
    assert sample(text, "finops_budget_utilisation_ratio", **labels, action=budget.action) == 0.0
    assert f'budget="{budget.pk}"' in text


def test_json_log_lines_carry_the_request_id():
    record = logging.LogRecord(
        "gateway", logging.WARNING, __file__, 1, "upstream %s", ("slow",), None
    )
    token = request_id_var.set("req-123")
    try:
        record.request_id = request_id_var.get()
        line = orjson.loads(JsonFormatter().format(record))
    finally:
        request_id_var.reset(token)
    assert line["request_id"] == "req-123"
    assert line["message"] == "upstream slow" and line["level"] == "WARNING"
    assert line["time"].endswith("Z")


# --- two uvicorn workers -------------------------------------------------------------------
