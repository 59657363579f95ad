"""Tenant isolation of every control-plane endpoint: org A's people never see org B's rows,
get 404 (not 403) for them, and cannot act on them. Superusers see both orgs through the same
selectors, and ``?org=`` filters."""

from __future__ import annotations

from gateway.models import LLMModel
from teams.models import AuditEntry, Membership
from teams.services import audit_record
from tests import factories as f
from tests.teams.api_case import APITestCase


class CrossTenantTests(APITestCase):
    @classmethod
    def setUpTestData(cls):
        super().setUpTestData()
        cls.budget_a = f.make_budget(cls.org_a, scope="team", team=cls.team_a)
        cls.budget_b = f.make_budget(cls.org_b, scope="team", team=cls.team_b)
        cls.org_budget_b = f.make_budget(cls.org_b, period="quarter")
        cls.audit_b = audit_record(
            actor=cls.admin_b, org=cls.org_b, action="team.updated", obj=cls.team_b
        )
        cls.people_a = [cls.admin_a, cls.finance_a, cls.lead_a, cls.member_a]

    def test_orgs_list_only_own_org_and_other_org_is_404(self):
        for user in self.people_a:
            slugs = {row["slug"] for row in self.rows(user, "/orgs/")}
            self.assertEqual(slugs, {"acme"}, user)
        self.assert_not_found_for(
            [self.admin_a, self.lead_a],
            ("get", "/orgs/globex/"),
            ("patch", "/orgs/globex/", {"name": "Pwned"}),
        )
        self.org_b.refresh_from_db()
        self.assertEqual(self.org_b.name, "Globex")

    def test_teams_of_other_org_are_invisible_and_404(self):
        for user in self.people_a:
            rows = self.rows(user, "/teams/")
            self.assertTrue(rows)
            self.assertEqual({r["org"] for r in rows}, {"acme"})
            self.assertNotIn(self.team_b.pk, {r["id"] for r in rows})
        self.assert_not_found_for(
            [self.admin_a, self.lead_a],
            ("get", f"/teams/{self.team_b.pk}/"),
            ("patch", f"/teams/{self.team_b.pk}/", {"name": "x"}),
            ("patch", f"/teams/{self.team_b.pk}/", {"rpm_limit": 1}),
            ("delete", f"/teams/{self.team_b.pk}/"),
        )
        self.team_b.refresh_from_db()
        self.assertIsNone(self.team_b.rpm_limit)

    def test_admin_cannot_create_team_in_other_org(self):
        response = self.post(self.admin_a, "/teams/", {"org": "globex", "slug": "intruders"})
        self.assertEqual(response.status_code, 400)
        self.assertIn("org", response.json())
        self.assertFalse(self.org_b.teams.filter(slug="intruders").exists())

    def test_members_of_other_org_are_invisible_and_404(self):
        membership_b = Membership.objects.get(user=self.lead_b)
        for user in self.people_a:
            rows = self.rows(user, "/members/")
            self.assertEqual({r["org"] for r in rows}, {"acme"})
        self.assert_not_found_for(
            [self.admin_a, self.lead_a],
            ("get", f"/members/{membership_b.pk}/"),
            ("patch", f"/members/{membership_b.pk}/", {"role": "member", "team": "search"}),
            ("delete", f"/members/{membership_b.pk}/"),
        )
        self.assertTrue(Membership.objects.filter(pk=membership_b.pk, role="lead").exists())

    def test_features_of_other_org_are_invisible_and_404(self):
        for user in self.people_a:
            ids = self.ids(user, "/features/")
            self.assertIn(self.feature_a.pk, ids)
            self.assertNotIn(self.feature_b.pk, ids)
        self.assert_not_found_for(
            [self.admin_a, self.lead_a],
            ("get", f"/features/{self.feature_b.pk}/"),
            ("patch", f"/features/{self.feature_b.pk}/", {"name": "x"}),
            ("delete", f"/features/{self.feature_b.pk}/"),
        )

    def test_keys_of_other_org_are_invisible_and_404(self):
        key_b = self.minted_b.key
        for user in self.people_a:
            ids = self.ids(user, "/keys/")
            self.assertIn(self.minted_a.key.pk, ids)
            self.assertNotIn(key_b.pk, ids)
        self.assert_not_found_for(
            [self.admin_a, self.lead_a],
            ("get", f"/keys/{key_b.pk}/"),
            ("patch", f"/keys/{key_b.pk}/", {"rpm_limit": 1}),
            ("post", f"/keys/{key_b.pk}/revoke/"),
            ("post", f"/keys/{key_b.pk}/rotate/"),
        )
        key_b.refresh_from_db()
        self.assertIsNone(key_b.revoked_at)
        self.assertIsNone(key_b.rpm_limit)
        self.assertEqual(key_b.secrets.count(), 1)

    def test_lead_cannot_mint_a_key_for_a_team_of_other_org(self):
        body = {"org": "globex", "team": "search", "name": "sneaky"}
        for user in (self.lead_a, self.admin_a):
            response = self.post(user, "/keys/", body)
            self.assertEqual(response.status_code, 400)
            self.assertEqual(list(response.json()), ["org"])
        self.assertFalse(self.org_b.keys.filter(name="sneaky").exists())

    def test_budgets_of_other_org_are_invisible_and_404(self):
        for user in self.people_a:
            ids = self.ids(user, "/budgets/")
            self.assertIn(self.budget_a.pk, ids)
            self.assertFalse(ids & {self.budget_b.pk, self.org_budget_b.pk})
        self.assert_not_found_for(
            [self.admin_a, self.finance_a, self.lead_a],
            ("get", f"/budgets/{self.budget_b.pk}/"),
            ("patch", f"/budgets/{self.budget_b.pk}/", {"limit_usd": "1"}),
            ("patch", f"/budgets/{self.budget_b.pk}/", {"fail_open": True}),
            ("delete", f"/budgets/{self.budget_b.pk}/"),
        )
        self.budget_b.refresh_from_db()
        self.assertFalse(self.budget_b.fail_open)

    def test_finance_cannot_create_budget_on_other_orgs_team(self):
        response = self.post(
            self.finance_a,
            "/budgets/",
            {"org": "globex", "scope": "team", "team": "search", "period": "day", "limit_usd": "1"},
        )
        self.assertEqual(response.status_code, 400)
        self.assertIn("org", response.json())

    def test_audit_entries_of_other_org_are_invisible_and_404(self):
        audit_record(actor=self.admin_a, org=self.org_a, action="team.updated", obj=self.team_a)
        for user in (self.admin_a, self.finance_a):
            rows = self.rows(user, "/audit/")
            self.assertTrue(rows)
            self.assertEqual({r["org"] for r in rows}, {"acme"})
        self.assert_not_found_for(
            [self.admin_a, self.finance_a], ("get", f"/audit/{self.audit_b.pk}/")
        )

    def test_outsider_sees_nothing_anywhere(self):
        for path in (
            "/orgs/",
            "/teams/",
            "/members/",
            "/features/",
            "/keys/",
            "/budgets/",
            "/audit/",
            "/providers/",
            "/models/",
            "/groups/",
            "/routers/",
        ):
            with self.subTest(path=path):
                self.assertEqual(self.rows(self.outsider, path), [])
        self.assert_not_found_for([self.outsider], ("get", f"/keys/{self.minted_a.key.pk}/"))


class SuperuserTests(APITestCase):
    def test_superuser_sees_both_orgs_and_org_param_filters(self):
        self.assertEqual(
            {r["slug"] for r in self.rows(self.superuser, "/orgs/")}, {"acme", "globex"}
        )
        for path in ("/teams/", "/keys/", "/features/", "/members/"):
            with self.subTest(path=path):
                self.assertEqual(
                    {r["org"] for r in self.rows(self.superuser, path)}, {"acme", "globex"}
                )
                filtered = self.rows(self.superuser, path, org="globex")
                self.assertTrue(filtered)
                self.assertEqual({r["org"] for r in filtered}, {"globex"})

    def test_org_param_filters_for_everyone_and_unknown_org_is_empty(self):
        self.assertEqual(self.rows(self.admin_a, "/keys/", org="globex"), [])
        self.assertEqual(self.rows(self.admin_a, "/teams/", org="nope"), [])
        self.assertEqual(len(self.rows(self.admin_a, "/teams/", org="acme")), 2)

    def test_superuser_must_name_the_org_when_creating(self):
        response = self.post(self.superuser, "/teams/", {"slug": "platform"})
        self.assertEqual(response.status_code, 400)
        self.assertIn("org", response.json())
        response = self.post(self.superuser, "/teams/", {"org": "globex", "slug": "platform"})
        self.assertEqual(response.status_code, 201, response.content)
        self.assertEqual(response.json()["org"], "globex")

    def test_superuser_acts_as_admin_in_every_org(self):
        key_b = self.minted_b.key
        response = self.post(self.superuser, f"/keys/{key_b.pk}/revoke/")
        self.assertEqual(response.status_code, 200)
        entry = AuditEntry.objects.get(action="key.revoked")
        self.assertEqual((entry.org, entry.actor), (self.org_b, self.superuser))

    def test_superuser_reads_audit_of_both_orgs(self):
        audit_record(actor=None, org=self.org_a, action="x.y", obj=self.team_a)
        audit_record(actor=None, org=self.org_b, action="x.y", obj=self.team_b)
        orgs = {r["org"] for r in self.rows(self.superuser, "/audit/")}
        self.assertEqual(orgs, {"acme", "globex"})
        self.assertEqual(
            {r["org"] for r in self.rows(self.superuser, "/audit/", org="acme")}, {"acme"}
        )


class GatewayConfigIsolationSanity(APITestCase):
    """Models of org B never appear in org A's budget downgrade choices."""

    def test_budget_downgrade_to_other_orgs_model_is_not_found(self):
        f.make_model(self.org_b, "cheap")
        self.assertTrue(LLMModel.objects.filter(org=self.org_b, name="cheap").exists())
        response = self.post(
            self.admin_a,
            "/budgets/",
            {
                "scope": "org",
                "period": "day",
                "limit_usd": "5",
                "action": "downgrade",
                "downgrade_to": "cheap",
            },
        )
        self.assertEqual(response.status_code, 400)
        self.assertIn("downgrade_to", response.json())
