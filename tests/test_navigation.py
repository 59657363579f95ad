"""Navigation (issue 20): the header reaches every page the viewer may open and nothing of
another tenant, breadcrumbs place a report page, a team's statements are listed by month, and
the home page shows the viewer's month-to-date spend, budgets at risk and recent alerts."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from django.urls import reverse
from django.utils import timezone

from reports.models import BudgetAlert, DailySpend
from tests import factories as f
from tests.base import TwoOrgsTestCase


def _header(response) -> str:
    html = response.content.decode()
    return html[html.index('<header class="topbar">') : html.index("</header>")]


class NavigationTests(TwoOrgsTestCase):
    @classmethod
    def setUpTestData(cls):
        super().setUpTestData()
        cls.today = timezone.now().date()
        first = cls.today.replace(day=1)
        cls.last_month = (first - timedelta(days=1)).replace(day=1)
        for team, day, cost in (
            (cls.team_a, cls.today, "12.50"),
            (cls.team_a, cls.last_month, "3.25"),
            (cls.team_a2, cls.today, "40.00"),
            (cls.team_b, cls.today, "7.00"),
        ):
            DailySpend.objects.create(
                org_id=team.org_id, team_id=team.pk, day=day, cost=Decimal(cost), requests=5
            )
        cls.budget_a = f.make_budget(cls.org_a, scope="team", team=cls.team_a, limit="15")
        cls.budget_a2 = f.make_budget(cls.org_a, scope="team", team=cls.team_a2, limit="1000")
        cls.alert_a = BudgetAlert.objects.create(
            org=cls.org_a,
            budget=cls.budget_a,
            team=cls.team_a,
            kind="threshold",
            dedupe_key="nav-alert-a",
            scope_label="team search",
            subject="search budget at 80%",
        )
        cls.alert_b = BudgetAlert.objects.create(
            org=cls.org_b,
            team=cls.team_b,
            kind="anomaly",
            dedupe_key="nav-alert-b",
            scope_label="team globex-search",
            subject="globex spend anomaly",
        )

    def get(self, user, path):
        self.client.force_login(user)
        return self.client.get(path)

    # --- header -------------------------------------------------------------------------------

    def test_header_of_a_lead_reaches_their_team_pages_only(self):
        header = _header(self.get(self.lead_a, reverse("home")))
        t = self.team_a.pk
        for url in (
            reverse("reports:team-dashboard", args=[t]),
            reverse("team-keys", args=[t]),
            reverse("reports:statement-index", args=[t]),
            reverse("reports:catalog", args=[self.org_a.pk]),
            reverse("reports:alert-detail", args=[self.alert_a.pk]),
            reverse("api-docs"),
        ):
            self.assertIn(f'href="{url}"', header)
        self.assertNotIn(reverse("reports:team-dashboard", args=[self.team_a2.pk]), header)
        overview = reverse("reports:org-overview", args=[self.org_a.pk])
        self.assertNotIn(f'href="{overview}"', header)
        self.assertNotIn(reverse("audit-entry-list"), header)  # audit: admin and finance
        self.assertNotIn(reverse("admin:index"), header)  # not staff
        self.assertNotIn("globex", header.lower())

    def test_header_of_an_org_admin_reaches_overview_every_team_and_audit(self):
        header = _header(self.get(self.admin_a, reverse("home")))
        self.assertIn(reverse("reports:org-overview", args=[self.org_a.pk]), header)
        self.assertIn(reverse("reports:invoices", args=[self.org_a.pk]), header)
        for team in (self.team_a, self.team_a2):
            self.assertIn(reverse("reports:statement-index", args=[team.pk]), header)
        self.assertIn(reverse("audit-entry-list"), header)
        self.assertNotIn(reverse("reports:alert-detail", args=[self.alert_b.pk]), header)
        self.assertNotIn("globex", header.lower())

    def test_header_shows_admin_to_staff(self):
        header = _header(self.get(self.superuser, reverse("home")))
        self.assertIn(reverse("admin:index"), header)

    def test_anonymous_header_offers_log_in_only(self):
        header = _header(self.client.get(reverse("login")))
        self.assertIn(reverse("login"), header)
        self.assertNotIn("<details", header)

    # --- breadcrumbs --------------------------------------------------------------------------

    def test_breadcrumbs_place_a_team_statement(self):
        month = self.today.strftime("%Y-%m")
        page = self.get(
            self.admin_a, reverse("reports:team-statement", args=[self.team_a.pk, month])
        )
        self.assertEqual(page.status_code, 200)
        crumbs = [(c.label, c.url) for c in page.context["nav"].breadcrumbs]
        self.assertEqual(
            crumbs,
            [
                ("Home", reverse("home")),
                (self.org_a.name, reverse("reports:org-overview", args=[self.org_a.pk])),
                (self.team_a.name, reverse("reports:team-dashboard", args=[self.team_a.pk])),
                ("Statements", reverse("reports:statement-index", args=[self.team_a.pk])),
                (month, None),
            ],
        )
        self.assertContains(page, 'class="crumbs"')

    def test_breadcrumbs_of_a_lead_do_not_link_the_overview_they_cannot_open(self):
        page = self.get(self.lead_a, reverse("team-keys", args=[self.team_a.pk]))
        crumbs = [(c.label, c.url) for c in page.context["nav"].breadcrumbs]
        self.assertEqual(crumbs[1], (self.org_a.name, None))
        self.assertEqual(crumbs[-1], ("Keys", None))

    # --- statements index ---------------------------------------------------------------------

    def test_statement_index_lists_months_with_spend_and_links_each(self):
        page = self.get(self.lead_a, reverse("reports:statement-index", args=[self.team_a.pk]))
        self.assertEqual(page.status_code, 200)
        months = page.context["months"]
        self.assertEqual([m.first for m in months], [self.today.replace(day=1), self.last_month])
        self.assertEqual([m.cost for m in months], [Decimal("12.50"), Decimal("3.25")])
        self.assertTrue(months[0].is_open)
        self.assertFalse(months[1].is_open)
        for m in months:
            self.assertContains(page, f'href="{m.url}"')
        self.assertContains(page, "Open (draft)")

    def test_statement_index_of_another_team_is_a_404(self):
        path = reverse("reports:statement-index", args=[self.team_a.pk])
        for user in (self.lead_a2, self.admin_b, self.outsider):
            with self.subTest(user=user.username):
                self.assertEqual(self.get(user, path).status_code, 404)

    # --- home ---------------------------------------------------------------------------------

    def test_home_shows_month_to_date_spend_per_org_read_whole(self):
        page = self.get(self.admin_a, reverse("home"))
        figures = {row.label: row.spent for row in page.context["month_to_date"]}
        self.assertEqual(figures, {self.org_a.name: Decimal("52.50")})
        self.assertContains(page, reverse("reports:org-overview", args=[self.org_a.pk]))

    def test_home_shows_a_lead_their_teams_spend_only(self):
        page = self.get(self.lead_a, reverse("home"))
        figures = [row.spent for row in page.context["month_to_date"]]
        self.assertEqual(figures, [Decimal("12.50")])
        self.assertNotContains(page, "$40.00")
        self.assertNotContains(page, "$52.50")

    def test_home_lists_budgets_at_risk_and_recent_alerts(self):
        page = self.get(self.admin_a, reverse("home"))
        at_risk = [row["budget"] for row in page.context["at_risk"]]
        self.assertEqual(at_risk, [self.budget_a])  # 12.50 of 15 (83 %); a2 at 4 % is not
        self.assertEqual(page.context["at_risk"][0]["percent"], Decimal("83.33"))
        self.assertEqual(page.context["alerts"], [self.alert_a])
        self.assertContains(page, reverse("reports:alert-detail", args=[self.alert_a.pk]))
        self.assertContains(page, "search budget at 80%")

    def test_home_of_another_org_shows_none_of_its_figures(self):
        page = self.get(self.lead_b, reverse("home"))
        self.assertEqual([row.spent for row in page.context["month_to_date"]], [Decimal("7")])
        self.assertEqual(page.context["at_risk"], [])
        self.assertEqual(page.context["alerts"], [self.alert_b])
        self.assertNotContains(page, "acme")
        self.assertNotContains(page, "search budget at 80%")
