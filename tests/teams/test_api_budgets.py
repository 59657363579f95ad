"""Budgets through the API: finance and admins manage them, leads only read theirs (a lead
cannot raise its own budget), limits are exact decimal strings, and changes are audited."""

from __future__ import annotations

from decimal import Decimal

from teams.models import AuditEntry, Budget
from tests import factories as f
from tests.teams.api_case import APITestCase


class BudgetTests(APITestCase):
    @classmethod
    def setUpTestData(cls):
        super().setUpTestData()
        cls.team_budget = f.make_budget(cls.org_a, scope="team", team=cls.team_a, limit="100")
        cls.other_team_budget = f.make_budget(cls.org_a, scope="team", team=cls.team_a2)
        cls.org_budget = f.make_budget(cls.org_a, period="quarter", limit="5000")

    def test_finance_creates_a_team_budget_with_exact_decimal_limit(self):
        response = self.post(
            self.finance_a,
            "/budgets/",
            {
                "scope": "team",
                "team": "search",
                "period": "day",
                "limit_usd": "20.123456",
                "alert_thresholds": [50, 90],
                "recipients": ["fin@acme.test"],
            },
        )
        self.assertEqual(response.status_code, 201, response.content)
        body = response.json()
        self.assertEqual(body["limit_usd"], "20.123456")
        self.assertEqual((body["org"], body["team"], body["scope"]), ("acme", "search", "team"))
        budget = Budget.objects.get(pk=body["id"])
        self.assertEqual(budget.limit_usd, Decimal("20.123456"))
        entry = AuditEntry.objects.get(action="budget.created")
        self.assertEqual((entry.actor, entry.after["limit_usd"]), (self.finance_a, "20.123456"))

    def test_fail_open_round_trips_and_its_change_is_audited(self):
        created = self.post(
            self.finance_a,
            "/budgets/",
            {
                "scope": "team",
                "team": "search",
                "period": "week",
                "limit_usd": "50",
                "fail_open": True,
            },
        )
        self.assertEqual(created.status_code, 201, created.content)
        self.assertIs(created.json()["fail_open"], True)
        budget = Budget.objects.get(pk=created.json()["id"])
        self.assertTrue(budget.fail_open)
        self.assertIs(AuditEntry.objects.get(action="budget.created").after["fail_open"], True)
        closed = self.patch(self.finance_a, f"/budgets/{budget.pk}/", {"fail_open": False})
        self.assertEqual(closed.status_code, 200, closed.content)
        self.assertIs(closed.json()["fail_open"], False)
        entry = AuditEntry.objects.get(action="budget.updated")
        self.assertEqual((entry.before["fail_open"], entry.after["fail_open"]), (True, False))
        # a partial update of another field leaves fail_open as it is (no default applied)
        self.patch(self.finance_a, f"/budgets/{budget.pk}/", {"fail_open": True})
        self.patch(self.finance_a, f"/budgets/{budget.pk}/", {"limit_usd": "60"})
        self.assertIs(self.get(self.lead_a, f"/budgets/{budget.pk}/").json()["fail_open"], True)

    def test_budgets_fail_closed_unless_told_otherwise(self):
        response = self.post(
            self.finance_a,
            "/budgets/",
            {"scope": "team", "team": "search", "period": "day", "limit_usd": "5"},
        )
        self.assertEqual(response.status_code, 201, response.content)
        self.assertIs(response.json()["fail_open"], False)
        self.assertFalse(Budget.objects.get(pk=response.json()["id"]).fail_open)

    def test_fail_open_must_be_a_boolean(self):
        response = self.patch(
            self.finance_a, f"/budgets/{self.team_budget.pk}/", {"fail_open": "sometimes"}
        )
        self.assertEqual(response.status_code, 400)
        self.assertEqual(set(response.json()), {"fail_open"})
        self.team_budget.refresh_from_db()
        self.assertFalse(self.team_budget.fail_open)

    def test_lead_cannot_make_its_teams_budget_fail_open(self):
        response = self.patch(self.lead_a, f"/budgets/{self.team_budget.pk}/", {"fail_open": True})
        self.assertEqual(response.status_code, 403)
        self.team_budget.refresh_from_db()
        self.assertFalse(self.team_budget.fail_open)

    def test_finance_raises_a_budget_and_the_change_is_audited_with_before_and_after(self):
        response = self.patch(
            self.finance_a, f"/budgets/{self.team_budget.pk}/", {"limit_usd": "250.50"}
        )
        self.assertEqual(response.status_code, 200, response.content)
        self.assertEqual(response.json()["limit_usd"], "250.500000")
        entry = AuditEntry.objects.get(action="budget.updated")
        self.assertEqual(entry.before["limit_usd"], "100.000000")
        self.assertEqual(entry.after["limit_usd"], "250.500000")
        self.assertEqual(entry.actor, self.finance_a)

    def test_lead_cannot_raise_its_own_teams_budget(self):
        response = self.patch(
            self.lead_a, f"/budgets/{self.team_budget.pk}/", {"limit_usd": "1000000"}
        )
        self.assertEqual(response.status_code, 403)
        self.team_budget.refresh_from_db()
        self.assertEqual(self.team_budget.limit_usd, Decimal("100"))
        self.assertFalse(AuditEntry.objects.filter(action="budget.updated").exists())

    def test_lead_and_member_cannot_create_or_delete_budgets(self):
        for user in (self.lead_a, self.member_a):
            with self.subTest(user=user.username):
                response = self.post(
                    user,
                    "/budgets/",
                    {"scope": "team", "team": "search", "period": "week", "limit_usd": "9"},
                )
                self.assertEqual(response.status_code, 403)
                self.assertEqual(
                    self.delete(user, f"/budgets/{self.team_budget.pk}/").status_code, 403
                )

    def test_lead_reads_own_team_and_org_budgets_but_not_other_teams(self):
        ids = self.ids(self.lead_a, "/budgets/")
        self.assertEqual(ids, {self.team_budget.pk, self.org_budget.pk})
        self.assertEqual(
            self.get(self.lead_a, f"/budgets/{self.other_team_budget.pk}/").status_code, 404
        )

    def test_admin_deletes_a_budget_and_it_is_audited(self):
        response = self.delete(self.admin_a, f"/budgets/{self.other_team_budget.pk}/")
        self.assertEqual(response.status_code, 204)
        self.assertFalse(Budget.objects.filter(pk=self.other_team_budget.pk).exists())
        entry = AuditEntry.objects.get(action="budget.deleted")
        self.assertEqual(entry.before["team"], "ads")

    def test_feature_and_key_budgets_resolve_within_the_org(self):
        feature = self.post(
            self.admin_a,
            "/budgets/",
            {
                "scope": "feature",
                "team": "search",
                "feature": "summarize",
                "period": "day",
                "limit_usd": "5",
            },
        )
        self.assertEqual(feature.status_code, 201, feature.content)
        self.assertEqual(
            (feature.json()["feature"], feature.json()["team"]), ("summarize", "search")
        )
        key = self.post(
            self.admin_a,
            "/budgets/",
            {"scope": "key", "key": self.minted_a.key.pk, "period": "day", "limit_usd": "5"},
        )
        self.assertEqual(key.status_code, 201, key.content)
        self.assertEqual(key.json()["key"], self.minted_a.key.pk)
        foreign = self.post(
            self.admin_a,
            "/budgets/",
            {"scope": "key", "key": self.minted_b.key.pk, "period": "day", "limit_usd": "5"},
        )
        self.assertEqual(foreign.status_code, 400)
        self.assertIn("key", foreign.json())

    def test_invalid_budget_gets_field_errors(self):
        response = self.post(
            self.admin_a,
            "/budgets/",
            {"scope": "team", "period": "fortnight", "limit_usd": "-1", "alert_thresholds": [0]},
        )
        self.assertEqual(response.status_code, 400)
        self.assertEqual(set(response.json()), {"period", "limit_usd", "alert_thresholds"})
        missing_team = self.post(
            self.admin_a, "/budgets/", {"scope": "team", "period": "day", "limit_usd": "1"}
        )
        self.assertEqual(missing_team.status_code, 400)
        self.assertIn("team", missing_team.json())
        downgrade = self.post(
            self.admin_a,
            "/budgets/",
            {"scope": "org", "period": "day", "limit_usd": "1", "action": "downgrade"},
        )
        self.assertEqual(downgrade.status_code, 400)
        self.assertIn("downgrade_to", downgrade.json())

    def test_duplicate_period_for_the_same_scope_is_refused(self):
        response = self.post(
            self.finance_a,
            "/budgets/",
            {"scope": "team", "team": "search", "period": "month", "limit_usd": "1"},
        )
        self.assertEqual(response.status_code, 400)
        self.assertIn("period", response.json())

    def test_downgrade_budget_names_a_model_of_the_org(self):
        f.make_model(self.org_a, "gpt-4.1-mini")
        response = self.post(
            self.finance_a,
            "/budgets/",
            {
                "scope": "team",
                "team": "ads",
                "period": "day",
                "limit_usd": "3",
                "action": "downgrade",
                "downgrade_to": "gpt-4.1-mini",
            },
        )
        self.assertEqual(response.status_code, 201, response.content)
        self.assertEqual(response.json()["downgrade_to"], "gpt-4.1-mini")
        switched = self.patch(
            self.finance_a, f"/budgets/{response.json()['id']}/", {"action": "block"}
        )
        self.assertEqual(switched.status_code, 200, switched.content)
        self.assertIsNone(switched.json()["downgrade_to"])
