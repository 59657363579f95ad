"""``GET /api/v1/spend/``: every group_by dimension, role scoping, totals equal to the ledger."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from django.db.models import Sum
from rest_framework.test import APIClient

from gateway.models import UsageEvent
from reports.models import RollupState
from reports.selectors import DIMENSIONS
from reports.services import usage_rollup
from tests import factories as f
from tests.reports.ledger import event, utc
from tests.teams.api_case import APITestCase

WINDOW = {"start": "2026-03-01", "end": "2026-03-31"}


class SpendAPITests(APITestCase):
    @classmethod
    def setUpTestData(cls):
        super().setUpTestData()
        RollupState.objects.all().delete()
        t = utc(2026, 3, 10, 9, 0)
        key_a, key_a2, key_b = (cls.minted_a.key.pk, cls.minted_a2.key.pk, cls.minted_b.key.pk)
        rows = [
            dict(org=cls.org_a, team=cls.team_a, key_id=key_a, feature="summarize",
                 endpoint="/summary", end_user="alice", model="gpt-4o", provider="sim",
                 input_cost="0.001000000001", output_cost="0.000234500000"),
            dict(org=cls.org_a, team=cls.team_a, key_id=key_a, feature="summarize",
                 endpoint="/summary", end_user="bob", model="gpt-4o-mini", provider="sim",
                 started_at=t + timedelta(hours=1)),
            dict(org=cls.org_a, team=cls.team_a, key_id=key_a, feature="chat", endpoint="/chat",
                 model="gpt-4o-mini", provider="sim", status="error", output_cost="0",
                 started_at=t + timedelta(days=1)),
            dict(org=cls.org_a, team=cls.team_a2, key_id=key_a2, feature="ads-copy",
                 model="claude-sonnet", provider="sim-claude", input_cost="0.003"),
            dict(org=cls.org_a, team=cls.team_a2, key_id=key_a2, feature="ads-copy",
                 model="claude-sonnet", provider="sim-claude", shadow=True, input_cost="0.5"),
            dict(org=cls.org_a, model="gpt-4o-mini"),  # no team: org-level spend
            dict(org=cls.org_b, team=cls.team_b, key_id=key_b, feature="summarize",
                 model="gpt-4o", provider="sim", input_cost="7"),
            # outside the window
            dict(org=cls.org_a, team=cls.team_a, feature="summarize", model="gpt-4o",
                 started_at=utc(2026, 4, 1, 0, 0, 1), input_cost="100"),
        ]  # fmt: skip
        for row in rows:
            row.setdefault("started_at", t)
            event(**row)
        usage_rollup()

    # --- helpers ------------------------------------------------------------------------
    def spend(self, user, **params) -> dict:
        response = self.get(user, "/spend/", **{**WINDOW, **params})
        self.assertEqual(response.status_code, 200, response.content)
        return response.json()

    def ledger_total(self, **filters) -> Decimal:
        return UsageEvent.objects.filter(
            started_at__gte=utc(2026, 3, 1), started_at__lt=utc(2026, 4, 1), shadow=False, **filters
        ).aggregate(s=Sum("cost"))["s"] or Decimal(0)

    @staticmethod
    def total(rows) -> Decimal:
        return sum((Decimal(r["cost"]) for r in rows), Decimal(0))

    # --- shape --------------------------------------------------------------------------
    def test_rows_carry_slugs_counts_and_fixed_point_costs(self):
        body = self.spend(self.admin_a, group_by="team,feature")
        self.assertEqual(body["start"], "2026-03-01")
        self.assertEqual(body["end"], "2026-03-31")
        self.assertEqual(body["group_by"], ["team", "feature"])
        row = next(r for r in body["rows"] if (r["team"], r["feature"]) == ("search", "summarize"))
        self.assertEqual(row["org"], "acme")
        self.assertEqual((row["requests"], row["attempts"]), (2, 2))
        self.assertEqual((row["prompt_tokens"], row["completion_tokens"]), (200, 40))
        self.assertEqual(row["cost"], "0.001261500001")
        self.assertRegex(row["cost"], r"^\d+\.\d{12}$")
        for r in body["rows"]:
            for name in ("cost", "input_cost", "output_cost", "evaluation_cost", "failed_cost"):
                self.assertNotIn("e", r[name].lower())

    def test_every_group_by_dimension_sums_to_the_ledger(self):
        expected = self.ledger_total(org_id=self.org_a.pk)
        distinct = {
            "org": {"acme"},
            "team": {"search", "ads", None},
            "feature": {"summarize", "chat", "ads-copy", None},
            "endpoint": {"/summary", "/chat", None},
            "key": {"search-svc", "ads-svc", None},
            "user": {"alice", "bob", None},
            "model": {"gpt-4o", "gpt-4o-mini", "claude-sonnet"},
            "provider": {"sim", "sim-claude"},
            "day": {"2026-03-10", "2026-03-11"},
            "hour": {"2026-03-10T09:00:00Z", "2026-03-10T10:00:00Z", "2026-03-11T09:00:00Z"},
        }
        self.assertEqual(set(distinct), set(DIMENSIONS))
        for dim in DIMENSIONS:
            with self.subTest(group_by=dim):
                rows = self.spend(self.admin_a, group_by=dim)["rows"]
                self.assertEqual({r[dim] for r in rows}, distinct[dim])
                self.assertTrue(all(r["org"] == "acme" for r in rows))
                self.assertEqual(self.total(rows), expected)

    def test_combined_dimensions_and_key_ids(self):
        rows = self.spend(self.admin_a, group_by="team,key,model,day")["rows"]
        self.assertEqual(self.total(rows), self.ledger_total(org_id=self.org_a.pk))
        search = [r for r in rows if r["team"] == "search"]
        self.assertTrue(all(r["key_id"] == self.minted_a.key.pk for r in search))
        self.assertEqual([r["day"] for r in rows], sorted(r["day"] for r in rows))

    def test_failures_latency_and_evaluation_are_reported_apart(self):
        rows = {r["feature"]: r for r in self.spend(self.admin_a, group_by="feature")["rows"]}
        self.assertEqual((rows["chat"]["failures"], rows["chat"]["successes"]), (1, 0))
        self.assertEqual(rows["chat"]["failed_cost"], rows["chat"]["cost"])
        self.assertEqual(rows["summarize"]["latency_ms_avg"], 120.0)
        self.assertIsNotNone(rows["summarize"]["latency_ms_p95"])
        ads = rows["ads-copy"]
        self.assertEqual(ads["evaluation_cost"], "0.500012000000")
        self.assertEqual(ads["cost"], "0.003012000000")
        with_eval = {
            r["feature"]: r
            for r in self.spend(self.admin_a, group_by="feature", include_evaluation=1)["rows"]
        }
        self.assertEqual(with_eval["ads-copy"]["cost"], "0.503024000000")
        self.assertEqual(with_eval["ads-copy"]["requests"], 1)

    # --- scoping ------------------------------------------------------------------------
    def test_lead_sees_only_its_own_teams(self):
        rows = self.spend(self.lead_a, group_by="team")["rows"]
        self.assertEqual({r["team"] for r in rows}, {"search"})
        self.assertEqual(self.total(rows), self.ledger_total(team_id=self.team_a.pk))
        rows = self.spend(self.lead_a2, group_by="feature")["rows"]
        self.assertEqual({r["feature"] for r in rows}, {"ads-copy"})
        # naming another team or org answers nothing rather than an error
        self.assertEqual(self.spend(self.lead_a, team="ads")["rows"], [])
        self.assertEqual(self.spend(self.lead_a, org="globex")["rows"], [])

    def test_member_reads_its_team_like_a_lead(self):
        rows = self.spend(self.member_a, group_by="team")["rows"]
        self.assertEqual({r["team"] for r in rows}, {"search"})

    def test_finance_and_admin_see_their_whole_org_only(self):
        for user in (self.finance_a, self.admin_a):
            rows = self.spend(user, group_by="org")["rows"]
            self.assertEqual([r["org"] for r in rows], ["acme"])
            self.assertEqual(self.total(rows), self.ledger_total(org_id=self.org_a.pk))
        rows = self.spend(self.admin_b, group_by="team")["rows"]
        self.assertEqual([(r["org"], r["team"]) for r in rows], [("globex", "search")])
        self.assertEqual(rows[0]["cost"], "7.000012000000")

    def test_outsider_sees_nothing_and_anonymous_is_refused(self):
        self.assertEqual(self.spend(self.outsider, group_by="team")["rows"], [])
        response = APIClient().get("/api/v1/spend/", WINDOW)
        self.assertIn(response.status_code, (401, 403))

    def test_superuser_sees_every_org_through_the_same_selector(self):
        rows = self.spend(self.superuser, group_by="org")["rows"]
        self.assertEqual({r["org"] for r in rows}, {"acme", "globex"})
        rows = self.spend(self.superuser, group_by="org", org="globex")["rows"]
        self.assertEqual({r["org"] for r in rows}, {"globex"})

    # --- dates --------------------------------------------------------------------------
    def test_dates_are_inclusive_local_days_of_the_org(self):
        mumbai = f.make_org("mumbai", timezone="Asia/Kolkata")
        team = f.make_team(mumbai, "core")
        f.make_member(self.finance_a, mumbai, "finance")
        # 2026-03-31 23:30 local (18:00 UTC) is in; 2026-04-01 00:10 local is out
        event(org=mumbai, team=team, started_at=utc(2026, 3, 31, 18, 0), input_cost="1")
        event(org=mumbai, team=team, started_at=utc(2026, 3, 31, 18, 40), input_cost="2")
        event(org=mumbai, team=team, started_at=utc(2026, 2, 28, 18, 29), input_cost="4")
        usage_rollup()
        rows = self.spend(self.finance_a, group_by="day", org="mumbai")["rows"]
        self.assertEqual([(r["day"], r["cost"][:4]) for r in rows], [("2026-03-31", "1.00")])
        rows = self.spend(
            self.finance_a, group_by="day", org="mumbai", start="2026-04-01", end="2026-04-01"
        )["rows"]
        self.assertEqual([r["day"] for r in rows], ["2026-04-01"])

    def test_bad_parameters_are_400(self):
        for params in (
            {"group_by": "team,color"},
            {"start": "2026-03-10", "end": "2026-03-01"},
            {"start": "yesterday"},
            {"start": "2020-01-01", "end": "2026-01-01"},
            {"group_by": "hour", "start": "2026-01-01", "end": "2026-12-31"},
        ):
            with self.subTest(params=params):
                response = self.get(self.admin_a, "/spend/", **params)
                self.assertEqual(response.status_code, 400, response.content)

    def test_defaults_to_this_month(self):
        body = self.get(self.admin_a, "/spend/").json()
        self.assertTrue(body["start"].endswith("-01"))
        self.assertEqual(body["group_by"], [])
