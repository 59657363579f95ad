"""An organisation's own provider keys through the API and the admin: write-only, stored
encrypted, shown as ``api_key_set`` / ``api_key_last4`` only, audited without the key, and
isolated per tenant."""

from __future__ import annotations

import json

from cryptography.fernet import Fernet
from django.contrib.auth import get_user_model
from django.test import override_settings
from django.urls import reverse

from gateway.models import Provider
from gateway.services import catalog
from gateway.services.credentials import secret_decrypt
from teams.models import AuditEntry
from tests import factories as f
from tests.teams.api_case import APITestCase

KEY = "sk-tenant-own-key-0123456789abcdWXYZ"
OTHER = "sk-tenant-next-key-9876543210zyxQRST"


@override_settings(FINOPS_ENCRYPTION_KEY=[Fernet.generate_key().decode()])
class ProviderKeyAPITests(APITestCase):
    @classmethod
    def setUpTestData(cls):
        super().setUpTestData()
        cls.provider_a = f.make_provider(cls.org_a, "own", base_url="https://api.openai.com/v1")
        cls.provider_b = f.make_provider(cls.org_b, "own", base_url="https://api.openai.com/v1")

    def url(self, provider=None) -> str:
        return f"/providers/{(provider or self.provider_a).pk}/"

    def assert_secret_absent(self, response, *secrets: str) -> None:
        for secret in secrets:
            self.assertNotIn(secret.encode(), response.content)

    def stored(self, provider=None) -> Provider:
        return Provider.objects.get(pk=(provider or self.provider_a).pk)

    def test_a_tenant_admin_sets_their_providers_key_and_no_response_returns_it(self):
        response = self.patch(self.admin_a, self.url(), {"api_key": f"  {KEY}\n"})
        self.assertEqual(response.status_code, 200, response.content)
        body = response.json()
        self.assertEqual((body["api_key_set"], body["api_key_last4"]), (True, "WXYZ"))
        self.assertNotIn("api_key", body)
        stored = self.stored()
        self.assertEqual(secret_decrypt(stored.api_key_encrypted), KEY)  # trimmed
        token = stored.api_key_encrypted
        self.assert_secret_absent(response, KEY, token)
        for user in (self.admin_a, self.finance_a, self.lead_a, self.member_a, self.superuser):
            with self.subTest(user=user.username):
                for path in ("/providers/", self.url()):
                    listed = self.get(user, path)
                    self.assertEqual(listed.status_code, 200)
                    self.assert_secret_absent(listed, KEY, token)
                    self.assertIn(b"WXYZ", listed.content)

    def test_a_provider_is_created_with_a_key_and_the_response_shows_last4_only(self):
        response = self.post(
            self.admin_a,
            "/providers/",
            {
                "slug": "mine",
                "kind": "anthropic",
                "base_url": "https://api.anthropic.com",
                "api_key": KEY,
            },
        )
        self.assertEqual(response.status_code, 201, response.content)
        self.assertEqual(response.json()["api_key_last4"], "WXYZ")
        created = Provider.objects.get(org=self.org_a, slug="mine")
        self.assert_secret_absent(response, KEY, created.api_key_encrypted)
        self.assertEqual(secret_decrypt(created.api_key_encrypted), KEY)

    def test_an_empty_key_clears_it_and_leaving_it_out_keeps_it(self):
        self.patch(self.admin_a, self.url(), {"api_key": KEY})
        kept = self.patch(self.admin_a, self.url(), {"publisher": "OpenAI"})
        self.assertTrue(kept.json()["api_key_set"])
        self.assertEqual(secret_decrypt(self.stored().api_key_encrypted), KEY)
        cleared = self.patch(self.admin_a, self.url(), {"api_key": ""})
        self.assertEqual(cleared.status_code, 200, cleared.content)
        self.assertEqual(
            (cleared.json()["api_key_set"], cleared.json()["api_key_last4"]), (False, "")
        )
        self.assertEqual(self.stored().api_key_encrypted, "")

    def test_the_audit_log_says_set_and_cleared_never_the_key(self):
        self.patch(self.admin_a, self.url(), {"api_key": KEY})
        token = self.stored().api_key_encrypted
        self.patch(self.admin_a, self.url(), {"api_key": OTHER})
        self.patch(self.admin_a, self.url(), {"api_key": ""})
        entries = list(
            AuditEntry.objects.filter(action="provider.updated", object_id=str(self.provider_a.pk))
            .order_by("id")
            .values_list("before", "after")
        )
        self.assertEqual(
            [(b["api_key"], a["api_key"]) for b, a in entries],
            [
                ("not set", "set (…WXYZ)"),
                ("set (…WXYZ)", "set (…QRST)"),
                ("set (…QRST)", "cleared"),
            ],
        )
        everything = json.dumps(list(AuditEntry.objects.values("before", "after")))
        for secret in (KEY, OTHER, token):
            self.assertNotIn(secret, everything)
        audit_page = self.get(self.admin_a, "/audit/")
        self.assertEqual(audit_page.status_code, 200)
        self.assert_secret_absent(audit_page, KEY, OTHER, token)

    def test_another_tenant_can_neither_see_nor_set_the_key(self):
        self.patch(self.admin_a, self.url(), {"api_key": KEY})
        token = self.stored().api_key_encrypted
        self.assertEqual(self.ids(self.admin_b, "/providers/"), {self.provider_b.pk})
        self.assert_not_found_for(
            [self.admin_b, self.lead_b],
            ("get", self.url()),
            ("patch", self.url(), {"api_key": OTHER}),
            ("patch", self.url(), {"api_key": ""}),
        )
        self.assertEqual(self.stored().api_key_encrypted, token)
        refused = self.post(
            self.admin_b,
            "/providers/",
            {"slug": "x", "kind": "openai", "base_url": "https://x.test/v1", "api_key": OTHER,
             "org": "acme"},
        )  # fmt: skip
        self.assertEqual(refused.status_code, 400)
        self.assertIn("org", refused.json())
        for response in (self.get(self.admin_b, "/providers/"), self.get(self.admin_b, "/audit/")):
            self.assert_secret_absent(response, KEY, token)
            self.assertNotIn(b"WXYZ", response.content)

    def test_only_org_admins_set_a_key(self):
        for user in (self.finance_a, self.lead_a, self.member_a):
            with self.subTest(user=user.username):
                response = self.patch(user, self.url(), {"api_key": KEY})
                self.assertEqual(response.status_code, 403)
        self.assertEqual(self.stored().api_key_encrypted, "")

    def test_malformed_keys_are_refused_without_being_echoed(self):
        for bad in (
            "sk-with space-inside1",
            "sk-line\nbreak-inside",
            "sk-tab\tinside-x",
            "sk-" + "x" * 600,
        ):
            with self.subTest(bad=bad[:20]):
                response = self.patch(self.admin_a, self.url(), {"api_key": bad})
                self.assertEqual(response.status_code, 400)
                self.assertIn("api_key", response.json())
                self.assertNotIn(bad.encode(), response.content)
        self.assertEqual(self.stored().api_key_encrypted, "")

    def test_a_provider_has_api_key_env_or_a_key_not_both(self):
        Provider.objects.filter(pk=self.provider_a.pk).update(api_key_env="OPENAI_API_KEY")
        for user in (self.admin_a, self.superuser):
            response = self.patch(user, self.url(), {"api_key": KEY})
            self.assertEqual(response.status_code, 400, response.content)
            message = response.json()["api_key"][0]
            self.assertIn("api_key_env", message)
            self.assertIn("api_key", message.replace("api_key_env", ""))
        created = self.post(
            self.superuser,
            "/providers/",
            {"slug": "both", "kind": "openai", "base_url": "https://api.openai.com/v1",
             "org": "acme", "api_key_env": "OPENAI_API_KEY", "api_key": KEY},
        )  # fmt: skip
        self.assertEqual(created.status_code, 400)
        self.assertFalse(Provider.objects.filter(slug="both").exists())
        # an operator may switch a provider from the variable to a key in one change
        switched = self.patch(self.superuser, self.url(), {"api_key_env": "", "api_key": KEY})
        self.assertEqual(switched.status_code, 200, switched.content)
        self.assertEqual(self.stored().api_key_env, "")

    def test_a_tenant_may_move_a_provider_that_holds_its_own_key(self):
        self.patch(self.admin_a, self.url(), {"api_key": KEY})
        moved = self.patch(self.admin_a, self.url(), {"base_url": "https://llm.acme.example/v1"})
        self.assertEqual(moved.status_code, 200, moved.content)
        self.assertEqual(secret_decrypt(self.stored().api_key_encrypted), KEY)

    def test_the_schema_marks_the_key_write_only(self):
        from io import StringIO

        from django.core.management import call_command

        out = StringIO()
        call_command("spectacular", "--format", "openapi-json", stdout=out)
        schemas = json.loads(out.getvalue())["components"]["schemas"]
        update = schemas["PatchedProviderUpdateRequest"]["properties"]
        self.assertTrue(update["api_key"]["writeOnly"])
        self.assertNotIn("api_key", schemas["Provider"]["properties"])
        self.assertIn("api_key_last4", schemas["Provider"]["properties"])


@override_settings(FINOPS_ENCRYPTION_KEY=[Fernet.generate_key().decode()])
class ProviderKeyAdminTests(APITestCase):
    @classmethod
    def setUpTestData(cls):
        super().setUpTestData()
        get_user_model().objects.filter(pk__in=[cls.admin_a.pk, cls.admin_b.pk]).update(
            is_staff=True
        )
        cls.provider_a = f.make_provider(cls.org_a, "own", base_url="https://api.openai.com/v1")
        cls.provider_b = f.make_provider(cls.org_b, "own", base_url="https://api.openai.com/v1")

    def change_url(self, provider=None) -> str:
        return reverse("admin:gateway_provider_change", args=[(provider or self.provider_a).pk])

    def form(self, **extra) -> dict:
        return {
            "kind": "openai",
            "base_url": "https://api.openai.com/v1",
            "api_version": "",
            "publisher": "",
            "invoice_issuer": "",
            **extra,
        }

    def test_the_change_page_never_shows_the_key_or_its_token(self):
        catalog.provider_update(provider=self.provider_a, actor=self.admin_a, api_key=KEY)
        token = Provider.objects.get(pk=self.provider_a.pk).api_key_encrypted
        self.client.force_login(self.admin_a)
        for url in (self.change_url(), reverse("admin:gateway_provider_changelist")):
            page = self.client.get(url)
            self.assertEqual(page.status_code, 200)
            self.assertNotContains(page, KEY)
            self.assertNotContains(page, token)
            self.assertContains(page, "WXYZ")
        page = self.client.get(self.change_url())
        self.assertContains(page, 'type="password"')
        self.assertContains(page, "leave blank to keep; the key is stored encrypted")

    def test_an_org_admin_sets_keeps_and_clears_the_key_in_the_admin(self):
        self.client.force_login(self.admin_a)
        response = self.client.post(self.change_url(), self.form(api_key=KEY))
        self.assertEqual(response.status_code, 302, response.content[:2000])
        stored = Provider.objects.get(pk=self.provider_a.pk)
        self.assertEqual(secret_decrypt(stored.api_key_encrypted), KEY)
        self.assertEqual(stored.api_key_last4, "WXYZ")
        page = self.client.get(self.change_url())
        self.assertNotContains(page, KEY)
        # blank keeps it
        self.assertEqual(
            self.client.post(self.change_url(), self.form(publisher="OpenAI")).status_code, 302
        )
        self.assertEqual(
            Provider.objects.get(pk=self.provider_a.pk).api_key_encrypted, stored.api_key_encrypted
        )
        # a bad key is refused and not typed back into the page
        bad = self.client.post(self.change_url(), self.form(api_key="sk-bad key with spaces"))
        self.assertEqual(bad.status_code, 200)
        self.assertNotContains(bad, "sk-bad key with spaces")
        # the checkbox clears it
        self.assertEqual(
            self.client.post(self.change_url(), self.form(clear_api_key="on")).status_code, 302
        )
        self.assertEqual(Provider.objects.get(pk=self.provider_a.pk).api_key_encrypted, "")
        entries = AuditEntry.objects.filter(action="provider.updated", actor=self.admin_a)
        self.assertEqual(
            [e.after["api_key"] for e in entries.order_by("id")],
            ["set (…WXYZ)", "set (…WXYZ)", "cleared"],
        )
        self.assertNotIn(KEY, json.dumps(list(entries.values("before", "after"))))

    def test_another_tenants_provider_is_a_404_in_the_admin(self):
        self.client.force_login(self.admin_b)
        self.assertEqual(self.client.get(self.change_url()).status_code, 404)
        self.assertEqual(
            self.client.post(self.change_url(), self.form(api_key=OTHER)).status_code, 404
        )
        self.assertEqual(Provider.objects.get(pk=self.provider_a.pk).api_key_encrypted, "")

    def test_an_admin_add_with_a_key_stores_it_encrypted(self):
        self.client.force_login(self.admin_a)
        response = self.client.post(
            reverse("admin:gateway_provider_add"),
            {**self.form(api_key=KEY), "org": self.org_a.pk, "slug": "added"},
        )
        self.assertEqual(response.status_code, 302, response.content[:2000])
        added = Provider.objects.get(org=self.org_a, slug="added")
        self.assertEqual(secret_decrypt(added.api_key_encrypted), KEY)
