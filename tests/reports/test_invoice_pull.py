"""Pulling the providers' own reports from their admin APIs: both readers against the
simulator (its OpenAI Usage/Costs and Anthropic usage/cost report endpoints, filled with
injected history spanning several days), the figures exact, a re-pull idempotent, a refused
admin key recorded as a failed pull that never shows the key."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import httpx
import pytest
from django.test import TestCase

from gateway.services.credentials import secret_encrypt
from reports.invoices.pull import provider_report_pull
from reports.invoices.reconcile import provider_reconcile
from reports.models import ProviderUsage
from simulator.config import SimConfig
from tests import factories as f
from tests.simulator.conftest import threaded_sim

ADMIN = "sk-admin-pull-test-0123456789"
D1, D2, D3 = date(2026, 3, 1), date(2026, 3, 2), date(2026, 3, 3)
MTOK = Decimal(1_000_000)


@pytest.fixture(scope="module")
def sim():
    with threaded_sim(SimConfig(admin_key=ADMIN)) as server:
        yield server


@pytest.fixture
def history(sim):
    httpx.post(f"{sim.url}/_sim/reset")
    records = [
        # OpenAI: two days of gpt-4o-mini (one with cached input), an embedding, two projects
        {"at": f"{D1}T10:00:00Z", "endpoint": "chat", "model": "gpt-4o-mini", "api_key": "sk-a",
         "project": "proj_app", "input_tokens": 1000, "cached_tokens": 200, "output_tokens": 50,
         "requests": 3},
        {"at": f"{D2}T23:59:59Z", "endpoint": "chat", "model": "gpt-4o-mini", "api_key": "sk-b",
         "project": "proj_notebook", "input_tokens": 4000, "output_tokens": 400},
        {"at": f"{D2}T08:00:00Z", "endpoint": "embeddings", "model": "text-embedding-3-small",
         "api_key": "sk-a", "input_tokens": 9000},
        # Anthropic: cache reads and writes
        {"at": f"{D1}T12:00:00Z", "endpoint": "messages", "model": "claude-sonnet-4-5",
         "api_key": "sk-ant-x", "input_tokens": 100, "cached_tokens": 3000,
         "cache_write_tokens": 2000, "output_tokens": 300},
    ]  # fmt: skip
    assert httpx.post(f"{sim.url}/_sim/usage", json=records).status_code == 200
    return records


def _figures(provider) -> dict:
    out: dict = {}
    for u in ProviderUsage.objects.filter(provider=provider):
        tokens, cost = out.get((u.day, u.model, u.token_type), (0, Decimal(0)))
        out[(u.day, u.model, u.token_type)] = (tokens + (u.tokens or 0), cost + (u.cost_usd or 0))
    return out


@pytest.mark.django_db
class TestPull:
    def provider(self, sim, kind: str, key: str = ADMIN):
        org = f.make_org()
        base = f"{sim.url}/v1" if kind == "openai" else sim.url
        provider = f.make_provider(org, kind, kind=kind, base_url=base)
        provider.admin_api_key_encrypted = secret_encrypt(key)
        provider.save()
        return provider

    def test_openai_usage_and_costs_become_exact_figures(self, sim, history):
        provider = self.provider(sim, "openai")
        pull = provider_report_pull(provider, start=D1, end=D3 + timedelta(days=1))
        assert pull.status == "ok", pull.error
        got = _figures(provider)
        assert got[(D1, "gpt-4o-mini", "input")] == (1000, Decimal(1000) * Decimal("0.15") / MTOK)
        assert got[(D1, "gpt-4o-mini", "cached_input")] == (200, 200 * Decimal("0.075") / MTOK)
        assert got[(D1, "gpt-4o-mini", "output")] == (50, 50 * Decimal("0.60") / MTOK)
        assert got[(D2, "gpt-4o-mini", "input")][0] == 4000  # the last second of the 2nd
        assert got[(D2, "text-embedding-3-small", "input")] == (9000, 9000 * Decimal("0.02") / MTOK)
        projects = set(
            ProviderUsage.objects.filter(provider=provider, tokens__gt=0).values_list(
                "account", flat=True
            )
        )
        assert {"proj_app", "proj_notebook"} <= projects
        # a re-pull replaces the days: nothing counts twice
        before = sum(t for t, _ in got.values())
        provider_report_pull(provider, start=D1, end=D3 + timedelta(days=1))
        assert sum(t for t, _ in _figures(provider).values()) == before
        rows = provider_reconcile(provider, D1, D3 + timedelta(days=1))
        assert all(r.klass == "unmetered" for r in rows if r.provider_tokens)  # no gateway calls

    def test_anthropic_usage_and_cost_reports_become_exact_figures(self, sim, history):
        provider = self.provider(sim, "anthropic")
        pull = provider_report_pull(provider, start=D1, end=D2)
        assert pull.status == "ok", pull.error
        got = _figures(provider)
        model = "claude-sonnet-4-5"
        assert got[(D1, model, "input")] == (100, 100 * Decimal("3.00") / MTOK)
        assert got[(D1, model, "cached_input")] == (3000, 3000 * Decimal("0.30") / MTOK)
        assert got[(D1, model, "cache_write")] == (2000, 2000 * Decimal("3.75") / MTOK)
        assert got[(D1, model, "output")] == (300, 300 * Decimal("15.00") / MTOK)

    def test_a_refused_admin_key_is_a_failed_pull_that_changes_nothing(self, sim, history):
        provider = self.provider(sim, "openai", key="sk-admin-wrong-0123456789")
        pull = provider_report_pull(provider, start=D1, end=D2)
        assert pull.status == "failed" and "HTTP 401" in pull.error
        assert "sk-admin-wrong" not in pull.error
        assert not ProviderUsage.objects.filter(provider=provider).exists()
        provider.admin_api_key_encrypted = ""
        provider.save()
        assert "no admin API credential" in provider_report_pull(provider, start=D1, end=D2).error


class UnreachableTests(TestCase):
    def test_an_admin_host_that_does_not_answer_is_a_failed_pull_without_the_key(self):
        org = f.make_org()
        provider = f.make_provider(org, "openai", base_url="http://metadata.internal.test/v1")
        provider.admin_api_key_encrypted = secret_encrypt(ADMIN)
        provider.save()
        pull = provider_report_pull(provider, start=D1, end=D2)
        assert pull.status == "failed"
        assert ADMIN not in pull.error
