"""Monthly chargeback statement per team (``/reports/teams/<id>/statements/<YYYY-MM>/``): the
numbers in the org's timezone, breakdowns, budgets, evaluation apart, CSV downloads equal to the
page, scoping (404 for another team or org), and the chargeback email linking to it."""

from __future__ import annotations

import csv
import io
from decimal import Decimal

from django.core import mail
from django.test import override_settings
from django.utils.html import escape

from gateway.models import UsageEvent
from reports.models import RollupState
from reports.services import budget_alerts_evaluate, usage_rollup
from tests import factories as f
from tests.reports.ledger import event, utc
from tests.teams.api_case import APITestCase

SITE = "https://finops.example.test"


def parse(text: str) -> list[dict]:
    return list(csv.DictReader(io.StringIO(text)))


class StatementTests(APITestCase):
    @classmethod
    def setUpTestData(cls):
        super().setUpTestData()
        RollupState.objects.all().delete()
        cls.org_a.timezone = "America/New_York"
        cls.org_a.save()
        key = cls.minted_a.key
        rows = [
            dict(team=cls.team_a, key_id=key.pk, feature="summarize", endpoint="/summary",
                 model="gpt-4o", input_cost="1.250000000001", output_cost="0.5",
                 started_at=utc(2026, 3, 5, 15)),
            dict(team=cls.team_a, key_id=key.pk, feature="chat", endpoint="/chat",
                 model="gpt-4o-mini", input_cost="0.25", output_cost="0",
                 started_at=utc(2026, 3, 6, 15)),
            # 22:00 on 31 March in New York: March's statement, though April in UTC
            dict(team=cls.team_a, key_id=key.pk, feature="summarize", endpoint="/summary",
                 model="gpt-4o", input_cost="2", output_cost="0",
                 started_at=utc(2026, 4, 1, 2)),
            # 20:00 on 28 February in New York: not March
            dict(team=cls.team_a, feature="summarize", model="gpt-4o", input_cost="50",
                 started_at=utc(2026, 3, 1, 1)),
            dict(team=cls.team_a, feature="summarize", model="gpt-4o-mini", input_cost="0.75",
                 output_cost="0", shadow=True, started_at=utc(2026, 3, 10, 15)),
            dict(team=cls.team_a2, feature="ads", model="gpt-4o", input_cost="9",
                 started_at=utc(2026, 3, 10, 15)),
        ]  # fmt: skip
        for row in rows:
            event(org=cls.org_a, **row)
        event(org=cls.org_b, team=cls.team_b, input_cost="7", started_at=utc(2026, 3, 10, 15))
        usage_rollup()
        cls.budget = f.make_budget(
            org=cls.org_a, scope="team", team=cls.team_a, period="month", limit="10"
        )
        cls.daily = f.make_budget(
            org=cls.org_a, scope="feature", feature=cls.feature_a, period="day", limit="2"
        )
        cls.url = f"/reports/teams/{cls.team_a.pk}/statements/2026-03/"

    def page(self, user, url=None, **params):
        self.client.force_login(user)
        return self.client.get(url or self.url, params)

    def ledger_march(self, team) -> Decimal:
        events = UsageEvent.objects.filter(
            org_id=team.org_id,
            team_id=team.pk,
            shadow=False,
            started_at__gte=utc(2026, 3, 1, 5),  # midnight in New York (EST)
            started_at__lt=utc(2026, 4, 1, 4),  # midnight in New York (EDT)
        )
        return sum((Decimal(e.cost) for e in events), Decimal(0))

    def test_lead_reads_the_statement_of_its_team(self):
        response = self.page(self.lead_a)
        self.assertEqual(response.status_code, 200)
        statement = response.context["statement"]
        self.assertEqual(statement.total_cost, Decimal("4.000000000001"))
        self.assertEqual(statement.total_cost, self.ledger_march(self.team_a))
        self.assertEqual(statement.evaluation_cost, Decimal("0.75"))
        body = response.content.decode()
        # The page in the house format; the rows (and their CSV) keep the ledger's precision.
        self.assertIn("<strong>$4.00</strong>", body)
        self.assertIn('<td class="num">$3.75</td><td class="num">93.8%</td>', body)
        self.assertNotIn("4.000000000001", body)
        features = statement.table("features").rows
        self.assertEqual([r["name"] for r in features], ["summarize", "chat"])
        self.assertEqual(features[0]["cost"], "3.750000000001")
        self.assertEqual(features[0]["share"], "93.75")
        self.assertEqual([r["name"] for r in statement.table("keys").rows], ["search-svc"])
        self.assertEqual(
            [r["name"] for r in statement.table("endpoints").rows], ["/summary", "/chat"]
        )
        models = {r["name"]: r["cost"] for r in statement.table("models").rows}
        self.assertEqual(models, {"gpt-4o": "3.750000000001", "gpt-4o-mini": "0.250000000000"})

    def test_evaluation_spend_is_shown_apart(self):
        statement = self.page(self.lead_a).context["statement"]
        self.assertEqual(
            statement.table("evaluation").rows,
            [
                {
                    "feature": "summarize",
                    "model": "gpt-4o-mini",
                    "requests": 1,
                    "attempts": 1,
                    "cost": "0.750000000000",
                }
            ],
        )
        self.assertNotIn("gpt-4o-mini", [r["name"] for r in statement.table("features").rows])
        self.assertEqual(statement.table("summary").rows[0]["evaluation_cost"], "0.750000000000")

    def test_budgets_and_their_use(self):
        rows = self.page(self.lead_a).context["statement"].table("budgets").rows
        by_scope = {r["scope"]: r for r in rows}
        month = by_scope["team search"]
        self.assertEqual(
            (month["limit"], month["spent"], month["used"]),
            ("10.000000000000", "4.000000000001", "40.00"),
        )
        day = by_scope["feature summarize"]
        self.assertEqual((day["spent"], day["used"]), ("2.000000000000", "100.00"))
        self.assertIn("2026-03-31", day["window"])

    def test_other_team_and_other_org_are_404(self):
        self.assertEqual(self.page(self.lead_a2).status_code, 404)
        self.assertEqual(self.page(self.lead_b).status_code, 404)
        self.assertEqual(self.page(self.admin_b).status_code, 404)
        self.assertEqual(self.page(self.outsider).status_code, 404)
        other = f"/reports/teams/{self.team_a2.pk}/statements/2026-03/"
        self.assertEqual(self.page(self.lead_a, other).status_code, 404)
        self.assertEqual(self.page(self.lead_a, other, format="csv").status_code, 404)
        self.assertEqual(self.page(self.lead_b, self.url, format="csv").status_code, 404)

    def test_whole_org_readers_and_members_read_it(self):
        for user in (self.finance_a, self.admin_a, self.member_a, self.superuser):
            with self.subTest(user=user.username):
                self.assertEqual(self.page(user).status_code, 200)

    def test_anonymous_goes_to_login_and_a_bad_month_is_404(self):
        self.assertEqual(self.client.get(self.url).status_code, 302)
        bad = f"/reports/teams/{self.team_a.pk}/statements/2026-13/"
        self.assertEqual(self.page(self.lead_a, bad).status_code, 404)

    def test_csv_tables_match_the_page(self):
        response = self.page(self.lead_a)
        body = response.content.decode()
        for table in response.context["tables"]:
            with self.subTest(table=table.name):
                download = self.page(self.lead_a, format="csv", table=table.name)
                self.assertEqual(download.status_code, 200)
                self.assertIn("attachment", download["Content-Disposition"])
                rows = parse(download.content.decode())
                self.assertEqual(len(rows), len(table.rows))
                for csv_row, row in zip(rows, table.rows, strict=True):
                    self.assertEqual(
                        list(csv_row.values()), [str(row.get(c.key, "")) for c in table.columns]
                    )
                    # the page shows each value in its column's house format
                    for column, value in zip(table.columns, csv_row.values(), strict=True):
                        self.assertIn(escape(str(column.display(value))), body)
                self.assertIn(f"table={table.name}", body)

    def test_whole_statement_csv(self):
        response = self.page(self.lead_a, format="csv")
        self.assertEqual(response.status_code, 200)
        rows = parse(response.content.decode())
        totals = {r["name"]: r for r in rows if r["section"] == "total"}
        self.assertEqual(totals["production"]["cost_usd"], "4.000000000001")
        self.assertEqual(totals["evaluation"]["cost_usd"], "0.750000000000")
        features = [r for r in rows if r["section"] == "feature"]
        self.assertEqual(
            sum(Decimal(r["cost_usd"]) for r in features), self.ledger_march(self.team_a)
        )
        self.assertEqual({r["section"] for r in rows} - {"total"}, {
            "feature", "model", "endpoint", "key", "budget", "evaluation", "saving", "lever_cost"
        })  # fmt: skip
        self.assertEqual({r["team"] for r in rows}, {"search"})

    @override_settings(SITE_URL=SITE)
    def test_chargeback_email_links_to_the_statement(self):
        mail.outbox = []
        budget_alerts_evaluate(now=utc(2026, 4, 1, 12))
        message = next(
            m
            for m in mail.outbox
            if m.extra_headers["X-FinOps-Alert-Kind"] == "chargeback" and "team search" in m.subject
        )
        link = f"{SITE}{self.url}"
        self.assertIn(link, message.body)
        [(html, _)] = message.alternatives
        self.assertIn(f'href="{link}"', html)
        self.assertEqual(self.page(self.lead_a, self.url).status_code, 200)
