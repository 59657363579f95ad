"""Invoice reconciliation end to end: calls through the gateway, calls sent straight to the
provider (the simulator) with a project of their own, and one catalog price set wrong; the
pull reads the simulator's own admin reports (OpenAI's Usage and Costs APIs), and the API shows
the unmetered spend to the cent, the price drift on the right model, and the alert fires once.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import openai
import pytest
from django.core.management import call_command
from rest_framework.test import APIClient

from gateway.models import LLMModel, ModelPrice, Provider, UsageEvent
from gateway.services.credentials import secret_encrypt
from reports.models import AlertKind, BudgetAlert, ReconciliationPolicy
from reports.services.alert_recording import AlertRun
from reports.services.invoice_alerts import invoice_gaps_evaluate
from teams.models import Organization
from teams.services import key_mint
from tests import factories as f
from tests.live import start_simulator

pytestmark = pytest.mark.live
MTOK = Decimal(1_000_000)
ADMIN_KEY = "sk-admin-e2e-0123456789"
SIM_KEY = "sk-sim-test"  # what the gateway's provider sends (tests.live.child_env)


def _cost(usage, input_price: str, output_price: str) -> Decimal:
    assert not (usage.prompt_tokens_details and usage.prompt_tokens_details.cached_tokens)
    return (
        usage.prompt_tokens * Decimal(input_price) + usage.completion_tokens * Decimal(output_price)
    ) / MTOK


@pytest.fixture
def world(live, live_tmp):
    sim = start_simulator(live_tmp, "--admin-key", ADMIN_KEY, "--api-key", SIM_KEY)
    with live.blocker.unblock():
        Organization.objects.filter(slug="invoice-e2e").delete()
        org = f.make_org("invoice-e2e")
        team = f.make_team(org, "agents")
        admin = f.make_user("admin@invoice-e2e.test")
        f.make_member(admin, org, "admin")
        provider = Provider.objects.create(
            org=org,
            slug="openai",
            kind="openai",
            base_url=f"{sim.url}/v1",
            api_key_env="FINOPS_SIM_KEY",
            admin_api_key_encrypted=secret_encrypt(ADMIN_KEY),
        )
        f.make_model(
            org, "gpt-4o-mini", provider=provider, input_per_mtok="0.15", output_per_mtok="0.60"
        )
        # wrong: the provider (and the simulator's price list) charge $2.50 per Mtok of input
        f.make_model(
            org, "gpt-4o", provider=provider, input_per_mtok="2.00", output_per_mtok="10.00"
        )
        ReconciliationPolicy.objects.create(
            org=org,
            unmetered_alert_usd=Decimal("0.000001"),
            price_drift_alert_usd=Decimal("0.000001"),
        )
        secret = key_mint(team=team, name="agent").secret
    try:
        yield {"org": org, "admin": admin, "secret": secret, "sim": sim}
    finally:
        sim.stop()
        with live.blocker.unblock():
            UsageEvent.objects.filter(org_id=org.pk).delete()
            ModelPrice.objects.filter(model__org=org).delete()
            LLMModel.objects.filter(org=org).delete()
            org.delete()


def test_unmetered_spend_and_a_wrong_price_are_found_to_the_cent(live, world):
    org = world["org"]
    gateway = openai.OpenAI(base_url=f"{live.app.url}/v1", api_key=world["secret"], max_retries=0)
    direct = openai.OpenAI(
        base_url=f"{world['sim'].url}/v1",
        api_key=SIM_KEY,
        max_retries=0,
        default_headers={"OpenAI-Project": "proj_notebook"},
    )
    # coding-agent sized prompts (each one distinct from its first characters, so that the
    # simulator's prompt cache never applies): the differences are cents, not microdollars
    context = "def handler(event):\n    return event  # context\n" * 900
    drift = Decimal(0)
    for i in range(4):
        gateway.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": f"{i} gateway {context}"}],
            max_tokens=20,
        )
        r = gateway.chat.completions.create(
            model="gpt-4o",
            messages=[{"role": "user", "content": f"{i} big model {context}"}],
            max_tokens=20,
        )
        drift += r.usage.prompt_tokens * Decimal("0.50") / MTOK
    unmetered = Decimal(0)
    for i in range(3):  # a notebook with the raw provider key: the gateway never sees these
        r = direct.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": f"notebook call {i}"}],
            extra_headers={"x-sim-prompt-tokens": str(120_000 + i)},
        )
        unmetered += _cost(r.usage, "0.15", "0.60")
    assert drift > Decimal("0.01") and unmetered > Decimal("0.05")
    deadline = time.monotonic() + 10
    with live.blocker.unblock():
        while UsageEvent.objects.filter(org_id=org.pk).count() < 8:
            assert time.monotonic() < deadline, "the ledger never got the gateway's calls"
            time.sleep(0.1)
        today = datetime.now(UTC).date()
        first = today - timedelta(days=1)  # a run across midnight still covers both days
        call_command(
            "reconcile_invoices", org=org.slug, start=first.isoformat(), end=today.isoformat()
        )
        client = APIClient()
        client.force_login(world["admin"])
        body = client.get(
            "/api/v1/reconciliation/",
            {"start": first.isoformat(), "end": today.isoformat(), "group_by": "model"},
        ).json()
        rows = {r["model"]: r for r in body["rows"]}
        mini, big = rows["gpt-4o-mini"], rows["gpt-4o"]
        assert mini["class"] == "unmetered"
        assert Decimal(mini["unmetered_usd"]) == unmetered
        assert Decimal(mini["price_drift_usd"]) == 0
        assert {a["account"] for a in mini["accounts"] if a["tokens"]} >= {"proj_notebook"}
        assert big["class"] == "price_drift"
        assert Decimal(big["price_drift_usd"]) == drift
        assert Decimal(big["unmetered_usd"]) == 0
        assert Decimal(body["totals"]["difference"]) == unmetered + drift
        # the price the figures imply, offered for the right model and direction
        (suggestion,) = client.get(
            "/api/v1/reconciliation/suggestions/",
            {"start": first.isoformat(), "end": today.isoformat()},
        ).json()["suggestions"]
        assert (suggestion["model_name"], suggestion["token_type"]) == ("gpt-4o", "input")
        assert Decimal(suggestion["implied_usd_per_mtok"]) == Decimal("2.5")
        # the alert job: one alert per kind and month, however often it runs
        for _ in range(2):
            invoice_gaps_evaluate(AlertRun(), now=datetime.now(UTC))
        alerts = BudgetAlert.objects.filter(org=org)
        assert sorted(a.kind for a in alerts) == [AlertKind.PRICE_DRIFT, AlertKind.UNMETERED]
        assert abs(alerts.get(kind=AlertKind.UNMETERED).spent_usd - unmetered) < Decimal("1e-6")
