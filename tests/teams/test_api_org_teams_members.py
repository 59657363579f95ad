"""Organisations, teams, memberships and features through the API."""

from __future__ import annotations

from django.contrib.auth import get_user_model

from teams.models import AuditEntry, Feature, Membership, Team
from tests import factories as f
from tests.teams.api_case import APITestCase


class OrganizationTests(APITestCase):
    def test_admin_updates_timezone_and_name(self):
        response = self.patch(
            self.admin_a, "/orgs/acme/", {"timezone": "Europe/Berlin", "name": "ACME"}
        )
        self.assertEqual(response.status_code, 200, response.content)
        self.assertEqual(response.json()["timezone"], "Europe/Berlin")
        entry = AuditEntry.objects.get(action="org.updated")
        self.assertEqual(
            (entry.before["timezone"], entry.after["timezone"]), ("UTC", "Europe/Berlin")
        )

    def test_unknown_timezone_is_a_field_error(self):
        response = self.patch(self.admin_a, "/orgs/acme/", {"timezone": "Mars/Olympus"})
        self.assertEqual(response.status_code, 400)
        self.assertIn("timezone", response.json())

    def test_only_admin_changes_the_org(self):
        for user in (self.finance_a, self.lead_a, self.member_a):
            with self.subTest(user=user.username):
                self.assertEqual(self.patch(user, "/orgs/acme/", {"name": "x"}).status_code, 403)

    def test_currency_is_not_writable(self):
        self.patch(self.admin_a, "/orgs/acme/", {"currency": "EUR"})
        self.org_a.refresh_from_db()
        self.assertEqual(self.org_a.currency, "USD")


class TeamTests(APITestCase):
    def test_admin_creates_renames_and_deletes_a_team(self):
        created = self.post(self.admin_a, "/teams/", {"slug": "billing", "name": "Billing"})
        self.assertEqual(created.status_code, 201, created.content)
        team_id = created.json()["id"]
        self.assertEqual(created.json()["org"], "acme")
        renamed = self.patch(self.admin_a, f"/teams/{team_id}/", {"name": "Billing & Co"})
        self.assertEqual(renamed.json()["name"], "Billing & Co")
        self.assertEqual(self.delete(self.admin_a, f"/teams/{team_id}/").status_code, 204)
        actions = list(
            AuditEntry.objects.filter(object_type="team").values_list("action", flat=True)
        )
        self.assertEqual(sorted(actions), ["team.created", "team.deleted", "team.updated"])

    def test_team_slug_must_be_a_slug_and_unique_in_the_org(self):
        bad = self.post(self.admin_a, "/teams/", {"slug": "Not a slug"})
        self.assertEqual(bad.status_code, 400)
        self.assertIn("slug", bad.json())
        dup = self.post(self.admin_a, "/teams/", {"slug": "search"})
        self.assertEqual(dup.status_code, 400)
        self.assertIn("slug", dup.json())

    def test_team_with_active_keys_cannot_be_deleted(self):
        response = self.delete(self.admin_a, f"/teams/{self.team_a.pk}/")
        self.assertEqual(response.status_code, 400)
        self.assertTrue(Team.objects.filter(pk=self.team_a.pk).exists())

    def test_lead_and_finance_cannot_create_teams(self):
        for user in (self.lead_a, self.finance_a, self.member_a):
            self.assertEqual(self.post(user, "/teams/", {"slug": "x"}).status_code, 403)

    def test_admin_sets_and_clears_team_limits_and_the_change_is_audited(self):
        created = self.post(
            self.admin_a, "/teams/", {"slug": "billing", "rpm_limit": 600, "max_parallel": 8}
        )
        self.assertEqual(created.status_code, 201, created.content)
        body = created.json()
        self.assertEqual(
            (body["rpm_limit"], body["tpm_limit"], body["max_parallel"]), (600, None, 8)
        )
        created_entry = AuditEntry.objects.get(action="team.created")
        self.assertEqual(created_entry.after["rpm_limit"], 600)
        changed = self.patch(
            self.admin_a, f"/teams/{body['id']}/", {"tpm_limit": 200000, "rpm_limit": None}
        )
        self.assertEqual(changed.status_code, 200, changed.content)
        self.assertEqual((changed.json()["rpm_limit"], changed.json()["tpm_limit"]), (None, 200000))
        self.assertEqual(changed.json()["name"], "billing")  # a partial update keeps the rest
        team = Team.objects.get(pk=body["id"])
        self.assertEqual((team.rpm_limit, team.tpm_limit, team.max_parallel), (None, 200000, 8))
        entry = AuditEntry.objects.get(action="team.updated")
        self.assertEqual((entry.before["rpm_limit"], entry.after["rpm_limit"]), (600, None))
        self.assertEqual((entry.before["tpm_limit"], entry.after["tpm_limit"]), (None, 200000))
        self.assertEqual(entry.after["max_parallel"], 8)
        listed = {row["id"]: row for row in self.rows(self.admin_a, "/teams/")}
        self.assertEqual(listed[team.pk]["tpm_limit"], 200000)

    def test_team_limits_must_be_positive_integers(self):
        for value in (0, -5, "many", 2**31):
            with self.subTest(value=value):
                response = self.patch(
                    self.admin_a,
                    f"/teams/{self.team_a.pk}/",
                    {"rpm_limit": value, "tpm_limit": value, "max_parallel": value},
                )
                self.assertEqual(response.status_code, 400)
                self.assertEqual(set(response.json()), {"rpm_limit", "tpm_limit", "max_parallel"})
        created = self.post(self.admin_a, "/teams/", {"slug": "x", "max_parallel": 0})
        self.assertEqual(created.status_code, 400)
        self.assertIn("max_parallel", created.json())
        self.assertFalse(Team.objects.filter(slug="x").exists())
        self.team_a.refresh_from_db()
        self.assertEqual(
            (self.team_a.rpm_limit, self.team_a.tpm_limit, self.team_a.max_parallel),
            (None, None, None),
        )
        self.assertFalse(AuditEntry.objects.filter(object_type="team").exists())

    def test_only_the_org_admin_changes_team_limits(self):
        # a lead must not lift the cap of its own team; finance manages budgets, not limits
        for user in (self.lead_a, self.finance_a, self.member_a):
            with self.subTest(user=user.username):
                response = self.patch(user, f"/teams/{self.team_a.pk}/", {"rpm_limit": 10**6})
                self.assertEqual(response.status_code, 403)
        self.team_a.refresh_from_db()
        self.assertIsNone(self.team_a.rpm_limit)
        self.assertEqual(self.rows(self.lead_a, "/teams/")[0]["rpm_limit"], None)

    def test_lead_sees_own_team_only(self):
        self.assertEqual(self.ids(self.lead_a, "/teams/"), {self.team_a.pk})
        self.assertEqual(self.get(self.lead_a, f"/teams/{self.team_a2.pk}/").status_code, 404)


class MembershipTests(APITestCase):
    def test_admin_adds_a_new_person_by_email_and_it_is_audited(self):
        response = self.post(
            self.admin_a,
            "/members/",
            {"user": "new.lead@acme.test", "role": "lead", "team": "ads"},
        )
        self.assertEqual(response.status_code, 201, response.content)
        self.assertEqual((response.json()["team"], response.json()["role"]), ("ads", "lead"))
        user = get_user_model().objects.get(username="new.lead@acme.test")
        self.assertFalse(user.has_usable_password())
        entry = AuditEntry.objects.get(action="member.added")
        self.assertEqual(entry.after, {"user": "new.lead@acme.test", "role": "lead", "team": "ads"})
        self.assertEqual(entry.actor, self.admin_a)

    def test_role_and_team_must_fit_together(self):
        org_role_with_team = self.post(
            self.admin_a, "/members/", {"user": "x@acme.test", "role": "finance", "team": "ads"}
        )
        self.assertEqual(org_role_with_team.status_code, 400)
        self.assertIn("team", org_role_with_team.json())
        team_role_without = self.post(
            self.admin_a, "/members/", {"user": "x@acme.test", "role": "member"}
        )
        self.assertEqual(team_role_without.status_code, 400)
        self.assertFalse(get_user_model().objects.filter(username="x@acme.test").exists())

    def test_duplicate_membership_is_a_validation_error(self):
        response = self.post(
            self.admin_a,
            "/members/",
            {"user": self.lead_a.username, "role": "member", "team": "search"},
        )
        self.assertEqual(response.status_code, 400)
        self.assertIn("non_field_errors", response.json())

    def test_lead_cannot_add_members(self):
        response = self.post(
            self.lead_a,
            "/members/",
            {"user": "friend@acme.test", "role": "lead", "team": "search"},
        )
        self.assertEqual(response.status_code, 403)

    def test_admin_changes_a_role_and_removes_a_member(self):
        membership = Membership.objects.get(user=self.member_a)
        changed = self.patch(self.admin_a, f"/members/{membership.pk}/", {"role": "lead"})
        self.assertEqual(changed.status_code, 200, changed.content)
        self.assertEqual((changed.json()["role"], changed.json()["team"]), ("lead", "search"))
        self.assertEqual(self.delete(self.admin_a, f"/members/{membership.pk}/").status_code, 204)
        entries = AuditEntry.objects.filter(object_type="membership")
        self.assertEqual(
            set(entries.values_list("action", flat=True)), {"member.updated", "member.removed"}
        )

    def test_the_last_admin_cannot_be_removed_or_demoted(self):
        membership = Membership.objects.get(user=self.admin_a)
        self.assertEqual(self.delete(self.admin_a, f"/members/{membership.pk}/").status_code, 400)
        demote = self.patch(self.admin_a, f"/members/{membership.pk}/", {"role": "finance"})
        self.assertEqual(demote.status_code, 400)
        self.assertIn("role", demote.json())

    def test_member_sees_own_team_memberships_only(self):
        rows = self.rows(self.member_a, "/members/")
        self.assertEqual({r["user"] for r in rows}, {"lead@acme.test", "member@acme.test"})


class FeatureTests(APITestCase):
    def test_lead_creates_and_renames_a_feature_of_its_team(self):
        created = self.post(self.lead_a, "/features/", {"team": "search", "slug": "rerank"})
        self.assertEqual(created.status_code, 201, created.content)
        self.assertEqual((created.json()["org"], created.json()["team"]), ("acme", "search"))
        renamed = self.patch(self.lead_a, f"/features/{created.json()['id']}/", {"name": "Re-rank"})
        self.assertEqual(renamed.json()["name"], "Re-rank")
        self.assertEqual(renamed.json()["slug"], "rerank")

    def test_lead_claims_a_feature_created_by_traffic(self):
        unclaimed = Feature.objects.create(team=self.team_a, slug="mystery", claimed=False)
        response = self.patch(self.lead_a, f"/features/{unclaimed.pk}/", {"claimed": True})
        self.assertEqual(response.status_code, 200)
        unclaimed.refresh_from_db()
        self.assertTrue(unclaimed.claimed)

    def test_lead_cannot_create_features_in_another_team_and_member_cannot_at_all(self):
        other = self.post(self.lead_a, "/features/", {"team": "ads", "slug": "x"})
        self.assertEqual(other.status_code, 400)
        self.assertIn("team", other.json())
        member = self.post(self.member_a, "/features/", {"team": "search", "slug": "x"})
        self.assertEqual(member.status_code, 403)
        finance = self.post(self.finance_a, "/features/", {"team": "search", "slug": "x"})
        self.assertEqual(finance.status_code, 403)

    def test_feature_slug_is_unique_per_team(self):
        response = self.post(self.admin_a, "/features/", {"team": "search", "slug": "summarize"})
        self.assertEqual(response.status_code, 400)
        self.assertIn("slug", response.json())
        elsewhere = self.post(self.admin_a, "/features/", {"team": "ads", "slug": "summarize"})
        self.assertEqual(elsewhere.status_code, 201)

    def test_feature_delete_is_audited(self):
        feature = f.make_feature(self.team_a, "old")
        self.assertEqual(self.delete(self.lead_a, f"/features/{feature.pk}/").status_code, 204)
        self.assertTrue(AuditEntry.objects.filter(action="feature.deleted").exists())
