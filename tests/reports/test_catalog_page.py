"""The model catalog page: current prices side by side, latency/throughput/errors/volume from the
rollups, the re-price of a team's last 30 days, tenancy and CSV downloads."""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from decimal import Decimal

from django.urls import reverse
from django.utils import timezone

from gateway.models import ModelPrice
from reports.pages.catalog_data import reprice_team, window_days
from reports.services import usage_rollup
from tests import factories as f
from tests.base import TwoOrgsTestCase
from tests.reports.ledger import event


def _csv(response) -> dict[str, dict[str, str]]:
    assert response["Content-Type"].startswith("text/csv"), response["Content-Type"]
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    return {row[next(iter(row))]: row for row in rows}


class CatalogPageTests(TwoOrgsTestCase):
    @classmethod
    def setUpTestData(cls):
        super().setUpTestData()
        now = timezone.now()
        cls.mini = f.make_model(
            cls.org_a, "gpt-4o-mini", context_window=128000, max_output_tokens=16384
        )
        ModelPrice.objects.filter(model=cls.mini).update(cached_input_usd_per_mtok=Decimal("0.075"))
        cls.big = f.make_model(cls.org_a, "gpt-4o", input_per_mtok="3.00", output_per_mtok="12")
        ModelPrice.objects.filter(model=cls.big).update(effective_from=now - timedelta(days=60))
        ModelPrice.objects.create(  # the current price
            model=cls.big,
            effective_from=now - timedelta(days=10),
            input_usd_per_mtok=Decimal("2.50"),
            output_usd_per_mtok=Decimal("10.00"),
            cached_input_usd_per_mtok=Decimal("1.25"),
        )
        ModelPrice.objects.create(  # announced, not in force yet
            model=cls.big,
            effective_from=now + timedelta(days=5),
            input_usd_per_mtok=Decimal("1.00"),
            output_usd_per_mtok=Decimal("4.00"),
        )
        f.make_model(cls.org_b, "globex-secret-model", input_per_mtok="9", output_per_mtok="9")

        t = now - timedelta(days=2)
        mini = dict(org=cls.org_a, team=cls.team_a, model="gpt-4o-mini", started_at=t)
        for latency in (80, 80, 400, 400):
            event(
                **mini,
                prompt_tokens=100,
                completion_tokens=50,
                latency_ms=latency,
                input_cost="0.000015",
                output_cost="0.00003",
            )
        event(
            **mini,
            status="error",
            prompt_tokens=100,
            completion_tokens=0,
            latency_ms=1000,
            input_cost="0.000015",
            output_cost="0",
        )
        event(**mini, shadow=True, prompt_tokens=9999, completion_tokens=9999, input_cost="1")
        big = dict(org=cls.org_a, team=cls.team_a2, model="gpt-4o")
        event(
            **big,
            started_at=t,
            prompt_tokens=1000,
            cached_tokens=200,
            cache_write_tokens=100,
            completion_tokens=300,
            latency_ms=2000,
            input_cost="0.00175",
            cached_input_cost="0.00025",
            cache_write_cost="0.00025",
            output_cost="0.003",
        )
        event(**big, started_at=now - timedelta(days=40), prompt_tokens=10**6, input_cost="2.5")
        event(
            org=cls.org_b,
            team=cls.team_b,
            model="globex-secret-model",
            started_at=t,
            input_cost="7.77",
        )
        usage_rollup()
        cls.url = reverse("reports:catalog", args=[cls.org_a.pk])

    def test_prices_side_by_side_are_the_current_model_prices(self):
        self.client.force_login(self.member_a)
        page = self.client.get(self.url)
        self.assertEqual(page.status_code, 200)
        self.assertContains(page, "gpt-4o-mini")
        self.assertNotContains(page, "globex-secret-model")
        rows = _csv(self.client.get(self.url, {"format": "csv", "table": "models"}))
        self.assertEqual(set(rows), {"gpt-4o", "gpt-4o-mini"})
        mini, big = rows["gpt-4o-mini"], rows["gpt-4o"]
        self.assertEqual(
            [mini[c] for c in ("Input $/Mtok", "Cached input $/Mtok", "Cache write $/Mtok")],
            ["0.15", "0.075", "0.15"],  # no cache-write price: billed at the input rate
        )
        self.assertEqual(mini["Output $/Mtok"], "0.6")
        self.assertEqual((mini["Context window"], mini["Max output"]), ("128000", "16384"))
        # the 60-day-old price is superseded and the announced one not in force yet
        current = self.big.price_at()
        self.assertEqual(current.input_usd_per_mtok, Decimal("2.5"))
        self.assertEqual(
            [big[c] for c in ("Input $/Mtok", "Cached input $/Mtok", "Output $/Mtok")],
            ["2.5", "1.25", "10"],
        )

    def test_latency_throughput_errors_and_volume_come_from_the_rollups(self):
        self.client.force_login(self.finance_a)
        rows = _csv(self.client.get(self.url, {"format": "csv", "table": "models"}))
        mini = rows["gpt-4o-mini"]
        # successes at 80, 80, 400, 400 ms, exact from the ledger (interpolated between ranks, as
        # PostgreSQL's percentile_cont), not within the histogram's buckets
        self.assertEqual((mini["Latency p50 ms"], mini["Latency p95 ms"]), ("240.0", "400.0"))
        self.assertEqual(mini["Output tok/s"], "208.3")  # 200 tokens / 0.96 s
        self.assertEqual(mini["Error rate %"], "20.00")  # 1 failed attempt of 5
        self.assertEqual(mini["Requests"], "5")  # the shadow call is evaluation traffic
        self.assertEqual(mini["Tokens"], "700")
        self.assertEqual(mini["Spend USD"], "0.000195")
        big = rows["gpt-4o"]
        self.assertEqual((big["Latency p50 ms"], big["Requests"]), ("2000.0", "1"))
        self.assertEqual(big["Spend USD"], "0.00525")  # the 40-day-old call is outside the window
        page = self.client.get(self.url)
        self.assertContains(page, "vendor/plotly/plotly.min.js")
        self.assertContains(page, 'id="catalog-data"')

    def test_leads_and_members_see_traffic_of_their_own_teams_only(self):
        self.client.force_login(self.member_a)
        rows = _csv(self.client.get(self.url, {"format": "csv", "table": "models"}))
        self.assertEqual(rows["gpt-4o-mini"]["Requests"], "5")
        self.assertEqual(rows["gpt-4o"]["Requests"], "")  # team ads' traffic is not theirs
        self.assertEqual(rows["gpt-4o"]["Input $/Mtok"], "2.5")  # prices are for everyone

    def test_reprice_prices_a_known_token_mix_exactly(self):
        first, last = window_days(self.org_a)
        result = reprice_team(
            self.admin_a, team=self.team_a2, target=self.mini, first=first, last=last
        )
        [row] = result.rows
        self.assertEqual(
            (
                row.source,
                row.prompt_tokens,
                row.cached_tokens,
                row.cache_write_tokens,
                row.completion_tokens,
            ),
            ("gpt-4o", 1000, 200, 100, 300),
        )
        # 700 uncached x 0.15 + 200 cached x 0.075 + 100 written x 0.15 + 300 out x 0.60, per Mtok
        self.assertEqual(row.repriced, Decimal("0.000315"))
        self.assertEqual(row.actual, Decimal("0.00525"))
        self.assertEqual(result.difference, Decimal("-0.004935"))

        self.client.force_login(self.admin_a)
        params = {"team": self.team_a2.pk, "target": "gpt-4o-mini"}
        page = self.client.get(self.url, params)
        self.assertContains(page, '<td class="num">-$0.0049</td>')  # the CSV keeps it whole
        rows = _csv(self.client.get(self.url, {**params, "format": "csv", "table": "reprice"}))
        self.assertEqual(rows["gpt-4o"]["On target USD"], "0.000315")
        self.assertEqual(rows["Total"]["Difference USD"], "-0.004935")

    def test_reprice_of_own_team_on_a_dearer_model(self):
        self.client.force_login(self.lead_a)
        params = {"team": self.team_a.pk, "target": "gpt-4o", "format": "csv", "table": "reprice"}
        rows = _csv(self.client.get(self.url, params))
        row = rows["gpt-4o-mini"]
        self.assertEqual((row["Prompt tokens"], row["Completion tokens"]), ("500", "200"))
        self.assertEqual(row["Actual USD"], "0.000195")
        self.assertEqual(row["On target USD"], "0.00325")  # 500 x 2.50 + 200 x 10, per Mtok
        self.assertEqual(row["Difference USD"], "0.003055")

    def test_team_selector_lists_only_readable_teams(self):
        self.client.force_login(self.member_a)
        page = self.client.get(self.url)
        self.assertEqual(list(page.context["form"].fields["team"].queryset), [self.team_a])
        for team in (self.team_a2, self.team_b):
            response = self.client.get(self.url, {"team": team.pk, "target": "gpt-4o"})
            self.assertEqual(response.status_code, 404)
        self.client.force_login(self.finance_a)
        page = self.client.get(self.url)
        self.assertEqual(
            set(page.context["form"].fields["team"].queryset), {self.team_a, self.team_a2}
        )
        response = self.client.get(self.url, {"team": self.team_b.pk, "target": "gpt-4o"})
        self.assertEqual(response.status_code, 404)

    def test_an_unknown_target_is_a_form_error(self):
        self.client.force_login(self.lead_a)
        page = self.client.get(self.url, {"team": self.team_a.pk, "target": "globex-secret-model"})
        self.assertEqual(page.status_code, 200)
        self.assertIsNone(page.context["reprice"])
        self.assertTrue(page.context["form"].errors["target"])

    def test_another_org_and_outsiders_get_404(self):
        for user in (self.admin_b, self.lead_b, self.outsider):
            self.client.force_login(user)
            self.assertEqual(self.client.get(self.url).status_code, 404)
            csv_params = {"format": "csv", "table": "models"}
            self.assertEqual(self.client.get(self.url, csv_params).status_code, 404)
        self.client.logout()
        self.assertEqual(self.client.get(self.url).status_code, 302)

    def test_csv_of_an_unknown_table_is_404(self):
        self.client.force_login(self.admin_a)
        response = self.client.get(self.url, {"format": "csv", "table": "reprice"})
        self.assertEqual(response.status_code, 404)  # no re-price asked for
