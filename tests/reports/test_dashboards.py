"""Dashboards: the organisation overview and the team page, their JSON and CSV; who may open
them (404 for everyone else), numbers equal to the spend API, date-range presets, budget burn
with its forecast, anomalies, tables readable without JavaScript."""

from __future__ import annotations

import csv
import io
import zoneinfo
from datetime import date, timedelta
from decimal import Decimal

from django.test import override_settings
from django.test.client import Client

from finops.money import usd_display
from reports.models import AlertKind, BudgetAlert, RollupState
from reports.pages.dashboard_data import org_overview, team_page
from reports.ranges import RangeError, date_range_from_params
from reports.services import usage_rollup
from tests import factories as f
from tests.base import TwoOrgsTestCase
from tests.reports.ledger import event, utc

MARCH = {"start": "2026-03-01", "end": "2026-03-31"}
NOW = utc(2026, 3, 20, 12, 0)  # a Friday


@override_settings(PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"])
class DashboardTestCase(TwoOrgsTestCase):
    @classmethod
    def setUpTestData(cls):
        super().setUpTestData()
        RollupState.objects.all().delete()
        t = utc(2026, 3, 10, 9, 0)
        key_a, key_a2, key_b = cls.minted_a.key.pk, cls.minted_a2.key.pk, cls.minted_b.key.pk
        rows = [
            dict(team=cls.team_a, key_id=key_a, feature="summarize", endpoint="/summary",
                 model="gpt-4o", input_cost="0.001000000001", output_cost="0.000234500000",
                 latency_ms=80),
            dict(team=cls.team_a, key_id=key_a, feature="summarize", endpoint="/summary",
                 model="gpt-4o-mini", started_at=t + timedelta(hours=1), latency_ms=400),
            # a failed first attempt, then its retry on another model: one request
            dict(team=cls.team_a, key_id=key_a, feature="chat", endpoint="/chat",
                 model="gpt-4o-mini", status="error", output_cost="0", request_id="r-retry",
                 started_at=t + timedelta(days=1)),
            dict(team=cls.team_a, key_id=key_a, feature="chat", endpoint="/chat",
                 model="gpt-4o", attempt=2, request_id="r-retry", latency_ms=900,
                 started_at=t + timedelta(days=1, seconds=2)),
            dict(team=cls.team_a2, key_id=key_a2, feature="ads-copy", model="claude-sonnet",
                 provider="sim-claude", input_cost="0.003"),
            dict(team=cls.team_a2, key_id=key_a2, feature="ads-copy", model="claude-sonnet",
                 shadow=True, input_cost="0.5"),
            dict(model="gpt-4o-mini"),  # org-level spend, no team
            dict(org=cls.org_b, team=cls.team_b, key_id=key_b, feature="summarize",
                 model="gpt-4o", input_cost="7"),
            # outside March
            dict(team=cls.team_a, feature="summarize", model="gpt-4o",
                 started_at=utc(2026, 4, 1, 0, 0, 1), input_cost="100"),
        ]  # fmt: skip
        for row in rows:
            row.setdefault("org", cls.org_a)
            row.setdefault("started_at", t)
            event(**row)
        usage_rollup()
        cls.overview = f"/reports/orgs/{cls.org_a.pk}/"
        cls.team_page = f"/reports/teams/{cls.team_a.pk}/"

    def client_for(self, user) -> Client:
        client = Client()
        client.force_login(user)
        return client

    def get(self, user, path: str, **params):
        return self.client_for(user).get(path, {**MARCH, **params})

    def csv_rows(self, user, path: str, table: str) -> list[dict]:
        response = self.get(user, path, format="csv", table=table)
        self.assertEqual(response.status_code, 200, response.content[:300])
        return list(csv.DictReader(io.StringIO(response.content.decode())))

    def api(self, user, **params) -> list[dict]:
        response = self.client_for(user).get("/api/v1/spend/", {**MARCH, **params})
        self.assertEqual(response.status_code, 200, response.content)
        return response.json()["rows"]


class AccessTests(DashboardTestCase):
    def test_overview_opens_for_admin_finance_and_superuser(self):
        for user in (self.admin_a, self.finance_a, self.superuser):
            for suffix in ("", "data.json"):
                response = self.get(user, self.overview + suffix)
                self.assertEqual(response.status_code, 200, (user, suffix))
            self.assertEqual(
                self.get(user, self.overview, format="csv", table="teams").status_code, 200
            )

    def test_overview_is_a_404_for_team_roles_and_other_orgs(self):
        for user in (self.lead_a, self.member_a, self.lead_a2, self.admin_b, self.lead_b,
                     self.outsider):  # fmt: skip
            for params in ({}, {"format": "csv", "table": "teams"}):
                self.assertEqual(self.get(user, self.overview, **params).status_code, 404, user)
            self.assertEqual(self.get(user, self.overview + "data.json").status_code, 404, user)

    def test_team_page_opens_for_its_lead_member_and_whole_org_readers(self):
        for user in (self.lead_a, self.member_a, self.admin_a, self.finance_a, self.superuser):
            for suffix in ("", "data.json"):
                self.assertEqual(self.get(user, self.team_page + suffix).status_code, 200, user)
            self.assertEqual(
                self.get(user, self.team_page, format="csv", table="features").status_code, 200
            )

    def test_team_page_is_a_404_for_another_teams_lead_and_other_orgs(self):
        for user in (self.lead_a2, self.admin_b, self.lead_b, self.outsider):
            for params in ({}, {"format": "csv", "table": "features"}):
                self.assertEqual(self.get(user, self.team_page, **params).status_code, 404, user)
            self.assertEqual(self.get(user, self.team_page + "data.json").status_code, 404, user)
        # and the other org's team is a 404 for this org's admin
        other = f"/reports/teams/{self.team_b.pk}/"
        self.assertEqual(self.get(self.admin_a, other).status_code, 404)
        self.assertEqual(self.get(self.admin_a, other + "data.json").status_code, 404)

    def test_anonymous_is_sent_to_login(self):
        response = Client().get(self.overview + "data.json")
        self.assertEqual(response.status_code, 302)
        self.assertIn("/accounts/login/", response["Location"])

    def test_lead_json_holds_only_its_own_teams_rows(self):
        body = self.get(self.lead_a, self.team_page + "data.json").json()
        names = {r["name"] for r in body["breakdown"]["feature"]}
        self.assertEqual(names, {"summarize", "chat"})  # never ads-copy (team_a2)
        self.assertNotIn("ads-copy", self.get(self.lead_a, self.team_page).content.decode())

    def test_spend_link_goes_to_the_overview_or_the_first_team(self):
        response = self.client_for(self.admin_a).get("/reports/")
        self.assertRedirects(response, self.overview, fetch_redirect_response=False)
        response = self.client_for(self.lead_a).get("/reports/")
        self.assertRedirects(response, self.team_page, fetch_redirect_response=False)
        response = self.client_for(self.outsider).get("/reports/")
        self.assertRedirects(response, "/", fetch_redirect_response=False)

    def test_home_and_nav_link_to_the_dashboards(self):
        page = self.client_for(self.admin_a).get("/").content.decode()
        self.assertIn(f'href="{self.overview}"', page)
        self.assertIn(f'href="/reports/teams/{self.team_a2.pk}/"', page)
        self.assertIn('href="/reports/">Spend</a>', page)
        page = self.client_for(self.lead_a).get("/").content.decode()
        self.assertNotIn(f'href="{self.overview}"', page)
        self.assertIn(f'href="{self.team_page}"', page)
        self.assertNotIn(f'href="/reports/teams/{self.team_a2.pk}/"', page)


class NumbersTests(DashboardTestCase):
    def test_overview_team_table_equals_the_spend_api(self):
        # The CSV keeps the ledger's full precision: the API's strings, exactly.
        api = {r["team"]: r["cost"] for r in self.api(self.admin_a, group_by="team")}
        rows = self.csv_rows(self.admin_a, self.overview, "teams")
        table = {r["Team"]: r["Cost (USD)"] for r in rows}
        self.assertEqual(table, {(k or "(no team)"): v for k, v in api.items()})
        self.assertNotIn("globex", str(table))

    def test_overview_tops_equal_the_spend_api(self):
        cases = (("model", "models", "Model"), ("endpoint", "endpoints", "Endpoint"))
        for dim, table, label in cases:
            rows = self.api(self.admin_a, group_by=dim)
            api = {r[dim] or "(none)": r["cost"] for r in rows}
            rows = self.csv_rows(self.admin_a, self.overview, table)
            self.assertEqual({r[label]: r["Cost (USD)"] for r in rows}, api)

    def test_team_tables_equal_the_spend_api_for_its_lead(self):
        for dim, table, label in (("feature", "features", "Feature"), ("model", "models", "Model"),
                                  ("key", "keys", "Key")):  # fmt: skip
            api = {r[dim]: r for r in self.api(self.lead_a, group_by=dim, team="search")}
            rows = self.csv_rows(self.lead_a, self.team_page, table)
            self.assertEqual(len(rows), len(api))
            for row in rows:
                self.assertEqual(row["Cost (USD)"], api[row[label]]["cost"])
                self.assertEqual(int(row["Requests"]), api[row[label]]["requests"])
                self.assertEqual(int(row["Attempts"]), api[row[label]]["attempts"])

    def test_json_money_is_fixed_point_strings_and_totals_equal_the_api(self):
        body = self.get(self.admin_a, self.overview + "data.json").json()
        total = sum(
            (Decimal(r["cost"]) for r in self.api(self.admin_a, group_by="org")), Decimal(0)
        )
        self.assertEqual(body["totals"]["cost"], format(total.quantize(Decimal("1e-12")), "f"))
        self.assertIsInstance(body["totals"]["cost"], str)
        self.assertRegex(body["teams"][0]["cost"], r"^\d+\.\d{12}$")
        self.assertEqual(body["range"], {**body["range"], "preset": "custom", **MARCH})
        team = self.get(self.lead_a, self.team_page + "data.json").json()
        api = self.api(self.lead_a, group_by="team", team="search")[0]
        self.assertEqual(team["totals"]["cost"], api["cost"])
        self.assertEqual(team["totals"]["latency_ms_p50"], api["latency_ms_p50"])
        self.assertEqual(team["totals"]["latency_ms_p95"], api["latency_ms_p95"])

    def test_retry_overhead_cost_per_success_against_per_call(self):
        body = self.get(self.lead_a, self.team_page + "data.json").json()
        totals = body["totals"]
        self.assertEqual((totals["requests"], totals["attempts"], totals["retries"]), (3, 4, 1))
        self.assertEqual((totals["successes"], totals["failures"]), (3, 1))
        cost = Decimal(totals["cost"])
        self.assertEqual(Decimal(totals["cost_per_call"]), (cost / 4).quantize(Decimal("1e-12")))
        self.assertEqual(Decimal(totals["cost_per_success"]), (cost / 3).quantize(Decimal("1e-12")))
        self.assertEqual(totals["failed_cost"], "0.000015000000")
        overhead = {r["Model"]: r for r in self.csv_rows(self.lead_a, self.team_page, "overhead")}
        self.assertEqual(overhead["gpt-4o-mini"]["Failures"], "1")
        self.assertEqual(overhead["gpt-4o-mini"]["Failed cost (USD)"], "0.000015000000")

    def test_latency_by_model_from_the_histograms(self):
        body = self.get(self.lead_a, self.team_page + "data.json").json()
        models = {m["name"]: m for m in body["models"]}
        api = {r["model"]: r for r in self.api(self.lead_a, group_by="model", team="search")}
        for name, row in models.items():
            self.assertEqual(row["latency_ms_p50"], api[name]["latency_ms_p50"])
            self.assertEqual(row["latency_ms_p95"], api[name]["latency_ms_p95"])
        latency = {r["Model"]: r for r in self.csv_rows(self.lead_a, self.team_page, "latency")}
        self.assertEqual(latency["gpt-4o"]["p50 (ms)"], str(api["gpt-4o"]["latency_ms_p50"]))

    def test_daily_by_team_series_cover_every_day_of_the_range(self):
        body = self.get(self.admin_a, self.overview + "data.json").json()
        self.assertEqual(len(body["daily"]["days"]), 31)
        search = next(s for s in body["daily"]["series"] if s["name"] == "search")
        self.assertEqual(search["url"], f"{self.team_page}?start=2026-03-01&end=2026-03-31")
        self.assertEqual(len(search["values"]), 31)
        api = {
            r["day"]: r["cost"] for r in self.api(self.admin_a, group_by="team,day", team="search")
        }
        for day, value in zip(body["daily"]["days"], search["values"], strict=True):
            self.assertEqual(value, api.get(day, "0.000000000000"))


class PageTests(DashboardTestCase):
    def test_tables_are_in_the_html_without_javascript(self):
        html = self.get(self.admin_a, self.overview).content.decode()
        for name in ("summary", "budgets", "teams", "daily", "features", "endpoints", "models",
                     "keys", "anomalies"):  # fmt: skip
            self.assertIn(f'data-table="{name}"', html)
            self.assertIn(f"table={name}", html)  # its CSV link
        search = next(r for r in self.api(self.admin_a, group_by="team") if r["team"] == "search")
        # On the page in the house format (the CSV has the full precision).
        self.assertIn(f'<td class="num">{usd_display(search["cost"])}</td>', html)
        self.assertIn(
            f'<a href="{self.team_page}?start=2026-03-01&amp;end=2026-03-31">search</a>', html
        )
        self.assertIn("/static/vendor/plotly/plotly.min.js", html)
        self.assertIn("/static/js/dashboards.js", html)
        self.assertIn(f'data-url="{self.overview}data.json?', html)
        html = self.get(self.lead_a, self.team_page).content.decode()
        for name in ("budgets", "features", "endpoints", "models", "keys", "daily", "overhead",
                     "latency", "alerts"):  # fmt: skip
            self.assertIn(f'data-table="{name}"', html)
        self.assertIn("summarize", html)

    def test_csv_download(self):
        response = self.get(self.admin_a, self.overview, format="csv", table="teams")
        self.assertEqual(response["Content-Type"], "text/csv; charset=utf-8")
        self.assertIn("attachment;", response["Content-Disposition"])
        self.assertIn(
            "acme-overview-2026-03-01-2026-03-31-teams.csv", response["Content-Disposition"]
        )
        header = response.content.decode().splitlines()[0]
        self.assertTrue(header.startswith("Team,Requests,Attempts,Retries"))
        self.assertNotIn("<a", response.content.decode())  # links are plain text in CSV
        self.assertEqual(
            self.get(self.admin_a, self.overview, format="csv", table="nope").status_code, 404
        )
        daily = self.csv_rows(self.lead_a, self.team_page, "daily")
        self.assertEqual(len(daily), 31)

    def test_bad_range_is_explained_on_the_page_and_refused_by_json(self):
        response = self.get(self.admin_a, self.overview, start="2026-03-31", end="2026-03-01")
        self.assertEqual(response.status_code, 200)
        self.assertContains(response, "start must not be after end")
        response = self.get(self.admin_a, self.overview + "data.json", range="fortnight")
        self.assertEqual(response.status_code, 400)
        self.assertIn("unknown range", response.json()["error"])

    def test_preset_links_and_a_preset_range_on_the_page(self):
        client = self.client_for(self.admin_a)
        html = client.get(self.overview, {"range": "7d"}).content.decode()
        for preset in ("7d", "30d", "mtd", "last_month", "qtd"):
            self.assertIn(f'href="?range={preset}"', html)
        self.assertIn('class="active" aria-current="true">Last 7 days', html)
        body = client.get(self.overview + "data.json", {"range": "7d"}).json()
        start, end = (
            date.fromisoformat(body["range"]["start"]),
            date.fromisoformat(body["range"]["end"]),
        )
        self.assertEqual((end - start).days, 6)
        self.assertEqual(body["range"]["end"], body["range"]["today"])


class RangeTests(DashboardTestCase):
    def test_presets_in_the_orgs_timezone(self):
        tokyo = zoneinfo.ZoneInfo("Asia/Tokyo")
        now = utc(2026, 4, 30, 20, 0)  # already 1 May in Tokyo
        cases = {
            "7d": (date(2026, 4, 25), date(2026, 5, 1)),
            "30d": (date(2026, 4, 2), date(2026, 5, 1)),
            "mtd": (date(2026, 5, 1), date(2026, 5, 1)),
            "last_month": (date(2026, 4, 1), date(2026, 4, 30)),
            "qtd": (date(2026, 4, 1), date(2026, 5, 1)),
        }
        for preset, (start, end) in cases.items():
            rng = date_range_from_params({"range": preset}, tz=tokyo, now=now)
            self.assertEqual((rng.start, rng.end), (start, end), preset)
        utc_rng = date_range_from_params({"range": "mtd"}, tz=zoneinfo.ZoneInfo("UTC"), now=now)
        self.assertEqual((utc_rng.start, utc_rng.end), (date(2026, 4, 1), date(2026, 4, 30)))
        default = date_range_from_params({}, tz=tokyo, now=now)
        self.assertEqual(default.preset, "mtd")
        rng = date_range_from_params(
            {"start": "2026-01-01", "end": "2026-01-31"}, tz=tokyo, now=now
        )
        self.assertEqual(
            (rng.preset, rng.start, rng.end), ("custom", date(2026, 1, 1), date(2026, 1, 31))
        )
        for bad in ({"start": "x"}, {"start": "2026-02-01", "end": "2026-01-01"},
                    {"start": "2024-01-01", "end": "2026-01-01"}, {"range": "1y"}):  # fmt: skip
            with self.assertRaises(RangeError):
                date_range_from_params(bad, tz=tokyo, now=now)


class BurnAndAnomalyTests(DashboardTestCase):
    """Budget burn-down with its forecast, and anomalies, at a fixed ``NOW``."""

    @classmethod
    def setUpTestData(cls):
        super().setUpTestData()
        # 0.50 USD a day for team "ads" over the 20 days before NOW, then 6 USD on NOW's day
        for days_ago in range(1, 21):
            event(org=cls.org_a, team=cls.team_a2, feature="ads-copy", input_cost="0.5",
                  output_cost="0", started_at=NOW - timedelta(days=days_ago))  # fmt: skip
        event(org=cls.org_a, team=cls.team_a2, feature="ads-copy", input_cost="6",
              output_cost="0", started_at=NOW - timedelta(hours=1))  # fmt: skip
        usage_rollup()
        cls.team_budget = f.make_budget(cls.org_a, scope="team", team=cls.team_a2, limit="20")
        cls.org_budget = f.make_budget(cls.org_a, scope="org", limit="50")
        cls.other_team_budget = f.make_budget(cls.org_a, scope="team", team=cls.team_a, limit="9")
        cls.alert = BudgetAlert.objects.create(
            org=cls.org_a, team=cls.team_a2, kind=AlertKind.ANOMALY, dedupe_key="anomaly:test",
            scope_label="team ads", subject="Unusual spend: team ads",
            window_start=utc(2026, 3, 20), window_end=utc(2026, 3, 21),
            spent_usd=Decimal("6"), baseline_usd=Decimal("0.5"),
        )  # fmt: skip

    def rng(self, **params):
        return date_range_from_params(params or {"range": "mtd"}, tz=self.org_a.tz, now=NOW)

    def test_team_budget_burn_down_with_forecast_and_band(self):
        data = team_page(self.lead_a2, self.team_a2, self.rng(), now=NOW)
        self.assertEqual([b["id"] for b in data["budgets"]], [self.team_budget.pk])
        burn = data["budgets"][0]
        # 0.50 a day on March 1..19, 6 on the 20th, 0.003012 on the 10th
        self.assertEqual(burn["spent"], "15.503012000000")
        self.assertEqual(
            burn["window"], {**burn["window"], "start": "2026-03-01", "end": "2026-03-31"}
        )
        forecast = burn["forecast"]
        self.assertIn("weekday and weekend run rates", forecast["method"])
        projected, low, high = (Decimal(forecast[k]) for k in ("projected", "low", "high"))
        self.assertGreater(projected, Decimal("16"))
        self.assertLessEqual(low, projected)
        self.assertGreaterEqual(high, projected)
        self.assertEqual(burn["projection"]["y"][-1], forecast["projected"])
        self.assertEqual(burn["projection"]["x"][-1], "2026-04-01T00:00")
        self.assertIsNotNone(forecast["exhausts_on"])  # 15.5 spent, ~0.5+/day for 11 days > 20
        self.assertEqual(burn["actual"]["y"][-1], burn["spent"])

    def test_the_forecast_is_the_alerting_jobs(self):
        from reports.forecast import budget_forecast, budget_spent

        data = team_page(self.lead_a2, self.team_a2, self.rng(), now=NOW)
        spend = budget_spent(self.team_budget, at=NOW)
        expected = budget_forecast(self.team_budget, spend, now=NOW)
        self.assertEqual(
            Decimal(data["budgets"][0]["forecast"]["projected"]),
            expected.projected.quantize(Decimal("1e-12")),
        )

    def test_overview_month_forecast_and_org_budgets(self):
        data = org_overview(self.finance_a, self.org_a, self.rng(), now=NOW)
        self.assertEqual([b["id"] for b in data["budgets"]], [self.org_budget.pk])
        self.assertEqual(data["month"]["id"], self.org_budget.pk)
        self.assertEqual(data["month"]["limit"], "50.000000000000")
        self.assertIsNotNone(data["month"]["forecast"])

    def test_anomalies_from_the_robust_z_score_and_alerts(self):
        data = org_overview(self.admin_a, self.org_a, self.rng(), now=NOW)
        flagged = [a for a in data["anomalies"] if a["team"] == "ads"]
        self.assertEqual(len(flagged), 1)
        self.assertEqual(flagged[0]["day"], "2026-03-20")
        self.assertEqual(flagged[0]["spent"], "6.000000000000")
        self.assertEqual(flagged[0]["baseline"], "0.500000000000")
        self.assertEqual(flagged[0]["alert_url"], f"/reports/alerts/{self.alert.pk}/")

    def test_team_page_lists_its_alerts_only(self):
        data = team_page(self.lead_a2, self.team_a2, self.rng(), now=NOW)
        self.assertEqual([a["id"] for a in data["alerts"]], [self.alert.pk])
        self.assertEqual(data["alerts"][0]["url"], f"/reports/alerts/{self.alert.pk}/")
        self.assertEqual(team_page(self.lead_a, self.team_a, self.rng(), now=NOW)["alerts"], [])

    def test_without_a_week_of_history_the_forecast_is_linear(self):
        budget = f.make_budget(self.org_a, scope="team", team=self.team_a, period="week", limit="1")
        now = utc(2026, 3, 14, 12, 0)  # team "search" spends from March 10: four days
        data = team_page(self.lead_a, self.team_a, self.rng(), now=now)
        burn = next(b for b in data["budgets"] if b["id"] == budget.pk)
        self.assertEqual(burn["window"]["start"], "2026-03-09")  # ISO week from Monday
        self.assertIn(
            "linear run rate over the window's 5 complete days", burn["forecast"]["method"]
        )
        rate = Decimal(burn["spent"]) / 5  # nothing spent on the 14th
        self.assertEqual(
            Decimal(burn["forecast"]["projected"]),
            (Decimal(burn["spent"]) + rate / 2 + rate).quantize(Decimal("1e-12")),
        )
