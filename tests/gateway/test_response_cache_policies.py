"""The response cache's policies in the control plane: the model's rules, the services' audit,
the gateway's reload (config stamp) and its index, the REST API with its tenant isolation,
and the admin."""

from __future__ import annotations

from functools import partial

import pytest
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.urls import reverse

from gateway.cache import org_config_load
from gateway.models import ConfigStamp
from teams.cache_services import cache_policy_create, cache_policy_delete, cache_policy_update
from teams.models import AuditEntry, CachePolicy
from tests import factories as f
from tests.teams.api_case import APITestCase


class CachePolicyModelTests(APITestCase):
    @classmethod
    def setUpTestData(cls):
        super().setUpTestData()
        f.make_model(cls.org_a, "gpt-4o-mini")

    def create(self, **kw):
        return cache_policy_create(actor=self.admin_a, org=kw.pop("org", self.org_a), **kw)

    def test_each_scope_names_its_own_target_and_nothing_else(self):
        with self.assertRaises(ValidationError) as missing:
            self.create(scope="team")
        self.assertIn("team", missing.exception.message_dict)
        with self.assertRaises(ValidationError) as extra:
            self.create(scope="org", team=self.team_a)
        self.assertIn("team", extra.exception.message_dict)
        with self.assertRaises(ValidationError) as unknown:
            self.create(scope="model", model_name="no-such-model")
        self.assertIn("model_name", unknown.exception.message_dict)
        self.create(scope="model", model_name="gpt-4o-mini")

    def test_a_policy_on_another_organisations_team_feature_or_key_is_refused(self):
        for kw in (
            {"scope": "team", "team": self.team_b},
            {"scope": "feature", "feature": self.feature_b},
            {"scope": "key", "key": self.minted_b.key},
        ):
            with self.subTest(**{k: str(v) for k, v in kw.items()}):
                with self.assertRaises(ValidationError) as refused:
                    self.create(**kw)
                self.assertIn("another organisation", str(refused.exception))

    def test_one_policy_per_target_and_bounded_settings(self):
        self.create(scope="team", team=self.team_a)
        with self.assertRaises(ValidationError):
            self.create(scope="team", team=self.team_a)
        self.create(scope="org")
        with self.assertRaises(ValidationError):
            self.create(scope="org")
        with self.assertRaises(ValidationError):
            self.create(scope="key", key=self.minted_a.key, ttl_seconds=0)
        with self.assertRaises(ValidationError):
            self.create(scope="key", key=self.minted_a.key, max_entry_bytes=10)

    def test_changes_are_audited_and_bump_the_gateway_config_stamp(self):
        def stamp() -> int:
            row = ConfigStamp.objects.filter(name="config").first()
            return row.version if row else 0

        before = stamp()
        with self.captureOnCommitCallbacks(execute=True):
            policy = self.create(scope="team", team=self.team_a, ttl_seconds=120)
        self.assertGreater(stamp(), before)
        with self.captureOnCommitCallbacks(execute=True):
            cache_policy_update(policy=policy, actor=self.admin_a, tools=True)
        entry = AuditEntry.objects.get(action="cache_policy.updated")
        self.assertEqual((entry.before["tools"], entry.after["tools"]), (False, True))
        with self.captureOnCommitCallbacks(execute=True):
            cache_policy_delete(policy=policy, actor=self.admin_a)
        self.assertTrue(AuditEntry.objects.filter(action="cache_policy.deleted").exists())
        self.assertEqual(stamp(), before + 3)
        with self.assertRaises(ValidationError):  # the target is what it is
            cache_policy_update(policy=self.create(scope="org"), actor=None, scope="team")


class CachePolicyAPITests(APITestCase):
    @classmethod
    def setUpTestData(cls):
        super().setUpTestData()
        cls.team_policy = cache_policy_create(
            actor=None, org=cls.org_a, scope="team", team=cls.team_a
        )
        cls.ads_policy = cache_policy_create(
            actor=None, org=cls.org_a, scope="team", team=cls.team_a2
        )
        cls.org_policy = cache_policy_create(actor=None, org=cls.org_a, scope="org")
        cls.b_policy = cache_policy_create(actor=None, org=cls.org_b, scope="org")

    def test_an_admin_sets_a_policy_on_each_scope(self):
        f.make_model(self.org_a, "gpt-4o")
        for body in (
            {"scope": "feature", "team": "search", "feature": "summarize", "ttl_seconds": 60},
            {"scope": "key", "key": self.minted_a.key.pk, "tools": True},
            {"scope": "model", "model_name": "gpt-4o", "max_entry_bytes": 2048},
        ):
            with self.subTest(scope=body["scope"]):
                response = self.post(self.admin_a, "/cache-policies/", body)
                self.assertEqual(response.status_code, 201, response.content)
                self.assertEqual(response.json()["org"], "acme")
        feature = CachePolicy.objects.get(scope="feature")
        self.assertEqual(
            (feature.feature, feature.team, feature.ttl_seconds), (self.feature_a, None, 60)
        )
        row = self.get(self.admin_a, f"/cache-policies/{feature.pk}/").json()
        self.assertEqual((row["feature"], row["feature_team"]), ("summarize", "search"))
        self.assertTrue(AuditEntry.objects.filter(action="cache_policy.created").exists())

    def test_an_admin_changes_and_deletes_a_policy(self):
        path = f"/cache-policies/{self.team_policy.pk}/"
        changed = self.patch(self.admin_a, path, {"enabled": False, "ttl_seconds": 30})
        self.assertEqual(changed.status_code, 200, changed.content)
        self.assertEqual((changed.json()["enabled"], changed.json()["ttl_seconds"]), (False, 30))
        self.assertEqual(self.patch(self.admin_a, path, {"ttl_seconds": 0}).status_code, 400)
        self.assertEqual(self.delete(self.admin_a, path).status_code, 204)
        self.assertFalse(CachePolicy.objects.filter(pk=self.team_policy.pk).exists())

    def test_only_org_admins_manage_policies(self):
        body = {"scope": "key", "key": self.minted_a.key.pk}
        for user in (self.finance_a, self.lead_a, self.member_a):
            with self.subTest(user=user.username):
                self.assertEqual(self.post(user, "/cache-policies/", body).status_code, 403)
                path = f"/cache-policies/{self.team_policy.pk}/"
                self.assertEqual(self.patch(user, path, {"enabled": False}).status_code, 403)

    def test_readers_see_their_scope(self):
        everything = {self.team_policy.pk, self.ads_policy.pk, self.org_policy.pk}
        self.assertEqual(self.ids(self.finance_a, "/cache-policies/"), everything)
        # a lead of search: its team's and the org-wide ones, not the ads team's
        self.assertEqual(
            self.ids(self.lead_a, "/cache-policies/"), {self.team_policy.pk, self.org_policy.pk}
        )

    def test_another_organisations_admin_cannot_read_or_set_a_policy_on_your_team(self):
        self.assertEqual(self.ids(self.admin_b, "/cache-policies/"), {self.b_policy.pk})
        self.assertEqual(self.ids(self.admin_b, "/cache-policies/", org="acme"), set())
        path = f"/cache-policies/{self.team_policy.pk}/"
        self.assert_not_found_for(
            [self.admin_b, self.lead_b],
            ("get", path),
            ("patch", path, {"enabled": False}),
            ("delete", path),
        )
        before = CachePolicy.objects.filter(org=self.org_a).count()
        for body in (
            {"org": "acme", "scope": "team", "team": "search"},  # not one of B's orgs
            {"scope": "team", "team": "ads"},  # resolved in B's own org: no such team
            {"scope": "key", "key": self.minted_a.key.pk},  # A's key: not found in B
        ):
            with self.subTest(body=body):
                response = self.post(self.admin_b, "/cache-policies/", body)
                self.assertEqual(response.status_code, 400, response.content)
        self.assertEqual(CachePolicy.objects.filter(org=self.org_a).count(), before)
        self.team_policy.refresh_from_db()
        self.assertTrue(self.team_policy.enabled)


class CachePolicyAdminTests(APITestCase):
    @classmethod
    def setUpTestData(cls):
        super().setUpTestData()
        staff = [cls.admin_a, cls.admin_b, cls.lead_a]
        get_user_model().objects.filter(pk__in=[u.pk for u in staff]).update(is_staff=True)
        cls.policy = cache_policy_create(actor=None, org=cls.org_a, scope="team", team=cls.team_a)

    def url(self, action: str, *args) -> str:
        return reverse(f"admin:teams_cachepolicy_{action}", args=args)

    def test_an_admin_adds_and_edits_a_policy_through_the_admin_audited(self):
        client = self.client_for(self.admin_a)
        response = client.post(
            self.url("add"),
            {"org": self.org_a.pk, "scope": "key", "key": self.minted_a.key.pk,
             "ttl_seconds": 90, "max_entry_bytes": 4096, "enabled": "on"},
        )  # fmt: skip
        self.assertEqual(response.status_code, 302, response.content[:2000])
        policy = CachePolicy.objects.get(scope="key")
        self.assertEqual((policy.ttl_seconds, policy.key), (90, self.minted_a.key))
        self.assertTrue(AuditEntry.objects.filter(action="cache_policy.created").exists())
        response = client.post(
            self.url("change", self.policy.pk),
            {"ttl_seconds": 30, "max_entry_bytes": 1024, "enabled": "on", "tools": "on"},
        )
        self.assertEqual(response.status_code, 302, response.content[:2000])
        self.policy.refresh_from_db()
        self.assertEqual((self.policy.ttl_seconds, self.policy.tools), (30, True))
        self.assertTrue(AuditEntry.objects.filter(action="cache_policy.updated").exists())

    def test_other_organisations_and_leads_cannot_change_a_policy(self):
        page = self.client_for(self.admin_b).get(self.url("change", self.policy.pk))
        self.assertEqual(page.status_code, 404)
        listing = self.client_for(self.admin_b).get(self.url("changelist"))
        self.assertEqual(listing.status_code, 200)
        self.assertNotIn(b"acme/search", listing.content)
        self.assertIn(
            b"acme/search", self.client_for(self.admin_a).get(self.url("changelist")).content
        )
        lead = self.client_for(self.lead_a).post(
            self.url("change", self.policy.pk), {"ttl_seconds": 5, "max_entry_bytes": 1024}
        )
        self.assertEqual(lead.status_code, 403)
        self.policy.refresh_from_db()
        self.assertEqual(self.policy.ttl_seconds, 3600)


@pytest.mark.django_db(transaction=True)  # the loader manages its own connection
def test_the_gateway_loads_the_policies_indexed_by_target():
    org, other = f.make_org("cache-a"), f.make_org("cache-b")
    team = f.make_team(org, "search")
    feature = f.make_feature(team, "summarize")
    key = f.make_key(team, "svc").key
    f.make_model(org, "gpt-4o-mini")
    make = partial(cache_policy_create, actor=None, org=org)
    make(scope="org", ttl_seconds=10)
    make(scope="team", team=team, enabled=False)
    make(scope="feature", feature=feature, tools=True)
    make(scope="key", key=key, max_entry_bytes=4096)
    make(scope="model", model_name="gpt-4o-mini")
    config = org_config_load(org.pk)
    policies = config.cache_policies
    assert policies[("org",)].ttl_seconds == 10
    assert not policies[("team", team.pk)].enabled
    assert policies[("feature", team.pk, "summarize")].tools
    assert policies[("key", key.pk)].max_entry_bytes == 4096
    assert ("model", "gpt-4o-mini") in policies
    assert config.cache_space == f"{org.pk}.{int(org.created_at.timestamp() * 1_000_000)}"
    assert org_config_load(other.pk).cache_policies == {}
