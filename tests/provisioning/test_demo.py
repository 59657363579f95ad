"""The demo organisation: idempotent config, a working login, and a fresh key every run."""

from __future__ import annotations

from io import StringIO

from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import TestCase, override_settings

from gateway.models import ModelPrice, Provider
from provisioning.demo import DEMO_PASSWORD, DEMO_USERNAME, demo_load
from teams.models import AuditEntry, Membership, Role, VirtualKey
from teams.services import key_authenticate


class DemoTests(TestCase):
    def test_loading_twice_gives_a_new_secret_and_revokes_the_old_one(self):
        first = demo_load()
        prices = ModelPrice.objects.count()
        second = demo_load()
        self.assertNotEqual(first.key_secret, second.key_secret)
        self.assertEqual(key_authenticate(secret=first.key_secret), (None, "key_revoked"))
        key, error = key_authenticate(secret=second.key_secret)
        self.assertEqual((error, key.name, key.team.slug), ("", "demo", "search"))
        self.assertEqual(second.config_changes, 0)
        self.assertEqual(ModelPrice.objects.count(), prices)
        self.assertEqual(VirtualKey.objects.filter(name="demo", revoked_at__isnull=True).count(), 1)

    def test_demo_login_is_an_org_admin_with_staff_access_but_not_a_superuser(self):
        info = demo_load()
        self.assertEqual((info.org_slug, info.org), ("acme", "acme"))
        self.assertEqual((info.username, info.password), (DEMO_USERNAME, DEMO_PASSWORD))
        self.assertTrue(self.client.login(username=info.username, password=info.password))
        membership = Membership.objects.get(user__username=DEMO_USERNAME)
        self.assertEqual(
            (membership.role, membership.team, membership.org.slug), (Role.ADMIN, None, "acme")
        )
        self.assertTrue(membership.user.is_staff)
        self.assertFalse(membership.user.is_superuser)
        self.assertEqual(self.client.get("/admin/teams/virtualkey/").status_code, 200)

    def test_sim_url_is_substituted_with_or_without_v1(self):
        demo_load(sim_base_url="http://127.0.0.1:9555/v1")
        urls = dict(Provider.objects.values_list("slug", "base_url"))
        self.assertEqual(
            urls, {"sim": "http://127.0.0.1:9555/v1", "sim-anthropic": "http://127.0.0.1:9555"}
        )
        demo_load(sim_base_url="http://127.0.0.1:9556")
        self.assertEqual(Provider.objects.get(slug="sim").base_url, "http://127.0.0.1:9556/v1")

    def test_secret_never_reaches_the_audit_log(self):
        info = demo_load()
        for entry in AuditEntry.objects.all():
            self.assertNotIn(info.key_secret, f"{entry.before} {entry.after} {entry.object_repr}")

    def test_command_prints_the_login_and_the_key_last(self):
        out = StringIO()
        call_command("load_demo", "--force", stdout=out)
        lines = out.getvalue().strip().split("\n")
        self.assertIn(DEMO_USERNAME, out.getvalue())
        self.assertEqual(key_authenticate(secret=lines[-1])[1], "")
        self.assertEqual(sum(lines[-1] in line for line in lines), 1)

    @override_settings(DEBUG=False)
    def test_command_refuses_with_debug_off_unless_forced(self):
        with self.assertRaises(CommandError):
            call_command("load_demo", stdout=StringIO())
        self.assertFalse(VirtualKey.objects.exists())
