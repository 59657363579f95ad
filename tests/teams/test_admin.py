"""The Django admin: tenant scoping, role permissions, secrets shown once, audit of changes."""

from __future__ import annotations

import os
import re
from datetime import timedelta
from decimal import Decimal
from unittest import mock

from django.contrib.auth import get_user_model
from django.test import TestCase
from django.urls import reverse
from django.utils import timezone

from gateway.models import LLMModel, ModelGroup, Provider, Router, UsageEvent
from teams.models import (
    AuditEntry,
    Budget,
    Feature,
    Membership,
    Organization,
    Role,
    Team,
    VirtualKey,
)
from teams.services import key_authenticate
from tests import factories as f
from tests.base import TwoOrgsTestCase

SECRET_RE = re.compile(r"sk-fo-[A-Za-z0-9]{52}")


def _url(model, action: str = "changelist", *args) -> str:
    opts = model._meta
    return reverse(f"admin:{opts.app_label}_{opts.model_name}_{action}", args=args)


def _event(org, team, request_id: str) -> UsageEvent:
    now = timezone.now()
    return UsageEvent.objects.create(
        request_id=request_id,
        started_at=now,
        ended_at=now,
        org_id=org.pk,
        team_id=team.pk,
        status="ok",
        model="gpt-4o-mini",
        cost=Decimal("0.000123"),
    )


class AdminTestCase(TwoOrgsTestCase):
    @classmethod
    def setUpTestData(cls):
        super().setUpTestData()
        staff = [cls.admin_a, cls.finance_a, cls.lead_a, cls.member_a, cls.lead_a2, cls.admin_b]
        get_user_model().objects.filter(pk__in=[u.pk for u in staff]).update(is_staff=True)
        cls.provider_a = f.make_provider(cls.org_a, "sim")
        cls.provider_b = f.make_provider(cls.org_b, "globex-sim")
        cls.model_a = f.make_model(cls.org_a, "gpt-4o-mini", provider=cls.provider_a)
        cls.model_a2 = f.make_model(cls.org_a, "gpt-4o", provider=cls.provider_a)
        cls.model_b = f.make_model(cls.org_b, "globex-model", provider=cls.provider_b)
        cls.group_a = ModelGroup.objects.create(org=cls.org_a, name="pool-a")
        cls.group_b = ModelGroup.objects.create(org=cls.org_b, name="pool-b")
        cls.router_a = Router.objects.create(
            org=cls.org_a, name="smart-a", strong=cls.model_a2, weak=cls.model_a
        )
        cls.router_b = Router.objects.create(
            org=cls.org_b, name="smart-b", strong=cls.model_b, weak=cls.model_b
        )
        cls.budget_a = f.make_budget(cls.org_a, scope="team", team=cls.team_a)
        cls.budget_b = f.make_budget(cls.org_b)
        cls.event_a = _event(cls.org_a, cls.team_a, "req-a")
        cls.event_b = _event(cls.org_b, cls.team_b, "req-b")

    def pks(self, response) -> set:
        self.assertEqual(response.status_code, 200)
        return {obj.pk for obj in response.context["cl"].result_list}


class TenantScopingTests(AdminTestCase):
    def pairs(self):
        audit_a = AuditEntry.objects.filter(org=self.org_a).first()
        audit_b = AuditEntry.objects.filter(org=self.org_b).first()
        return [
            (Organization, self.org_a, self.org_b),
            (Team, self.team_a, self.team_b),
            (
                Membership,
                Membership.objects.get(user=self.admin_a),
                Membership.objects.get(user=self.admin_b),
            ),
            (Feature, self.feature_a, self.feature_b),
            (VirtualKey, self.minted_a.key, self.minted_b.key),
            (Budget, self.budget_a, self.budget_b),
            (AuditEntry, audit_a, audit_b),
            (Provider, self.provider_a, self.provider_b),
            (LLMModel, self.model_a, self.model_b),
            (ModelGroup, self.group_a, self.group_b),
            (Router, self.router_a, self.router_b),
            (UsageEvent, self.event_a, self.event_b),
        ]

    def test_staff_of_one_org_never_see_the_other_orgs_rows(self):
        self.client.force_login(self.admin_a)
        for model, mine, theirs in self.pairs():
            with self.subTest(model=model.__name__):
                pks = self.pks(self.client.get(_url(model)))
                self.assertIn(mine.pk, pks)
                self.assertNotIn(theirs.pk, pks)
                self.assertEqual(self.client.get(_url(model, "change", theirs.pk)).status_code, 404)
                self.assertEqual(self.client.get(_url(model, "change", mine.pk)).status_code, 200)

    def test_the_org_list_filter_does_not_name_other_orgs(self):
        self.client.force_login(self.admin_a)
        response = self.client.get(_url(Team))
        self.assertNotContains(response, "globex")

    def test_superusers_see_every_org(self):
        self.client.force_login(self.superuser)
        for model, mine, theirs in self.pairs():
            with self.subTest(model=model.__name__):
                self.assertTrue({mine.pk, theirs.pk} <= self.pks(self.client.get(_url(model))))

    def test_a_lead_sees_only_its_own_teams_keys(self):
        self.client.force_login(self.lead_a)
        pks = self.pks(self.client.get(_url(VirtualKey)))
        self.assertEqual(pks, {self.minted_a.key.pk})
        self.assertEqual(
            self.client.get(_url(VirtualKey, "change", self.minted_a2.key.pk)).status_code, 404
        )

    def test_only_whole_org_readers_see_the_audit_log(self):
        self.client.force_login(self.lead_a)
        self.assertEqual(self.client.get(_url(AuditEntry)).status_code, 403)
        self.client.force_login(self.finance_a)
        pks = self.pks(self.client.get(_url(AuditEntry)))
        self.assertEqual(
            pks, set(AuditEntry.objects.filter(org=self.org_a).values_list("pk", flat=True))
        )

    def test_non_staff_members_cannot_open_the_admin(self):
        self.client.force_login(self.lead_b)  # a member of globex, but not staff
        response = self.client.get(_url(VirtualKey))
        self.assertEqual(response.status_code, 302)
        self.assertIn("login", response["Location"])

    def test_foreign_key_choices_are_limited_to_what_the_user_manages(self):
        self.client.force_login(self.lead_a)
        form = self.client.get(_url(VirtualKey, "add")).context["adminform"].form
        self.assertEqual(list(form.fields["team"].queryset), [self.team_a])
        self.assertEqual(list(form.fields["default_feature"].queryset), [self.feature_a])
        self.client.force_login(self.admin_a)
        form = self.client.get(_url(Budget, "add")).context["adminform"].form
        self.assertEqual(list(form.fields["org"].queryset), [self.org_a])
        self.assertNotIn(self.model_b, form.fields["downgrade_to"].queryset)


class KeyAdminTests(AdminTestCase):
    def add_key(self, team, name: str = "web", **extra):
        data = {
            "team": team.pk,
            "name": name,
            "default_feature": "",
            "allowed_models": "gpt-4o-mini, gpt-4o",
            "rpm_limit": "60",
            "tpm_limit": "",
            "max_parallel": "",
            "expires_at_0": "",
            "expires_at_1": "",
            **extra,
        }
        return self.client.post(_url(VirtualKey, "add"), data)

    def test_minting_shows_the_secret_exactly_once(self):
        self.client.force_login(self.admin_a)
        response = self.add_key(self.team_a)
        self.assertEqual(response.status_code, 200)
        self.assertIn("no-store", response["Cache-Control"])
        secrets = SECRET_RE.findall(response.content.decode())
        self.assertEqual(len(set(secrets)), 1)
        key, error = key_authenticate(secret=secrets[0])
        self.assertEqual(error, "")
        self.assertEqual((key.name, key.team, key.created_by), ("web", self.team_a, self.admin_a))
        self.assertEqual(key.allowed_models, ["gpt-4o", "gpt-4o-mini"])
        self.assertEqual(key.rpm_limit, 60)
        for url in (_url(VirtualKey, "change", key.pk), _url(VirtualKey), _url(AuditEntry)):
            page = self.client.get(url).content.decode()
            self.assertNotIn(secrets[0], page)
            self.assertNotIn(secrets[0][-40:], page)
        entry = AuditEntry.objects.get(action="key.minted", object_id=str(key.pk))
        self.assertEqual(entry.actor, self.admin_a)
        self.assertNotIn(secrets[0], str(entry.after))

    def test_the_change_page_shows_the_lookup_prefix_but_never_a_digest(self):
        self.client.force_login(self.admin_a)
        secret_row = self.minted_a.key.current_secret()
        page = self.client.get(_url(VirtualKey, "change", self.minted_a.key.pk)).content.decode()
        self.assertIn(f"sk-fo-{secret_row.lookup}", page)
        self.assertNotIn(secret_row.digest, page)

    def test_a_lead_cannot_mint_for_another_team(self):
        self.client.force_login(self.lead_a)
        keys = VirtualKey.objects.count()
        response = self.add_key(self.team_a2)
        self.assertEqual(response.status_code, 200)
        self.assertTrue(response.context["adminform"].form.errors)
        self.assertFalse(SECRET_RE.search(response.content.decode()))
        self.assertEqual(VirtualKey.objects.count(), keys)
        self.assertEqual(self.add_key(self.team_a).status_code, 200)  # its own team is fine
        self.assertEqual(VirtualKey.objects.count(), keys + 1)

    def test_members_and_finance_cannot_mint(self):
        for user in (self.member_a, self.finance_a):
            self.client.force_login(user)
            with self.subTest(user=user.username):
                self.assertEqual(self.client.get(_url(VirtualKey, "add")).status_code, 403)
                self.assertEqual(self.add_key(self.team_a).status_code, 403)

    def test_revoke_action(self):
        self.client.force_login(self.admin_a)
        key = self.minted_a.key
        response = self.client.post(
            _url(VirtualKey), {"action": "revoke", "_selected_action": [key.pk]}
        )
        self.assertEqual(response.status_code, 302)
        key.refresh_from_db()
        self.assertIsNotNone(key.revoked_at)
        self.assertEqual(key_authenticate(secret=self.minted_a.secret), (None, "key_revoked"))
        self.assertTrue(
            AuditEntry.objects.filter(
                action="key.revoked", actor=self.admin_a, object_id=str(key.pk)
            ).exists()
        )

    def test_rotate_action_shows_the_new_secret_once_and_the_old_keeps_its_grace(self):
        self.client.force_login(self.lead_a)
        response = self.client.post(
            _url(VirtualKey), {"action": "rotate", "_selected_action": [self.minted_a.key.pk]}
        )
        self.assertEqual(response.status_code, 200)
        new = set(SECRET_RE.findall(response.content.decode()))
        self.assertEqual(len(new), 1)
        new_secret = new.pop()
        self.assertNotEqual(new_secret, self.minted_a.secret)
        self.assertEqual(key_authenticate(secret=new_secret)[1], "")
        self.assertEqual(key_authenticate(secret=self.minted_a.secret)[1], "")  # grace period
        page = self.client.get(_url(VirtualKey, "change", self.minted_a.key.pk)).content.decode()
        self.assertNotIn(new_secret, page)

    def test_actions_do_not_reach_other_teams_keys(self):
        self.client.force_login(self.lead_a)
        other = self.minted_a2.key
        self.client.post(_url(VirtualKey), {"action": "revoke", "_selected_action": [other.pk]})
        other.refresh_from_db()
        self.assertIsNone(other.revoked_at)

    def test_editing_a_key_is_audited(self):
        self.client.force_login(self.admin_a)
        key = self.minted_a.key
        data = {
            "name": "renamed",
            "default_feature": "",
            "allowed_models": "",
            "rpm_limit": "5",
            "tpm_limit": "",
            "max_parallel": "",
            "expires_at_0": "",
            "expires_at_1": "",
            "secrets-TOTAL_FORMS": "1",
            "secrets-INITIAL_FORMS": "1",
            "secrets-MIN_NUM_FORMS": "0",
            "secrets-MAX_NUM_FORMS": "0",
            "secrets-0-id": key.current_secret().pk,
            "secrets-0-key": key.pk,
        }
        response = self.client.post(_url(VirtualKey, "change", key.pk), data)
        self.assertEqual(
            response.status_code,
            302,
            getattr(response, "context", None) and response.context["adminform"].form.errors,
        )
        key.refresh_from_db()
        self.assertEqual((key.name, key.rpm_limit), ("renamed", 5))
        entry = AuditEntry.objects.get(action="key.updated", object_id=str(key.pk))
        self.assertEqual((entry.before["name"], entry.after["name"]), ("search-svc", "renamed"))

    def test_keys_cannot_be_deleted_only_revoked(self):
        self.client.force_login(self.admin_a)
        url = _url(VirtualKey, "delete", self.minted_a.key.pk)
        self.assertEqual(self.client.get(url).status_code, 403)


class ControlPlaneAdminTests(AdminTestCase):
    def test_team_changes_are_audited_with_before_and_after(self):
        self.client.force_login(self.admin_a)
        response = self.client.post(_url(Team, "change", self.team_a.pk), {"name": "Search & Rank"})
        self.assertEqual(response.status_code, 302)
        entry = AuditEntry.objects.get(action="team.updated")
        self.assertEqual(entry.actor, self.admin_a)
        self.assertEqual((entry.before["name"], entry.after["name"]), ("Search", "Search & Rank"))

    def test_team_limits_are_edited_in_the_admin_and_audited(self):
        self.client.force_login(self.admin_a)
        url = _url(Team, "change", self.team_a.pk)
        data = {"name": "Search", "rpm_limit": "600", "tpm_limit": "", "max_parallel": "4"}
        self.assertEqual(self.client.post(url, data).status_code, 302)
        self.team_a.refresh_from_db()
        self.assertEqual(
            (self.team_a.rpm_limit, self.team_a.tpm_limit, self.team_a.max_parallel),
            (600, None, 4),
        )
        entry = AuditEntry.objects.get(action="team.updated")
        self.assertEqual((entry.before["rpm_limit"], entry.after["rpm_limit"]), (None, 600))
        listing = self.client.get(_url(Team))
        self.assertContains(listing, "600")

    def test_a_zero_or_negative_team_limit_is_a_form_error(self):
        self.client.force_login(self.admin_a)
        url = _url(Team, "change", self.team_a.pk)
        response = self.client.post(url, {"name": "Search", "rpm_limit": "0", "max_parallel": "-1"})
        self.assertEqual(response.status_code, 200)
        errors = response.context["adminform"].form.errors
        self.assertEqual(set(errors), {"rpm_limit", "max_parallel"})
        self.team_a.refresh_from_db()
        self.assertIsNone(self.team_a.rpm_limit)

    def test_a_lead_cannot_change_teams_or_budgets(self):
        self.client.force_login(self.lead_a)
        self.assertEqual(
            self.client.post(_url(Team, "change", self.team_a.pk), {"name": "x"}).status_code, 403
        )
        url = _url(Budget, "change", self.budget_a.pk)
        self.assertEqual(self.client.get(url).status_code, 200)  # it may read its team's budget
        self.assertEqual(self.client.post(url, {"limit_usd": "1000000"}).status_code, 403)
        self.budget_a.refresh_from_db()
        self.assertEqual(self.budget_a.limit_usd, Decimal("100"))

    def test_finance_changes_a_budget(self):
        self.client.force_login(self.finance_a)
        data = {
            "scope": "team",
            "team": self.team_a.pk,
            "feature": "",
            "key": "",
            "period": "month",
            "limit_usd": "250.50",
            "action": "alert",
            "downgrade_to": "",
            "alert_thresholds": "80, 100",
            "recipients": "fin@acme.test",
            "fail_open": "on",
        }
        response = self.client.post(_url(Budget, "change", self.budget_a.pk), data)
        self.assertEqual(response.status_code, 302)
        self.budget_a.refresh_from_db()
        self.assertEqual(self.budget_a.limit_usd, Decimal("250.50"))
        self.assertTrue(self.budget_a.fail_open)
        self.assertEqual(self.budget_a.alert_thresholds, [80, 100])
        self.assertEqual(self.budget_a.recipients, ["fin@acme.test"])
        entry = AuditEntry.objects.get(action="budget.updated")
        self.assertEqual(Decimal(entry.before["limit_usd"]), Decimal("100"))
        self.assertEqual((entry.before["fail_open"], entry.after["fail_open"]), (False, True))

    def test_adding_a_feature_budget_fills_in_its_team(self):
        self.client.force_login(self.admin_a)
        data = {
            "org": self.org_a.pk,
            "scope": "feature",
            "team": "",
            "feature": self.feature_a.pk,
            "key": "",
            "period": "day",
            "limit_usd": "5",
            "action": "downgrade",
            "downgrade_to": self.model_a.pk,
            "alert_thresholds": "50, 100",
            "recipients": "",
        }
        self.assertEqual(self.client.post(_url(Budget, "add"), data).status_code, 302)
        budget = Budget.objects.get(scope="feature")
        self.assertEqual(
            (budget.team, budget.feature, budget.downgrade_to),
            (self.team_a, self.feature_a, self.model_a),
        )
        self.assertTrue(
            AuditEntry.objects.filter(action="budget.created", actor=self.admin_a).exists()
        )
        # another organisation's feature is not a valid choice
        data.update(feature=self.feature_b.pk, period="week")
        response = self.client.post(_url(Budget, "add"), data)
        self.assertEqual(response.status_code, 200)
        self.assertIn("feature", response.context["adminform"].form.errors)

    def test_adding_a_member_by_email_creates_the_user(self):
        self.client.force_login(self.admin_a)
        data = {
            "username": "new@acme.test",
            "org": self.org_a.pk,
            "team": self.team_a.pk,
            "role": "member",
        }
        self.assertEqual(self.client.post(_url(Membership, "add"), data).status_code, 302)
        membership = Membership.objects.get(user__username="new@acme.test")
        self.assertEqual((membership.role, membership.team), (Role.MEMBER, self.team_a))
        self.assertFalse(membership.user.has_usable_password())
        self.assertTrue(
            AuditEntry.objects.filter(action="member.added", actor=self.admin_a).exists()
        )
        # a duplicate is a form error, not a crash
        response = self.client.post(_url(Membership, "add"), data)
        self.assertEqual(response.status_code, 200)
        self.assertContains(response, "already has a role")

    def test_unclaimed_filter_and_claim_action(self):
        unclaimed = Feature.objects.create(team=self.team_a, slug="from-traffic", claimed=False)
        self.client.force_login(self.lead_a)
        pks = self.pks(self.client.get(_url(Feature), {"status": "unclaimed"}))
        self.assertEqual(pks, {unclaimed.pk})
        response = self.client.post(
            _url(Feature), {"action": "claim", "_selected_action": [unclaimed.pk]}
        )
        self.assertEqual(response.status_code, 302)
        unclaimed.refresh_from_db()
        self.assertTrue(unclaimed.claimed)
        self.assertTrue(
            AuditEntry.objects.filter(action="feature.updated", actor=self.lead_a).exists()
        )

    def test_deleting_a_team_with_usable_keys_is_refused_with_a_message(self):
        self.client.force_login(self.admin_a)
        response = self.client.post(
            _url(Team, "delete", self.team_a.pk), {"post": "yes"}, follow=True
        )
        self.assertContains(response, "keys before deleting it")
        self.assertTrue(Team.objects.filter(pk=self.team_a.pk).exists())

    def test_audit_log_is_read_only(self):
        self.client.force_login(self.admin_a)
        entry = AuditEntry.objects.filter(org=self.org_a).first()
        self.assertEqual(self.client.get(_url(AuditEntry, "add")).status_code, 403)
        self.assertEqual(
            self.client.post(_url(AuditEntry, "change", entry.pk), {}).status_code, 403
        )
        self.assertEqual(self.client.get(_url(AuditEntry, "delete", entry.pk)).status_code, 403)


class GatewayAdminTests(AdminTestCase):
    def test_providers_never_show_a_credential_value(self):
        self.provider_a.api_key_env = "FINOPS_TEST_PROVIDER_KEY"
        self.provider_a.save()
        with mock.patch.dict(os.environ, {"FINOPS_TEST_PROVIDER_KEY": "sk-upstream-very-secret"}):
            self.client.force_login(self.admin_a)
            for url in (_url(Provider), _url(Provider, "change", self.provider_a.pk)):
                response = self.client.get(url)
                self.assertContains(response, "FINOPS_TEST_PROVIDER_KEY")
                self.assertNotContains(response, "sk-upstream-very-secret")

    def test_a_price_change_adds_a_row_and_keeps_history(self):
        self.client.force_login(self.admin_a)
        old = self.model_a.prices.get()
        start = timezone.localtime(timezone.now() + timedelta(days=1))
        data = {
            "provider": self.provider_a.pk,
            "upstream_model": "gpt-4o-mini",
            "mode": "chat",
            "context_window": "",
            "max_output_tokens": "",
            "active": "on",
            "prices-TOTAL_FORMS": "1",
            "prices-INITIAL_FORMS": "1",
            "prices-MIN_NUM_FORMS": "0",
            "prices-MAX_NUM_FORMS": "1000",
            "prices-0-id": old.pk,
            "prices-0-model": self.model_a.pk,
            "prices-2-TOTAL_FORMS": "1",
            "prices-2-INITIAL_FORMS": "0",
            "prices-2-MIN_NUM_FORMS": "0",
            "prices-2-MAX_NUM_FORMS": "1",
            "prices-2-0-model": self.model_a.pk,
            "prices-2-0-effective_from_0": start.strftime("%Y-%m-%d"),
            "prices-2-0-effective_from_1": start.strftime("%H:%M:%S"),
            "prices-2-0-input_usd_per_mtok": "0.10",
            "prices-2-0-output_usd_per_mtok": "0.40",
        }
        response = self.client.post(_url(LLMModel, "change", self.model_a.pk), data)
        self.assertEqual(response.status_code, 302)
        self.assertEqual(self.model_a.prices.count(), 2)
        old.refresh_from_db()
        self.assertEqual(old.input_usd_per_mtok, Decimal("0.15"))
        self.assertEqual(self.model_a.price_at().input_usd_per_mtok, Decimal("0.15"))
        later = self.model_a.price_at(start + timedelta(seconds=1))
        self.assertEqual((later.input_usd_per_mtok, later.source), (Decimal("0.10"), "admin"))
        self.assertTrue(
            AuditEntry.objects.filter(action="model.price_added", actor=self.admin_a).exists()
        )

    def test_only_org_admins_change_the_gateway_config(self):
        self.client.force_login(self.lead_a)
        self.assertEqual(
            self.client.get(_url(Provider, "change", self.provider_a.pk)).status_code, 200
        )
        self.assertEqual(self.client.get(_url(Provider, "add")).status_code, 403)
        response = self.client.post(
            _url(Provider, "change", self.provider_a.pk),
            {"slug": "sim", "kind": "openai", "base_url": "http://evil.test/v1"},
        )
        self.assertEqual(response.status_code, 403)
        self.provider_a.refresh_from_db()
        self.assertEqual(self.provider_a.base_url, "http://127.0.0.1:9100/v1")

    def test_a_group_is_created_with_members_of_its_own_org_only(self):
        self.client.force_login(self.superuser)
        data = {
            "org": self.org_a.pk,
            "name": "pool",
            "strategy": "weighted",
            "members-TOTAL_FORMS": "1",
            "members-INITIAL_FORMS": "0",
            "members-MIN_NUM_FORMS": "0",
            "members-MAX_NUM_FORMS": "1000",
            "members-0-model": self.model_b.pk,
            "members-0-weight": "1",
            "fallback_links-TOTAL_FORMS": "0",
            "fallback_links-INITIAL_FORMS": "0",
            "fallback_links-MIN_NUM_FORMS": "0",
            "fallback_links-MAX_NUM_FORMS": "1000",
        }
        response = self.client.post(_url(ModelGroup, "add"), data)
        self.assertEqual(response.status_code, 200)
        self.assertContains(response, "belongs to another organisation")
        data["members-0-model"] = self.model_a.pk
        self.assertEqual(self.client.post(_url(ModelGroup, "add"), data).status_code, 302)
        group = ModelGroup.objects.get(org=self.org_a, name="pool")
        self.assertEqual([m.model for m in group.members.all()], [self.model_a])
        entry = AuditEntry.objects.get(action="group.created", object_id=str(group.pk))
        self.assertEqual(entry.after["members"], [["gpt-4o-mini", 1]])

    def test_the_ledger_is_read_only(self):
        self.client.force_login(self.admin_a)
        self.assertEqual(self.client.get(_url(UsageEvent, "add")).status_code, 403)
        url = _url(UsageEvent, "change", self.event_a.pk)
        self.assertEqual(self.client.get(url).status_code, 200)
        self.assertEqual(self.client.post(url, {"status": "error"}).status_code, 403)
        self.assertEqual(
            self.client.get(_url(UsageEvent, "delete", self.event_a.pk)).status_code, 403
        )

    def test_a_lead_sees_its_teams_usage_only(self):
        other = _event(self.org_a, self.team_a2, "req-a2")
        self.client.force_login(self.lead_a)
        pks = self.pks(self.client.get(_url(UsageEvent)))
        self.assertEqual(pks, {self.event_a.pk})
        self.assertNotIn(other.pk, pks)


class AdminPagesSmokeTests(AdminTestCase):
    def test_every_admin_page_renders_for_a_superuser_and_an_org_admin(self):
        from django.contrib import admin as django_admin
        from django.utils import timezone

        from gateway.models import Batch
        from teams.cache_services import cache_policy_create

        ours = [m for m in django_admin.site._registry if m._meta.app_label in ("teams", "gateway")]
        self.assertEqual(
            {m.__name__ for m in ours},
            {
                "Organization", "Team", "Membership", "Feature", "VirtualKey", "Budget",
                "AuditEntry", "Provider", "LLMModel", "ModelGroup", "Router", "UsageEvent",
                "CachePolicy", "Batch",
            },
        )  # fmt: skip
        cache_policy_create(actor=None, org=self.org_a, scope="team", team=self.team_a)
        Batch.objects.create(
            batch_id="batch_admin_smoke", api="openai", org=self.org_a,
            key_id=self.minted_a.key.pk, team_id=self.team_a.pk, endpoint="/v1/chat/completions",
            provider="sim", status="in_progress", expires_at=timezone.now() + timedelta(days=1),
        )  # fmt: skip
        for user in (self.superuser, self.admin_a):
            self.client.force_login(user)
            self.assertEqual(self.client.get(reverse("admin:index")).status_code, 200)
            for model in ours:
                with self.subTest(user=user.username, model=model.__name__):
                    self.assertEqual(self.client.get(_url(model)).status_code, 200)
                    obj = model.objects.filter(
                        pk__in=[
                            o.pk for o in self.client.get(_url(model)).context["cl"].result_list
                        ]
                    ).first()
                    self.assertEqual(
                        self.client.get(_url(model, "change", obj.pk)).status_code, 200
                    )
                    admin_obj = django_admin.site._registry[model]
                    request = self.client.get(_url(model)).wsgi_request
                    if admin_obj.has_add_permission(request):
                        self.assertEqual(self.client.get(_url(model, "add")).status_code, 200)


class FreshInstallTests(TestCase):
    def test_a_superuser_creates_the_first_organisation(self):
        root = f.make_user("root@platform.test", is_superuser=True, is_staff=True)
        self.client.force_login(root)
        self.assertEqual(self.client.get(reverse("admin:index")).status_code, 200)
        data = {"slug": "acme", "name": "Acme", "timezone": "Europe/Berlin"}
        self.assertEqual(self.client.post(_url(Organization, "add"), data).status_code, 302)
        org = Organization.objects.get(slug="acme")
        entry = AuditEntry.objects.get(action="org.created")
        self.assertEqual((entry.org, entry.actor), (org, root))

    def test_staff_without_memberships_see_nothing(self):
        self.client.force_login(f.make_user("staff@nowhere.test", is_staff=True))
        self.assertEqual(self.client.get(_url(VirtualKey)).status_code, 403)
        self.assertEqual(self.client.get(_url(Organization, "add")).status_code, 403)
