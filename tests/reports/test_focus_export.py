"""FOCUS export (``GET /api/v1/exports/focus/`` and ``manage.py export_focus``, FOCUS 1.3 by
default): columns, grain, UTC periods, totals equal to the ledger, provider names, scoping, bad
parameters. The validator's rules, price windows and ``focus_version``: ``test_focus_rules``."""

from __future__ import annotations

import csv
import io
import json
import re
import tempfile
from collections import Counter
from datetime import date, timedelta
from decimal import Decimal

from django.core.management import call_command
from rest_framework.test import APIClient

from gateway.models import LLMModel, ModelPrice, Provider, UsageEvent
from reports.exports.focus import COLUMNS, columns
from reports.models import RollupState
from reports.services import usage_rollup
from tests.reports.ledger import event, utc
from tests.teams.api_case import API, APITestCase

WINDOW = {"start": "2026-11-01", "end": "2026-11-30"}
MANDATORY_1_2 = {
    "BilledCost",
    "BillingAccountId",
    "BillingAccountName",
    "BillingCurrency",
    "BillingPeriodEnd",
    "BillingPeriodStart",
    "ChargeCategory",
    "ChargeClass",
    "ChargeDescription",
    "ChargePeriodEnd",
    "ChargePeriodStart",
    "ContractedCost",
    "EffectiveCost",
    "InvoiceIssuerName",
    "ListCost",
    "PricingQuantity",
    "PricingUnit",
    "ProviderName",
    "PublisherName",
    "ServiceCategory",
    "ServiceName",
}
FIXED_POINT = re.compile(r"^-?\d+\.\d{12}$")
COST_COLUMNS = ("BilledCost", "ContractedCost", "EffectiveCost", "ListCost")


class FocusExportTests(APITestCase):
    @classmethod
    def setUpTestData(cls):
        super().setUpTestData()
        RollupState.objects.all().delete()
        sim = Provider.objects.create(
            org=cls.org_a, slug="sim", kind="openai", base_url="http://127.0.0.1:9100/v1"
        )
        azure = Provider.objects.create(
            org=cls.org_a,
            slug="azure-east",
            kind="azure",
            base_url="https://east.openai.azure.com",
            publisher="OpenAI",
        )
        Provider.objects.create(
            org=cls.org_a,
            slug="openai",
            kind="openai",
            base_url="https://api.openai.com/v1",
            invoice_issuer="Reseller Ltd",
        )
        # the catalog (USD per million tokens); gpt-4.1 and claude-sonnet are not in it
        for provider, name, prices in [
            (sim, "gpt-4o", dict(input_usd_per_mtok="2.5", output_usd_per_mtok="10",
                                 cached_input_usd_per_mtok="1.25")),
            (azure, "gpt-4o-mini", dict(input_usd_per_mtok="0.15", output_usd_per_mtok="0.6",
                                        cache_write_usd_per_mtok="1.25")),
        ]:  # fmt: skip
            model = LLMModel.objects.create(
                org=cls.org_a, provider=provider, name=name, upstream_model=name
            )
            ModelPrice.objects.create(model=model, effective_from=utc(2026, 1, 1), **prices)
        t = utc(2026, 11, 1, 9, 0)
        rows = [
            # two calls in one grain (same UTC day), with cached input
            dict(org=cls.org_a, team=cls.team_a, key_id=cls.minted_a.key.pk,
                 feature="summarize", endpoint="/summary", model="gpt-4o", provider="sim",
                 prompt_tokens=1000, cached_tokens=200, completion_tokens=50,
                 input_cost="0.002000000001", cached_input_cost="0.000250000000",
                 output_cost="0.000500000003", started_at=t),
            dict(org=cls.org_a, team=cls.team_a, feature="summarize", endpoint="/summary",
                 model="gpt-4o", provider="sim", prompt_tokens=300, completion_tokens=10,
                 input_cost="0.000750000000", output_cost="0.000100000000",
                 started_at=t + timedelta(hours=3)),
            # next day, Azure, cache write, a failed attempt without output
            dict(org=cls.org_a, team=cls.team_a, feature="chat", endpoint="/chat",
                 model="gpt-4o-mini", provider="azure-east", prompt_tokens=130,
                 cache_write_tokens=30, completion_tokens=0, input_cost="0.000015000000",
                 cache_write_cost="0.000037500000", output_cost="0", status="error",
                 started_at=t + timedelta(days=1)),
            dict(org=cls.org_a, team=cls.team_a2, feature="ads-copy", model="gpt-4.1",
                 provider="openai", input_cost="0.003", output_cost="0.000000000007",
                 started_at=utc(2026, 11, 30, 23, 59, 59)),  # last second of the window
            dict(org=cls.org_a, team=cls.team_a2, feature="ads-copy", model="claude-sonnet",
                 provider="sim-claude", input_cost="0.5", shadow=True, started_at=t),
            dict(org=cls.org_a, model="gpt-4o-mini", provider="sim", started_at=t),  # no team
            dict(org=cls.org_b, team=cls.team_b, feature="summarize", model="gpt-4o",
                 provider="sim", input_cost="7", started_at=t),
            # outside the window
            dict(org=cls.org_a, team=cls.team_a, feature="summarize", model="gpt-4o",
                 provider="sim", input_cost="100", started_at=utc(2026, 12, 1, 0, 0, 0)),
            dict(org=cls.org_a, team=cls.team_a, feature="summarize", model="gpt-4o",
                 provider="sim", input_cost="100", started_at=utc(2026, 10, 31, 23, 59, 59)),
        ]  # fmt: skip
        for row in rows:
            event(**row)
        usage_rollup()

    # --- helpers ------------------------------------------------------------------------
    def export(self, user, **params) -> tuple[list[str], list[dict]]:
        response = self.get(user, "/exports/focus/", **{**WINDOW, **params})
        self.assertEqual(response.status_code, 200, getattr(response, "content", b""))
        self.assertTrue(response.streaming)
        self.assertTrue(response["Content-Type"].startswith("text/csv"))
        text = b"".join(response.streaming_content).decode()
        reader = csv.DictReader(io.StringIO(text))
        return list(reader.fieldnames or []), list(reader)

    def ledger_production(self, org) -> Decimal:
        events = UsageEvent.objects.filter(
            org_id=org.pk,
            shadow=False,
            started_at__gte=utc(2026, 11, 1),
            started_at__lt=utc(2026, 12, 1),
        )
        return sum((Decimal(e.cost) for e in events), Decimal(0))

    # --- tests --------------------------------------------------------------------------
    def test_header_has_every_mandatory_column_in_a_fixed_order(self):
        header, _ = self.export(self.finance_a)
        self.assertEqual(header, list(COLUMNS))
        self.assertLessEqual(MANDATORY_1_2, set(header))
        self.assertEqual(
            header[-7:],
            [
                "x_Team",
                "x_Feature",
                "x_Endpoint",
                "x_Model",
                "x_Evaluation",
                "x_PriceEffectiveFrom",
                "x_ProviderBilledCost",
            ],
        )

    def test_the_providers_own_billed_cost_rides_beside_the_ledgers_where_imported(self):
        from reports.invoices.figures import Figure
        from reports.invoices.pull import figures_store

        sim = Provider.objects.get(org=self.org_a, slug="sim")
        day = date(2026, 11, 1)
        figures_store(
            provider=sim,
            source="csv",
            start=day,
            end=day + timedelta(days=1),
            figures=[  # the provider billed the day's gpt-4o input at $0.0033 (ledger: 0.00275)
                Figure(day, model="gpt-4o-2024-08-06", token_type="input", tokens=1100,
                       cost_usd=Decimal("0.0033")),
            ],
        )  # fmt: skip
        _, rows = self.export(self.finance_a)
        billed = [r for r in rows if r["x_ProviderBilledCost"]]
        assert {(r["x_Model"], r["SkuMeter"], r["ChargePeriodStart"][:10]) for r in billed} == {
            ("gpt-4o", "Input Tokens", "2026-11-01")
        }
        assert sum(Decimal(r["x_ProviderBilledCost"]) for r in billed) == Decimal("0.0033")
        # each row's share follows its ledger cost; BilledCost stays the gateway's metered cost
        for r in billed:
            share = Decimal(r["BilledCost"]) / Decimal("0.002750000001")
            assert abs(Decimal(r["x_ProviderBilledCost"]) - Decimal("0.0033") * share) < Decimal(
                "1e-12"
            )
        # the lead of another team sees no share of it
        _, lead_rows = self.export(self.lead_a2)
        assert not any(r["x_ProviderBilledCost"] for r in lead_rows)

    def test_one_row_per_day_team_feature_endpoint_model_and_direction(self):
        _, rows = self.export(self.finance_a)
        grain = Counter(
            (r["ChargePeriodStart"], r["x_Team"], r["x_Feature"], r["x_Endpoint"], r["SkuId"])
            for r in rows
        )
        self.assertEqual(max(grain.values()), 1)
        self.assertEqual(
            set(grain),
            {
                ("2026-11-01T00:00:00Z", "search", "summarize", "/summary", "gpt-4o:input"),
                ("2026-11-01T00:00:00Z", "search", "summarize", "/summary", "gpt-4o:cached-input"),
                ("2026-11-01T00:00:00Z", "search", "summarize", "/summary", "gpt-4o:output"),
                ("2026-11-02T00:00:00Z", "search", "chat", "/chat", "gpt-4o-mini:input"),
                ("2026-11-02T00:00:00Z", "search", "chat", "/chat", "gpt-4o-mini:cache-write"),
                ("2026-11-30T00:00:00Z", "ads", "ads-copy", "", "gpt-4.1:input"),
                ("2026-11-30T00:00:00Z", "ads", "ads-copy", "", "gpt-4.1:output"),
                ("2026-11-01T00:00:00Z", "", "", "", "gpt-4o-mini:input"),
                ("2026-11-01T00:00:00Z", "", "", "", "gpt-4o-mini:output"),
            },
        )
        merged = {
            r["SkuId"]: r
            for r in rows
            if r["x_Feature"] == "summarize" and r["ChargePeriodStart"].startswith("2026-11-01")
        }
        # two calls summed; input tokens exclude the cached ones (OpenAI counts them in prompt)
        self.assertEqual(merged["gpt-4o:input"]["ConsumedQuantity"], "1100.0")
        self.assertEqual(merged["gpt-4o:input"]["BilledCost"], "0.002750000001")
        # priced per million tokens; the quantity is what the cost prices at the catalog rate
        # (here a picodollar more than 1100 tokens at 2.5, so not exactly 0.0011)
        self.assertEqual(merged["gpt-4o:input"]["ListUnitPrice"], "2.5")
        self.assertEqual(merged["gpt-4o:input"]["PricingQuantity"], "0.0011000000004")
        self.assertEqual(merged["gpt-4o:input"]["PricingUnit"], "1000000 Tokens")
        self.assertEqual(merged["gpt-4o:cached-input"]["ConsumedQuantity"], "200.0")
        self.assertEqual(merged["gpt-4o:cached-input"]["PricingQuantity"], "0.0002")
        self.assertEqual(merged["gpt-4o:output"]["BilledCost"], "0.000600000003")
        self.assertEqual(merged["gpt-4o:output"]["ConsumedUnit"], "Tokens")
        self.assertEqual(merged["gpt-4o:input"]["ChargeDescription"], "gpt-4o input tokens")

    def test_periods_are_utc_with_z_and_billing_period_is_the_month(self):
        _, rows = self.export(self.finance_a)
        last = next(r for r in rows if r["x_Model"] == "gpt-4.1")
        self.assertEqual(last["ChargePeriodStart"], "2026-11-30T00:00:00Z")
        self.assertEqual(last["ChargePeriodEnd"], "2026-12-01T00:00:00Z")
        for r in rows:
            self.assertEqual(r["BillingPeriodStart"], "2026-11-01T00:00:00Z")
            self.assertEqual(r["BillingPeriodEnd"], "2026-12-01T00:00:00Z")
            self.assertEqual(r["ChargeCategory"], "Usage")
            self.assertEqual(r["ChargeClass"], "")
            self.assertEqual(r["ChargeFrequency"], "Usage-Based")
            self.assertEqual(r["ServiceCategory"], "AI and Machine Learning")
            self.assertEqual(r["BillingCurrency"], "USD")
            self.assertEqual(r["BillingAccountId"], "acme")

    def test_billed_cost_sums_to_the_ledger_production_spend_exactly(self):
        _, rows = self.export(self.finance_a)
        for r in rows:
            for column in COST_COLUMNS:
                self.assertRegex(r[column], FIXED_POINT)
            self.assertEqual(
                {r[c] for c in COST_COLUMNS}, {r["BilledCost"]}
            )  # list = contracted = billed = effective
        total = sum((Decimal(r["BilledCost"]) for r in rows), Decimal(0))
        self.assertEqual(total, self.ledger_production(self.org_a))
        self.assertEqual(total, Decimal("0.006679500011"))

    def test_shadow_spend_is_left_out_unless_asked_for(self):
        _, rows = self.export(self.finance_a)
        self.assertNotIn("claude-sonnet", {r["x_Model"] for r in rows})
        self.assertEqual({r["x_Evaluation"] for r in rows}, {"false"})
        _, with_eval = self.export(self.finance_a, include_evaluation="true")
        # read from the ledger (the rollups keep no evaluation tokens): tokens per direction
        shadow = {r["SkuId"]: r for r in with_eval if r["x_Evaluation"] == "true"}
        self.assertEqual(set(shadow), {"claude-sonnet:input", "claude-sonnet:output"})
        self.assertEqual(
            sum(Decimal(r["BilledCost"]) for r in shadow.values()), Decimal("0.500012")
        )
        self.assertEqual(shadow["claude-sonnet:input"]["ConsumedQuantity"], "100.0")
        self.assertEqual(len(with_eval), len(rows) + 2)

    def test_provider_publisher_and_invoice_issuer_come_from_the_provider(self):
        _, rows = self.export(self.finance_a)
        names = {
            r["x_Model"]: (
                r["ProviderName"],
                r["PublisherName"],
                r["InvoiceIssuerName"],
                r["ServiceName"],
            )
            for r in rows
        }
        self.assertEqual(names["gpt-4o"], ("sim", "sim", "sim", "sim API"))
        azure = next(r for r in rows if r["x_Feature"] == "chat")
        self.assertEqual(
            (azure["ProviderName"], azure["PublisherName"], azure["InvoiceIssuerName"]),
            ("Microsoft", "OpenAI", "Microsoft"),
        )
        self.assertEqual(azure["ServiceName"], "Azure OpenAI Service")
        self.assertEqual(
            (azure["ServiceProviderName"], azure["HostProviderName"]), ("Microsoft", "Microsoft")
        )
        # a reseller invoices: it sells the service (provider), OpenAI runs and produced it
        self.assertEqual(names["gpt-4.1"], ("Reseller Ltd", "OpenAI", "Reseller Ltd", "OpenAI API"))
        resold = next(r for r in rows if r["x_Model"] == "gpt-4.1")
        self.assertEqual(
            (resold["ServiceProviderName"], resold["HostProviderName"]), ("Reseller Ltd", "OpenAI")
        )

    def test_tags_and_sub_account_name_the_team(self):
        _, rows = self.export(self.finance_a, focus_version="1.2")
        row = next(r for r in rows if r["x_Feature"] == "summarize")
        self.assertEqual(
            json.loads(row["Tags"]),
            {
                "llmfinops/org": "acme",
                "llmfinops/team": "search",
                "llmfinops/feature": "summarize",
                "llmfinops/endpoint": "/summary",
            },
        )
        self.assertEqual((row["SubAccountId"], row["SubAccountName"]), ("acme/search", "Search"))
        org_level = next(r for r in rows if r["x_Team"] == "")
        self.assertEqual(
            (org_level["SubAccountId"], json.loads(org_level["Tags"])),
            ("", {"llmfinops/org": "acme"}),
        )
        # 1.3: the team's charge is split by feature and endpoint, which are the allocated
        # resource's tags; Tags are the origin charge's
        _, rows = self.export(self.finance_a)
        row = next(r for r in rows if r["x_Feature"] == "summarize")
        self.assertEqual(
            json.loads(row["Tags"]), {"llmfinops/org": "acme", "llmfinops/team": "search"}
        )
        self.assertEqual(
            json.loads(row["AllocatedTags"]),
            {"llmfinops/feature": "summarize", "llmfinops/endpoint": "/summary"},
        )
        self.assertEqual(
            row["AllocatedResourceId"], "acme/search?feature=summarize&endpoint=%2Fsummary"
        )
        self.assertEqual(row["AllocatedResourceName"], "summarize /summary")

    def test_scoping_by_role(self):
        teams = lambda user: {r["x_Team"] for r in self.export(user)[1]}  # noqa: E731
        self.assertEqual(teams(self.finance_a), {"search", "ads", ""})
        self.assertEqual(teams(self.admin_a), {"search", "ads", ""})
        self.assertEqual(teams(self.lead_a), {"search"})
        self.assertEqual(teams(self.member_a), {"search"})
        self.assertEqual(teams(self.lead_a2), {"ads"})
        self.assertEqual(teams(self.admin_b), {"search"})
        self.assertEqual({r["BillingAccountId"] for r in self.export(self.admin_b)[1]}, {"globex"})
        self.assertEqual(self.export(self.outsider)[1], [])
        # another org's slug narrows to nothing, never widens
        self.assertEqual(self.export(self.lead_a, org="globex")[1], [])
        self.assertEqual(self.export(self.admin_a, org="globex")[1], [])
        lead_total = sum(Decimal(r["BilledCost"]) for r in self.export(self.lead_a)[1])
        self.assertEqual(lead_total, Decimal("0.003652500004"))

    def test_anonymous_is_refused(self):
        response = APIClient().get(f"{API}/exports/focus/", WINDOW)
        self.assertIn(response.status_code, (401, 403))

    def test_bad_dates_are_400_with_drf_errors(self):
        cases = [
            ({}, {"start", "end"}),
            ({"start": "2026-11-01"}, {"end"}),
            ({"start": "2026-13-01", "end": "2026-11-30"}, {"start"}),
            ({"start": "2026-11-30", "end": "2026-11-01"}, {"start"}),
            ({"start": "2026-01-01", "end": "2027-01-02"}, {"end"}),  # 367 days
        ]
        for params, fields in cases:
            with self.subTest(params=params):
                response = self.client_for(self.finance_a).get(f"{API}/exports/focus/", params)
                self.assertEqual(response.status_code, 400)
                self.assertEqual(set(response.json()), fields)
        ok = self.client_for(self.finance_a).get(
            f"{API}/exports/focus/", {"start": "2026-01-01", "end": "2027-01-01"}
        )
        self.assertEqual(ok.status_code, 200)  # 366 days

    def test_command_writes_the_same_csv_as_the_api(self):
        response = self.get(self.admin_a, "/exports/focus/", **WINDOW)
        api = b"".join(response.streaming_content).decode()
        out = io.StringIO()
        call_command("export_focus", org="acme", start="2026-11-01", end="2026-11-30", stdout=out)
        self.assertEqual(out.getvalue(), api)
        with tempfile.NamedTemporaryFile("r", suffix=".csv", encoding="utf-8") as target:
            call_command(
                "export_focus",
                "--org=acme",
                "--start=2026-11-01",
                "--end=2026-11-30",
                f"--output={target.name}",
            )
            self.assertEqual(target.read(), api)

    def test_ledger_rows_outside_the_window_do_not_count(self):
        _, rows = self.export(self.finance_a, start="2026-12-01", end="2026-12-01")
        self.assertEqual(sum(Decimal(r["BilledCost"]) for r in rows), Decimal("100.000012"))

    def test_a_client_asking_for_text_csv_gets_it_and_its_errors_as_json(self):
        client = self.client_for(self.finance_a)
        response = client.get(f"{API}/exports/focus/", WINDOW, HTTP_ACCEPT="text/csv")
        self.assertEqual(response.status_code, 200)
        first = f"{columns('1.3')[0]},".encode()
        self.assertTrue(b"".join(response.streaming_content).startswith(first))
        bad = client.get(f"{API}/exports/focus/", {"start": "x"}, HTTP_ACCEPT="text/csv")
        self.assertEqual(bad.status_code, 400)
        self.assertEqual(set(json.loads(bad.content)), {"start", "end"})
