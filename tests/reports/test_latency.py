"""Latency percentiles come from the latencies the ledger recorded (exact), not from inside the
rollups' coarse histogram buckets: calls of 1-3 ms have a p50 of about 2 ms, not 25."""

from __future__ import annotations

from datetime import date, timedelta

from django.test import override_settings
from django.test.client import Client

from reports.models import RollupState
from reports.selectors import SpendQuery, spend_by_dimension
from reports.selectors.spend import exact_quantile, latency_percentiles
from reports.services import usage_rollup
from tests.base import TwoOrgsTestCase
from tests.reports.ledger import event, utc

MARCH = {"start": "2026-03-01", "end": "2026-03-31"}
FAST = (1, 1, 2, 2, 2, 2, 2, 3, 3, 2)  # average 2 ms, all in the 0-50 ms bucket


@override_settings(PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"])
class LatencyPercentileTests(TwoOrgsTestCase):
    @classmethod
    def setUpTestData(cls):
        super().setUpTestData()
        RollupState.objects.all().delete()
        t = utc(2026, 3, 10, 9, 0)
        for i, ms in enumerate(FAST):
            event(org=cls.org_a, team=cls.team_a, model="gpt-4o-mini", latency_ms=ms,
                  started_at=t + timedelta(minutes=i))  # fmt: skip
        # neither a failure, nor a shadow call, nor another team's or org's call counts
        event(org=cls.org_a, team=cls.team_a, model="gpt-4o-mini", status="error",
              latency_ms=30000, started_at=t)  # fmt: skip
        event(org=cls.org_a, team=cls.team_a, model="gpt-4o-mini", shadow=True,
              latency_ms=30000, started_at=t)  # fmt: skip
        event(org=cls.org_a, team=cls.team_a2, model="gpt-4o-mini", latency_ms=9000,
              started_at=t)  # fmt: skip
        event(org=cls.org_b, team=cls.team_b, model="gpt-4o-mini", latency_ms=9000,
              started_at=t)  # fmt: skip
        usage_rollup()

    def test_exact_quantile_interpolates_between_ranks(self):
        self.assertEqual(exact_quantile([80, 80, 400, 400], 0.5), 240)
        self.assertEqual(exact_quantile([2000], 0.95), 2000)
        self.assertIsNone(exact_quantile([], 0.5))

    def test_the_team_page_p50_is_the_recorded_2_ms_not_a_bucket_midpoint(self):
        client = Client()
        client.force_login(self.lead_a)
        body = client.get(f"/reports/teams/{self.team_a.pk}/data.json", MARCH).json()
        totals = body["totals"]
        self.assertEqual(totals["latency_ms_avg"], 2.0)
        self.assertEqual(totals["latency_ms_p50"], 2.0)  # the histogram said 25.0
        self.assertEqual(totals["latency_ms_p95"], 3.0)
        [model] = body["models"]
        self.assertEqual((model["latency_ms_p50"], model["latency_ms_p95"]), (2.0, 3.0))

    def test_the_spend_api_percentiles_are_exact_per_group(self):
        query = SpendQuery(group_by=("team", "model"), start=date(2026, 3, 1),
                           end=date(2026, 3, 31))  # fmt: skip
        rows = {r["team"]: r for r in spend_by_dimension(self.admin_a, query)}
        self.assertEqual((rows["search"]["latency_ms_p50"], rows["search"]["latency_ms_p95"]),
                         (2.0, 3.0))  # fmt: skip
        self.assertEqual(rows["ads"]["latency_ms_p50"], 9000.0)
        by_day = SpendQuery(group_by=("day",), start=query.start, end=query.end, team="search")
        [day] = spend_by_dimension(self.lead_a, by_day)
        self.assertEqual((day["day"], day["latency_ms_p50"]), ("2026-03-10", 2.0))

    def test_scoped_to_what_the_user_reads(self):
        first, last = date(2026, 3, 1), date(2026, 3, 31)
        mine = latency_percentiles(self.lead_a, org=self.org_a, first=first, last=last)
        self.assertEqual(mine, {(): (2.0, 3.0)})  # team ads' 9 s call is not theirs
        nothing = latency_percentiles(self.lead_a, org=self.org_b, first=first, last=last)
        self.assertEqual(nothing, {})
