"""A team's keys page: spend and limits per key; mint, rotate and revoke through POST forms whose
new secret is shown on that one response only; read-only for members; 404 across teams/orgs."""

from __future__ import annotations

import csv
import io
import logging
import re
from datetime import timedelta
from decimal import Decimal

from django.test import Client
from django.urls import reverse
from django.utils import timezone

from reports.services import usage_rollup
from teams.models import AuditEntry, KeySecret, VirtualKey
from teams.services import key_authenticate
from tests import factories as f
from tests.base import TwoOrgsTestCase
from tests.reports.ledger import event

SECRET_RE = re.compile(r"sk-fo-[A-Za-z0-9]{52}")


class KeysPageTests(TwoOrgsTestCase):
    @classmethod
    def setUpTestData(cls):
        super().setUpTestData()
        f.make_model(cls.org_a, "gpt-4o-mini")
        now = timezone.now()
        month_start = now.replace(day=1, hour=0, minute=0, second=1, microsecond=0)
        cls.used_at = month_start
        event(
            org=cls.org_a,
            team=cls.team_a,
            key_id=cls.minted_a.key.pk,
            started_at=month_start,
            input_cost="0.25",
            output_cost="0.05",
        )
        event(  # last month: not this month's spend
            org=cls.org_a,
            team=cls.team_a,
            key_id=cls.minted_a.key.pk,
            started_at=month_start - timedelta(days=3),
            input_cost="5",
        )
        event(org=cls.org_a, team=cls.team_a2, key_id=cls.minted_a2.key.pk, input_cost="9")
        usage_rollup()
        f.make_budget(cls.org_a, scope="team", team=cls.team_a, period="month", limit="10")
        cls.url = reverse("team-keys", args=[cls.team_a.pk])

    def _secret(self, response) -> str:
        found = SECRET_RE.findall(response.content.decode())
        self.assertEqual(len(found), 1, "exactly one secret on the page")
        return found[0]

    def test_lead_sees_own_keys_with_month_spend_limits_and_last_use(self):
        self.client.force_login(self.lead_a)
        page = self.client.get(self.url)
        self.assertEqual(page.status_code, 200)
        self.assertContains(page, "search-svc")
        self.assertNotContains(page, "ads-svc")
        self.assertContains(page, "Mint a key")
        response = self.client.get(self.url, {"format": "csv", "table": "keys"})
        self.assertTrue(response["Content-Type"].startswith("text/csv"))
        self.assertIn("attachment;", response["Content-Disposition"])
        [row] = list(csv.DictReader(io.StringIO(response.content.decode())))
        self.assertEqual(row["Key"], "search-svc")
        self.assertEqual(row["Spend this month USD"], "0.30")
        self.assertEqual(row["Status"], "active")
        hour = self.used_at.strftime("%Y-%m-%d %H:00")
        self.assertEqual(row["Last used"], f"{hour} (rollup hour)")  # no gateway record yet
        VirtualKey.objects.filter(pk=self.minted_a.key.pk).update(
            last_used_at=self.used_at + timedelta(minutes=7)
        )
        response = self.client.get(self.url, {"format": "csv", "table": "keys"})
        [row] = list(csv.DictReader(io.StringIO(response.content.decode())))
        self.assertEqual(row["Last used"], f"{self.used_at:%Y-%m-%d %H}:07 (gateway)")

    def test_budget_share_per_key(self):
        self.client.force_login(self.lead_a)
        response = self.client.get(self.url, {"format": "csv", "table": "budgets"})
        rows = {r["Key"]: r for r in csv.DictReader(io.StringIO(response.content.decode()))}
        self.assertEqual(rows["search-svc"]["Spent in window USD"], "0.30")
        self.assertEqual(rows["search-svc"]["Share of limit %"], "3.00")
        self.assertEqual(rows["whole team"]["Limit USD"], "10.00")

    def test_mint_shows_the_secret_once_and_the_key_works(self):
        self.client.force_login(self.lead_a)
        with self.assertLogs(level="DEBUG") as logs:
            logging.getLogger("tests.keys_page").debug("capture everything from here")
            response = self.client.post(
                self.url,
                {
                    "action": "mint",
                    "name": "batch-svc",
                    "rpm_limit": "60",
                    "max_parallel": "4",
                    "allowed_models": ["gpt-4o-mini"],
                    "default_feature": self.feature_a.pk,
                    "expires_at": "2099-01-01T12:00",
                },
            )
        self.assertEqual(response.status_code, 200)
        self.assertIn("no-store", response["Cache-Control"])
        secret = self._secret(response)
        self.assertFalse(any(secret in line for line in logs.output))
        key, error = key_authenticate(secret=secret)
        self.assertEqual(error, "")
        self.assertEqual((key.name, key.team, key.rpm_limit, key.max_parallel),
                         ("batch-svc", self.team_a, 60, 4))  # fmt: skip
        self.assertEqual(
            (key.allowed_models, key.default_feature), (["gpt-4o-mini"], self.feature_a)
        )
        self.assertEqual(key.expires_at.year, 2099)
        self.assertTrue(
            AuditEntry.objects.filter(action="key.minted", actor=self.lead_a, object_id=key.pk)
        )
        self.assertFalse(AuditEntry.objects.filter(after__icontains=secret[6:]).exists())
        again = self.client.get(self.url)
        self.assertContains(again, "batch-svc")
        self.assertNotContains(again, secret)
        self.assertFalse(SECRET_RE.search(again.content.decode()))

    def test_mint_form_errors_are_clear_and_create_nothing(self):
        self.client.force_login(self.admin_a)
        before = VirtualKey.objects.count()
        response = self.client.post(
            self.url,
            {"action": "mint", "name": "search-svc", "rpm_limit": "0", "expires_at": "2001-01-01"},
        )
        self.assertEqual(response.status_code, 400)
        self.assertContains(response, "already has a usable key with this name", status_code=400)
        self.assertContains(response, "greater than or equal to 1", status_code=400)
        self.assertContains(response, "Must be in the future.", status_code=400)
        self.assertEqual(VirtualKey.objects.count(), before)

    def test_rotate_shows_the_new_secret_once_and_keeps_the_old_for_the_grace(self):
        self.client.force_login(self.lead_a)
        response = self.client.post(self.url, {"action": "rotate", "key": self.minted_a.key.pk})
        self.assertEqual(response.status_code, 200)
        new = self._secret(response)
        self.assertNotEqual(new, self.minted_a.secret)
        self.assertEqual(key_authenticate(secret=new), (self.minted_a.key, ""))
        self.assertEqual(key_authenticate(secret=self.minted_a.secret), (self.minted_a.key, ""))
        later = timezone.now() + timedelta(days=2)
        self.assertEqual(key_authenticate(secret=self.minted_a.secret, now=later)[1], "key_expired")
        self.assertContains(response, "previous secret keeps working until")
        self.assertTrue(AuditEntry.objects.filter(action="key.rotated", actor=self.lead_a))
        self.assertNotContains(self.client.get(self.url), new)

    def test_rotating_another_teams_key_through_this_page_does_nothing(self):
        self.client.force_login(self.lead_a)
        response = self.client.post(self.url, {"action": "rotate", "key": self.minted_a2.key.pk})
        self.assertRedirects(response, self.url)
        self.assertEqual(KeySecret.objects.filter(key=self.minted_a2.key).count(), 1)

    def test_revoke_needs_confirmation(self):
        self.client.force_login(self.lead_a)
        key = self.minted_a.key
        confirm = self.client.get(self.url, {"revoke": key.pk})
        self.assertContains(confirm, f"Revoke key {key.name}?")
        response = self.client.post(self.url, {"action": "revoke", "key": key.pk})
        self.assertEqual(response.status_code, 302)
        key.refresh_from_db()
        self.assertIsNone(key.revoked_at)
        followed = self.client.get(response["Location"])
        self.assertContains(followed, "Tick the box to confirm the revocation.")
        response = self.client.post(self.url, {"action": "revoke", "key": key.pk, "confirm": "on"})
        self.assertRedirects(response, self.url)
        self.assertEqual(key_authenticate(secret=self.minted_a.secret), (None, "key_revoked"))
        self.assertTrue(AuditEntry.objects.filter(action="key.revoked", actor=self.lead_a))
        page = self.client.get(self.url)
        self.assertContains(page, "revoked")

    def test_member_and_finance_read_but_cannot_change(self):
        for user in (self.member_a, self.finance_a):
            self.client.force_login(user)
            page = self.client.get(self.url)
            self.assertContains(page, "search-svc")
            self.assertNotContains(page, "Mint a key")
            self.assertNotContains(page, 'value="rotate"')
            before = VirtualKey.objects.count()
            for data in (
                {"action": "mint", "name": "sneaky"},
                {"action": "rotate", "key": self.minted_a.key.pk},
                {"action": "revoke", "key": self.minted_a.key.pk, "confirm": "on"},
            ):
                self.assertEqual(self.client.post(self.url, data).status_code, 403)
            self.assertEqual(VirtualKey.objects.count(), before)
            self.assertEqual(KeySecret.objects.filter(key=self.minted_a.key).count(), 1)
            self.assertIsNone(VirtualKey.objects.get(pk=self.minted_a.key.pk).revoked_at)

    def test_org_admin_manages_any_team(self):
        self.client.force_login(self.admin_a)
        url = reverse("team-keys", args=[self.team_a2.pk])
        response = self.client.post(url, {"action": "mint", "name": "admin-made"})
        self.assertEqual(response.status_code, 200)
        self.assertEqual(key_authenticate(secret=self._secret(response))[0].team, self.team_a2)

    def test_other_teams_lead_and_other_org_get_404(self):
        for user in (self.lead_a2, self.admin_b, self.lead_b, self.outsider):
            self.client.force_login(user)
            self.assertEqual(self.client.get(self.url).status_code, 404)
            csv_params = {"format": "csv", "table": "keys"}
            self.assertEqual(self.client.get(self.url, csv_params).status_code, 404)
            response = self.client.post(self.url, {"action": "mint", "name": "x"})
            self.assertEqual(response.status_code, 404)
        self.client.logout()
        self.assertEqual(self.client.get(self.url).status_code, 302)

    def test_posts_are_csrf_protected(self):
        client = Client(enforce_csrf_checks=True)
        client.force_login(self.lead_a)
        before = VirtualKey.objects.count()
        response = client.post(self.url, {"action": "mint", "name": "no-token"})
        self.assertEqual(response.status_code, 403)
        self.assertEqual(VirtualKey.objects.count(), before)
        page = client.get(self.url)
        self.assertContains(page, "csrfmiddlewaretoken")

    def test_home_links_to_the_keys_and_catalog_pages(self):
        self.client.force_login(self.lead_a)
        home = self.client.get(reverse("home"))
        self.assertContains(home, self.url)
        self.assertContains(home, reverse("reports:catalog", args=[self.org_a.pk]))
        self.assertNotContains(home, reverse("team-keys", args=[self.team_a2.pk]))

    def test_spend_is_decimal_exact(self):
        self.client.force_login(self.lead_a)
        page = self.client.get(self.url)
        rows = page.context["page"].keys_table.rows
        self.assertEqual(Decimal(rows[0]["spend_month"]), Decimal("0.30"))
