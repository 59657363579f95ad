"""The dashboards' figures where they used to mislead: a forecast from too little history says so
(no band of zero width), a budget of another period is drawn prorated to the month and labelled
so, and every team is on the overview, spend or not."""

from __future__ import annotations

from decimal import Decimal

from django.test import override_settings
from django.test.client import Client

from finops.money import money
from reports.models import RollupState
from reports.pages.dashboard_data import org_overview, team_page
from reports.pages.dashboard_tables import overview_tables, team_tables
from reports.ranges import date_range_from_params
from reports.services import usage_rollup
from tests import factories as f
from tests.base import TwoOrgsTestCase
from tests.reports.ledger import event, utc

NOW = utc(2026, 3, 2, 12, 0)  # one complete day (March 1) in the month


@override_settings(PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"])
class DashboardFigureTests(TwoOrgsTestCase):
    @classmethod
    def setUpTestData(cls):
        super().setUpTestData()
        RollupState.objects.all().delete()
        event(org=cls.org_a, team=cls.team_a, input_cost="2", output_cost="0",
              started_at=utc(2026, 3, 1, 15, 0))  # fmt: skip
        usage_rollup()
        cls.quarterly = f.make_budget(cls.org_a, scope="org", period="quarter", limit="5000")
        cls.idle = f.make_team(cls.org_a, "idle")  # no call at all

    def rng(self):
        return date_range_from_params({"range": "mtd"}, tz=self.org_a.tz, now=NOW)

    def test_one_complete_day_is_not_enough_history_for_a_forecast(self):
        data = org_overview(self.finance_a, self.org_a, self.rng(), now=NOW)
        month = data["month"]
        self.assertIsNone(month["forecast"])
        self.assertIsNone(month["projection"])
        self.assertIn("not enough history", month["forecast_note"])
        self.assertIn("1 complete day", month["forecast_note"])

    def test_the_team_page_budget_says_not_enough_history_too(self):
        budget = f.make_budget(self.org_a, scope="team", team=self.team_a, limit="10")
        data = team_page(self.lead_a, self.team_a, self.rng(), now=NOW)
        burn = next(b for b in data["budgets"] if b["id"] == budget.pk)
        self.assertIsNone(burn["forecast"])
        self.assertTrue(burn["forecast_note"].startswith("not enough history"))
        table = {t.name: t for t in team_tables(data)}["budgets"]
        [row] = [r for r in table.rows if r["budget"] == burn["label"]]
        self.assertTrue(row["forecast"].startswith("not enough history"))
        self.assertIsNone(row["band_low"])
        [cells] = [c for c, r in zip(table.cells(), table.rows, strict=True) if r is row]
        shown = dict(zip([c.key for c in table.columns], cells, strict=True))
        self.assertTrue(shown["forecast"][0].startswith("not enough history"))  # text as is

    def test_a_quarterly_budget_is_drawn_prorated_on_the_month(self):
        data = org_overview(self.finance_a, self.org_a, self.rng(), now=NOW)
        month = data["month"]
        [line] = month["budget_lines"]
        # March has 31 of the first quarter's 90 days
        self.assertEqual(line["limit"], money(Decimal(5000) * 31 / 90))
        self.assertTrue(line["prorated"])
        self.assertIn("prorated from the quarterly budget", line["label"])
        self.assertEqual(line["note"], "$1,722.22 prorated from the quarterly budget "
                                       "($5,000.00 over 90 days)")  # fmt: skip
        self.assertNotIn("no monthly budget", month["label"])
        self.assertIn("prorated from the quarterly budget", month["label"])

    def test_the_overview_page_says_so(self):
        client = Client()
        client.force_login(self.finance_a)
        html = client.get(f"/reports/orgs/{self.org_a.pk}/", {"range": "mtd"}).content.decode()
        self.assertIn("prorated from the quarterly budget", html)

    def test_a_monthly_budget_is_drawn_as_it_is(self):
        monthly = f.make_budget(self.org_a, scope="org", period="month", limit="1000")
        extra = f.make_budget(self.org_a, scope="org", period="month", limit="800")
        data = org_overview(self.finance_a, self.org_a, self.rng(), now=NOW)
        self.assertEqual(data["month"]["id"], monthly.pk)
        lines = {line["id"]: line for line in data["month"]["budget_lines"]}
        self.assertEqual(set(lines), {extra.pk, self.quarterly.pk})
        self.assertEqual((lines[extra.pk]["limit"], lines[extra.pk]["prorated"]),
                         ("800.000000000000", False))  # fmt: skip

    def test_every_team_is_on_the_overview_spend_or_not(self):
        data = org_overview(self.admin_a, self.org_a, self.rng(), now=NOW)
        teams = {t["name"]: t for t in data["teams"]}
        self.assertEqual(set(teams), {"search", "ads", "idle"})
        self.assertEqual(teams["idle"]["cost"], "0.000000000000")
        self.assertEqual(teams["idle"]["requests"], 0)
        self.assertEqual(data["teams"][0]["name"], "search")  # most expensive first
        table = {t.name: t for t in overview_tables(data)}["teams"]
        self.assertIn("idle", [str(r["team"]) for r in table.rows])
        # a lead sees no more teams than before: only their own
        lead = org_overview(self.lead_a, self.org_a, self.rng(), now=NOW)
        self.assertNotIn("idle", {t["name"] for t in lead["teams"]})

    def test_no_spend_at_all_is_not_a_forecast_of_zero(self):
        now = utc(2026, 4, 4, 12, 0)  # April: three complete days, no spend in them
        rng = date_range_from_params({"range": "mtd"}, tz=self.org_a.tz, now=now)
        data = org_overview(self.finance_a, self.org_a, rng, now=now)
        self.assertIsNone(data["month"]["forecast"])
        self.assertIn("no spend", data["month"]["forecast_note"])
