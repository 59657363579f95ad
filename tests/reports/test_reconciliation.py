"""Invoice reconciliation: provider figures against the ledger, classed and split exactly;
imports replace their days; accepting a provider's price re-prices the past by correction rows
that the rollups count as money only."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from django.test import TestCase

from gateway.models import ModelPrice, UsageEvent
from reports.invoices.csv_reports import azure_meter_parse, csv_figures
from reports.invoices.drift import price_drift_accept, price_suggestions
from reports.invoices.figures import Figure, ReportError
from reports.invoices.pull import figures_store, report_upload
from reports.invoices.reconcile import (
    base_model,
    coverage,
    org_reconcile,
    provider_reconcile,
    totals,
)
from reports.models import AlertKind, BudgetAlert, DailySpend, HourlySpend, ReconciliationPolicy
from reports.services import usage_rollup
from reports.services.alert_recording import AlertRun
from reports.services.invoice_alerts import invoice_gaps_evaluate
from reports.services.rollup import spend_reconcile
from tests import factories as f
from tests.reports.ledger import event

DAY = date(2026, 11, 10)
NOON = datetime(2026, 11, 10, 12, tzinfo=UTC)
MTOK = Decimal(1_000_000)


def _ledger(org, team, *, tokens_in=1000, tokens_out=200, when=NOON, model="gpt-4o-mini", **kw):
    """A ledger row priced at the catalog's 0.15 / 0.60 per Mtok."""
    return event(
        org=org,
        team=team,
        model=model,
        upstream_model=kw.pop("upstream_model", model),
        provider="sim",
        started_at=when,
        prompt_tokens=tokens_in,
        completion_tokens=tokens_out,
        input_cost=Decimal(tokens_in) * Decimal("0.15") / MTOK,
        output_cost=Decimal(tokens_out) * Decimal("0.60") / MTOK,
        **kw,
    )


def _figures(model, tokens_in, cost_in, tokens_out, cost_out, *, day=DAY, account="proj_a"):
    return [
        Figure(day, model=model, token_type="input", tokens=tokens_in, account=account),
        Figure(day, model=model, token_type="output", tokens=tokens_out, account=account),
        Figure(day, model=model, token_type="input", cost_usd=Decimal(cost_in)),
        Figure(day, model=model, token_type="output", cost_usd=Decimal(cost_out)),
    ]


class ReconcileTests(TestCase):
    def setUp(self):
        self.org = f.make_org()
        self.team = f.make_team(self.org)
        self.provider = f.make_provider(self.org)
        self.model = f.make_model(self.org, provider=self.provider)

    def store(self, figures, start=DAY, end=DAY + timedelta(days=1), source="openai_api"):
        return figures_store(
            provider=self.provider, source=source, start=start, end=end, figures=figures
        )

    def rows(self, start=DAY, end=DAY + timedelta(days=1)):
        return {(r.model, r.token_type): r for r in provider_reconcile(self.provider, start, end)}

    def test_equal_figures_match_to_the_cent(self):
        for _ in range(3):
            _ledger(self.org, self.team)
        self.store(_figures("gpt-4o-mini-2024-07-18", 3000, "0.00045", 600, "0.00036"))
        rows = self.rows()
        assert set(rows) == {("gpt-4o-mini", "input"), ("gpt-4o-mini", "output")}
        for r in rows.values():
            assert r.klass == "matched"
            assert r.difference == 0
        assert coverage(rows.values()) == 1

    def test_traffic_that_bypassed_the_gateway_is_unmetered_at_the_providers_price(self):
        _ledger(self.org, self.team)  # 1000 in / 200 out through the gateway
        # the provider saw 5000 in / 1000 out: 4000 / 800 more, sent straight to it
        self.store(_figures("gpt-4o-mini", 5000, "0.00075", 1000, "0.0006"))
        r = self.rows()[("gpt-4o-mini", "input")]
        assert r.klass == "unmetered"
        assert r.unmetered == Decimal(4000) * Decimal("0.00075") / 5000
        assert r.price_drift == 0 and r.over_metered == 0
        t = totals(self.rows().values())
        assert t["unmetered"] == Decimal("0.0006") + Decimal("0.00048")
        assert t["difference"] == t["unmetered"]
        assert coverage(self.rows().values()) == Decimal("0.2")

    def test_a_wrong_catalog_price_is_price_drift_and_the_split_adds_up(self):
        _ledger(self.org, self.team, tokens_in=1_000_000, tokens_out=0)  # $0.15 in the ledger
        # the provider billed the same tokens at $0.20 / Mtok, and 10 % more tokens
        self.store(
            [
                Figure(DAY, model="gpt-4o-mini", token_type="input", tokens=1_100_000),
                Figure(DAY, model="gpt-4o-mini", token_type="input", cost_usd=Decimal("0.22")),
            ]
        )
        r = self.rows()[("gpt-4o-mini", "input")]
        assert r.unmetered == Decimal("0.02")
        assert r.price_drift == Decimal("0.05")
        assert r.unmetered + r.price_drift + r.matched - r.over_metered == r.difference
        assert r.matched == 0
        assert r.klass == "price_drift"
        assert r.implied_price_per_mtok == Decimal("0.2")

    def test_attempts_the_provider_did_not_bill_are_over_metered(self):
        for _ in range(2):
            _ledger(self.org, self.team)
        self.store(_figures("gpt-4o-mini", 1000, "0.00015", 200, "0.00012"))
        r = self.rows()[("gpt-4o-mini", "input")]
        assert r.klass == "over_metered"
        assert r.over_metered == Decimal("0.00015")

    def test_small_differences_within_tolerance_are_matched(self):
        _ledger(self.org, self.team, tokens_in=1_000_000)
        self.store(
            [
                Figure(DAY, model="gpt-4o-mini", token_type="input", tokens=1_000_500),
                Figure(DAY, model="gpt-4o-mini", token_type="input", cost_usd=Decimal("0.150075")),
            ]
        )
        r = self.rows()[("gpt-4o-mini", "input")]
        assert r.klass == "matched"

    def test_a_model_the_gateway_never_served_is_wholly_unmetered(self):
        self.store(_figures("gpt-4.1", 1000, "0.002", 100, "0.0008"))
        r = self.rows()[("gpt-4.1", "input")]
        assert r.klass == "unmetered" and r.unmetered == Decimal("0.002")
        assert r.accounts == {("proj_a", ""): [1000, Decimal(0)], ("", ""): [0, Decimal("0.002")]}

    def test_a_re_pull_replaces_the_day_and_another_source_wins_its_days_once(self):
        _ledger(self.org, self.team)
        self.store(_figures("gpt-4o-mini", 9000, "0.00135", 200, "0.00012"))
        self.store(_figures("gpt-4o-mini", 1000, "0.00015", 200, "0.00012"))
        assert self.rows()[("gpt-4o-mini", "input")].klass == "matched"
        # an upload of the same day, newer: it alone counts
        self.store(_figures("gpt-4o-mini", 3000, "0.00045", 200, "0.00012"), source="csv")
        assert self.rows()[("gpt-4o-mini", "input")].provider_tokens == 3000

    def test_days_no_import_covers_are_not_compared(self):
        _ledger(self.org, self.team, when=NOON + timedelta(days=1))  # the 11th: not imported
        self.store(_figures("gpt-4o-mini", 0, "0", 0, "0"))
        rows = provider_reconcile(self.provider, DAY, DAY + timedelta(days=5))
        assert all(r.day == DAY for r in rows)

    def test_a_figure_outside_the_import_is_refused(self):
        with pytest.raises(ReportError, match="outside"):
            self.store(_figures("m", 1, "0", 1, "0", day=DAY + timedelta(days=3)))

    def test_group_by_model_sums_days_and_types(self):
        _ledger(self.org, self.team)
        _ledger(self.org, self.team, when=NOON + timedelta(days=1))
        self.store(_figures("gpt-4o-mini", 1000, "0.00015", 200, "0.00012"))
        self.store(
            _figures("gpt-4o-mini", 6000, "0.0009", 200, "0.00012", day=DAY + timedelta(days=1)),
            start=DAY + timedelta(days=1),
            end=DAY + timedelta(days=2),
        )
        rows = org_reconcile([self.provider], DAY, DAY + timedelta(days=2), ("model",))
        assert len(rows) == 1
        assert rows[0].unmetered == Decimal("0.00075")
        assert rows[0].klass == "unmetered"


class DriftAcceptTests(TestCase):
    def setUp(self):
        self.org = f.make_org()
        self.team = f.make_team(self.org)
        self.provider = f.make_provider(self.org)
        self.model = f.make_model(self.org, provider=self.provider)
        self.admin = f.make_user()
        f.make_member(self.admin, self.org, "admin")
        self.day = datetime.now(UTC).date() - timedelta(days=2)
        when = datetime.combine(self.day, datetime.min.time(), UTC) + timedelta(hours=9)
        for i in range(4):
            _ledger(
                self.org, self.team, tokens_in=250_000, tokens_out=0, when=when, feature=f"f{i % 2}"
            )
        # the provider charges $0.20 / Mtok of input, not the catalog's $0.15
        figures_store(
            provider=self.provider,
            source="openai_api",
            start=self.day,
            end=self.day + timedelta(days=1),
            figures=[
                Figure(self.day, model="gpt-4o-mini", token_type="input", tokens=1_000_000),
                Figure(self.day, model="gpt-4o-mini", token_type="input", cost_usd=Decimal("0.2")),
            ],
        )

    def test_the_suggestion_is_the_providers_price_from_the_first_drifting_day(self):
        (s,) = price_suggestions(self.provider, self.day, self.day + timedelta(days=1))
        assert (s.model, s.token_type, s.since) == (self.model, "input", self.day)
        assert s.implied_usd_per_mtok == Decimal("0.2")
        assert s.catalog_usd_per_mtok == Decimal("0.15")
        assert s.drift_usd == Decimal("0.05")

    def test_accepting_adds_a_price_and_correction_rows_and_the_drift_is_gone(self):
        usage_rollup()
        before = HourlySpend.objects.get(org_id=self.org.pk, feature="f0")
        price, added = price_drift_accept(
            model=self.model,
            token_type="input",
            usd_per_mtok=Decimal("0.2"),
            since=self.day,
            actor=self.admin,
        )
        assert added == 2  # one per hour x dimension combination (two features)
        assert price.source == "reconciliation" and price.input_usd_per_mtok == Decimal("0.2")
        assert price.output_usd_per_mtok == Decimal("0.60")  # the other directions kept
        assert ModelPrice.objects.filter(model=self.model).count() == 2
        corrections = UsageEvent.objects.filter(status="correction")
        assert sum(c.cost for c in corrections) == Decimal("0.05")
        assert all(c.attempt == 0 and c.prompt_tokens == 0 for c in corrections)
        # history untouched: the original rows keep their cost
        assert UsageEvent.objects.filter(status="ok").count() == 4
        rows = provider_reconcile(self.provider, self.day, self.day + timedelta(days=1))
        assert [r.klass for r in rows] == ["matched"]
        # the rollups move by the money, not by the counts
        usage_rollup()
        after = HourlySpend.objects.get(org_id=self.org.pk, feature="f0")
        assert after.cost == before.cost + Decimal("0.025")
        assert after.input_cost == before.input_cost + Decimal("0.025")
        assert (after.attempts, after.requests, after.failures) == (2, 2, 0)
        assert after.failed_cost == 0
        day_total = sum(d.cost for d in DailySpend.objects.filter(org_id=self.org.pk))
        assert day_total == Decimal("0.2")
        for rec in spend_reconcile(start=self.day, end=self.day):
            assert rec.ledger_days == rec.daily, rec
        # accepting again re-prices against the corrected cost: nothing more to add
        _, again = price_drift_accept(
            model=self.model,
            token_type="input",
            usd_per_mtok=Decimal("0.2"),
            since=self.day,
            actor=self.admin,
        )
        assert again == 0


class CsvTests(TestCase):
    def setUp(self):
        self.org = f.make_org()
        self.provider = f.make_provider(
            self.org, kind="azure", base_url="https://x.openai.azure.com"
        )

    def test_the_generic_columns(self):
        data = (
            b"date,model,token_type,tokens,cost_usd,account\n"
            b"2026-11-10,gpt-4o-mini,input,1000,0.00015,proj_a\n"
            b"2026-11-11,gpt-4o-mini,output,200,0.00012,\n"
        )
        pull = report_upload(self.provider, data=data, filename="nov.csv")
        assert (pull.start, pull.end, pull.rows, pull.source) == (
            DAY,
            DAY + timedelta(days=2),
            2,
            "csv",
        )

    def test_bad_files_say_which_line_and_why(self):
        for data, message in (
            (b"", "no header"),
            (b"date,model\n2026-11-10,x\n", "missing column"),
            (b"date,model,token_type\n2026-11-10,x,input\n", "tokens or a cost_usd"),
            (b"date,model,token_type,tokens\n2026-11-10,x,inputs,1\n", "line 2: token_type"),
            (b"date,model,token_type,tokens\nnope,x,input,1\n", "line 2: not a date"),
            (b"date,model,token_type,tokens\n2026-11-10,x,input,-5\n", "line 2: negative"),
            (b"date,model,token_type,cost_usd\n2026-11-10,x,input,NaN\n", "line 2: not an amount"),
            (b"\xff\xfe", "not UTF-8"),
        ):
            with pytest.raises(ReportError, match=message):
                csv_figures(data)

    def test_azure_meters_name_the_model_and_direction(self):
        assert azure_meter_parse("gpt-4o-mini-0718 Inp glbl Tokens") == (
            "gpt-4o-mini-0718",
            "input",
        )
        assert azure_meter_parse("gpt-4o-mini-0718 Outp glbl Tokens") == (
            "gpt-4o-mini-0718",
            "output",
        )
        assert azure_meter_parse("gpt 4o 0513 cached Inp regnl Tokens") == (
            "gpt-4o-0513",
            "cached_input",
        )
        assert azure_meter_parse("Standard Storage LRS") == ("", None)
        assert base_model("gpt-4o-mini-0718") == "gpt-4o-mini"

    def test_an_azure_export_in_thousands_of_tokens(self):
        data = (
            b"Date,MeterName,Quantity,UnitOfMeasure,CostInBillingCurrency,BillingCurrency,ResourceName\n"
            b"11/10/2026,gpt-4o-mini-0718 Inp glbl Tokens,12.5,1K,0.001875,USD,acct1\n"
            b"11/10/2026,Standard Storage LRS,3,1 GB/Month,0.06,USD,store\n"
        )
        source, figures = csv_figures(data)
        assert source == "azure_export"
        assert figures[0].tokens == 12_500 and figures[0].cost_usd == Decimal("0.001875")
        assert figures[1].model == "" and figures[1].tokens is None
        eur = data.replace(b",USD,", b",EUR,")
        with pytest.raises(ReportError, match="only USD"):
            csv_figures(eur)


class AlertTests(TestCase):
    def test_unmetered_spend_past_the_threshold_alerts_once_a_month(self):
        org = f.make_org()
        team = f.make_team(org)
        admin = f.make_user(email="fin@example.com")
        f.make_member(admin, org, "finance")
        provider = f.make_provider(org)
        f.make_model(org, provider=provider)
        ReconciliationPolicy.objects.create(
            org=org, unmetered_alert_usd=Decimal("1"), price_drift_alert_usd=None
        )
        now = datetime.now(UTC)
        today = now.date()
        _ledger(org, team, when=now - timedelta(minutes=5))
        figures_store(
            provider=provider,
            source="openai_api",
            start=today,
            end=today + timedelta(days=1),
            figures=[
                Figure(today, model="gpt-4o-mini", token_type="input", tokens=10_001_000),
                Figure(today, model="gpt-4o-mini", token_type="input", cost_usd=Decimal("1.50015")),
            ],
        )
        for _ in range(2):
            invoice_gaps_evaluate(AlertRun(), now=now)
        (alert,) = BudgetAlert.objects.filter(org=org)
        assert alert.kind == AlertKind.UNMETERED
        assert alert.spent_usd == Decimal("1.5")
        assert "fin@example.com" in alert.recipients
        assert alert.details["by_model"][0]["model"] == "gpt-4o-mini"
