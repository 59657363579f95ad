"""A provider's admin-API credential (usage and cost reports, for invoice reconciliation), held
like the inference one: an operator's allowlisted variable (``admin_api_key_env``) or the
organisation's own key, write-only and encrypted (``admin_api_key``), sent to
``admin_base_url`` (blank: ``base_url``). Never returned, audited, shown or logged; never the
inference key; a tenant can neither name a server variable nor move a provider that holds one."""

from __future__ import annotations

import json
import logging
import os
from contextlib import contextmanager
from io import StringIO
from unittest import mock

from cryptography.fernet import Fernet
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import TestCase, override_settings
from django.urls import reverse

from gateway.models import Provider
from gateway.services import catalog
from gateway.services.credentials import (
    provider_admin_base_url,
    provider_admin_credential,
    secret_decrypt,
    secret_encrypt,
)
from provisioning.config import ConfigError, config_apply, config_load
from teams.models import AuditEntry
from tests import factories as f
from tests.teams.api_case import APITestCase

OLD = Fernet.generate_key().decode()
NEW = Fernet.generate_key().decode()
ADMIN_KEY = "sk-admin-org-key-0123456789abcdWXYZ"
OTHER_ADMIN = "sk-admin-next-key-9876543210zyxQRST"
INFERENCE_KEY = "sk-inference-key-0123456789abcdINFR"
ENV_VALUE = "sk-admin-from-the-operators-env-9999"
PEPPER = "pepper-value-never-to-be-sent-0000"


@contextmanager
def captured_logs():
    """Every record any logger emits meanwhile, at any level, as text."""
    stream = StringIO()
    handler = logging.StreamHandler(stream)
    handler.setLevel(logging.DEBUG)
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield stream
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


def _provider(org, slug="op", **fields) -> Provider:
    return Provider.objects.create(
        org=org, slug=slug, kind="openai", base_url="https://api.openai.com/v1", **fields
    )


# --- what the reconciliation job reads ------------------------------------------------------


@override_settings(FINOPS_ENCRYPTION_KEY=[NEW], FINOPS_PROVIDER_KEY_ENVS=["OPENAI_*"])
class AdminCredentialReadTests(TestCase):
    @classmethod
    def setUpTestData(cls):
        cls.org = f.make_org("acme")

    def test_the_stored_admin_key_is_returned_decrypted(self):
        provider = _provider(self.org)
        catalog.provider_update(provider=provider, actor=None, admin_api_key=ADMIN_KEY)
        provider.refresh_from_db()
        self.assertNotIn(ADMIN_KEY, provider.admin_api_key_encrypted)
        self.assertEqual(provider_admin_credential(provider), ADMIN_KEY)

    def test_an_allowed_variable_is_read_when_no_key_is_stored(self):
        provider = _provider(self.org, admin_api_key_env="OPENAI_ADMIN_KEY")
        with mock.patch.dict(os.environ, {"OPENAI_ADMIN_KEY": ENV_VALUE}):
            self.assertEqual(provider_admin_credential(provider), ENV_VALUE)
        self.assertEqual(provider_admin_credential(provider), "")  # unset: nothing

    def test_a_refused_variable_saved_before_the_rule_yields_nothing_and_a_clean_warning(self):
        # written past the model's checks, as a row from before the rule would be
        provider = _provider(self.org)
        for name in ("FINOPS_KEY_PEPPER", "DATABASE_URL", "GROQ_KEY"):
            Provider.objects.filter(pk=provider.pk).update(admin_api_key_env=name)
            provider.refresh_from_db()
            env = {name: PEPPER}
            with (
                self.subTest(name=name),
                mock.patch.dict(os.environ, env),
                self.assertLogs("gateway.services.providers", logging.WARNING) as logs,
            ):
                self.assertEqual(provider_admin_credential(provider), "")
            text = "\n".join(logs.output)
            self.assertIn(name, text)
            self.assertIn("admin credential", text)
            self.assertNotIn(PEPPER, text)
        with override_settings(FINOPS_PROVIDER_KEY_ENVS=[]):  # the list emptied since
            Provider.objects.filter(pk=provider.pk).update(admin_api_key_env="OPENAI_ADMIN_KEY")
            provider.refresh_from_db()
            with mock.patch.dict(os.environ, {"OPENAI_ADMIN_KEY": ENV_VALUE}):
                self.assertEqual(provider_admin_credential(provider), "")

    def test_a_token_no_key_decrypts_yields_nothing_and_a_warning_naming_the_provider(self):
        with override_settings(FINOPS_ENCRYPTION_KEY=[OLD]):
            foreign = secret_encrypt(ADMIN_KEY)
        provider = _provider(self.org, slug="lost")
        Provider.objects.filter(pk=provider.pk).update(admin_api_key_encrypted=foreign)
        provider.refresh_from_db()
        with self.assertLogs("gateway.services.credentials", logging.WARNING) as logs:
            self.assertEqual(provider_admin_credential(provider), "")
        text = "\n".join(logs.output)
        self.assertIn("lost", text)
        self.assertIn("admin API key", text)
        for secret in (foreign, ADMIN_KEY):
            self.assertNotIn(secret, text)

    def test_it_never_falls_back_to_the_inference_key(self):
        own = _provider(self.org, slug="own")
        catalog.provider_update(provider=own, actor=None, api_key=INFERENCE_KEY)
        operators = _provider(self.org, slug="env", api_key_env="OPENAI_API_KEY")
        with mock.patch.dict(os.environ, {"OPENAI_API_KEY": INFERENCE_KEY}):
            for provider in (own, operators):
                provider.refresh_from_db()
                with self.subTest(provider=provider.slug):
                    self.assertEqual(provider_admin_credential(provider), "")
            catalog.provider_update(provider=own, actor=None, admin_api_key=ADMIN_KEY)
            own.refresh_from_db()
            self.assertEqual(provider_admin_credential(own), ADMIN_KEY)

    def test_the_admin_base_url_defaults_to_the_providers_own(self):
        provider = _provider(self.org)
        self.assertEqual(provider_admin_base_url(provider), "https://api.openai.com/v1")
        provider.admin_base_url = "https://admin.openai.com/v1"
        self.assertEqual(provider_admin_base_url(provider), "https://admin.openai.com/v1")


# --- the REST API ---------------------------------------------------------------------------


@override_settings(
    FINOPS_ENCRYPTION_KEY=[Fernet.generate_key().decode()],
    FINOPS_PROVIDER_KEY_ENVS=["OPENAI_*", "ANTHROPIC_*"],
    FINOPS_PROVIDER_HOSTS=["*"],
)
class AdminKeyAPITests(APITestCase):
    @classmethod
    def setUpTestData(cls):
        super().setUpTestData()
        cls.provider_a = f.make_provider(cls.org_a, "own", base_url="https://api.openai.com/v1")
        cls.provider_b = f.make_provider(cls.org_b, "own", base_url="https://api.openai.com/v1")

    def url(self, provider=None) -> str:
        return f"/providers/{(provider or self.provider_a).pk}/"

    def stored(self, provider=None) -> Provider:
        return Provider.objects.get(pk=(provider or self.provider_a).pk)

    def assert_secret_absent(self, response, *secrets: str) -> None:
        for secret in secrets:
            self.assertNotIn(secret.encode(), response.content)

    def body(self, **extra) -> dict:
        return {"slug": "new", "kind": "openai", "base_url": "https://api.openai.com/v1", **extra}

    def test_a_tenant_admin_sets_the_admin_key_and_no_response_returns_it(self):
        response = self.patch(self.admin_a, self.url(), {"admin_api_key": f" {ADMIN_KEY}\n"})
        self.assertEqual(response.status_code, 200, response.content)
        body = response.json()
        self.assertEqual((body["admin_api_key_set"], body["admin_api_key_last4"]), (True, "WXYZ"))
        self.assertNotIn("admin_api_key", body)
        self.assertEqual((body["api_key_set"], body["api_key_last4"]), (False, ""))  # separate
        stored = self.stored()
        self.assertEqual(secret_decrypt(stored.admin_api_key_encrypted), ADMIN_KEY)  # trimmed
        self.assertEqual(stored.api_key_encrypted, "")
        token = stored.admin_api_key_encrypted
        self.assert_secret_absent(response, ADMIN_KEY, token)
        for user in (self.admin_a, self.finance_a, self.lead_a, self.member_a, self.superuser):
            for path in ("/providers/", self.url()):
                with self.subTest(user=user.username, path=path):
                    listed = self.get(user, path)
                    self.assertEqual(listed.status_code, 200)
                    self.assert_secret_absent(listed, ADMIN_KEY, token)
                    self.assertIn(b"WXYZ", listed.content)

    def test_a_provider_is_created_with_an_admin_key_and_admin_base_url(self):
        response = self.post(
            self.admin_a,
            "/providers/",
            self.body(admin_api_key=ADMIN_KEY, admin_base_url="https://admin.acme.example/v1"),
        )
        self.assertEqual(response.status_code, 201, response.content)
        body = response.json()
        self.assertEqual(body["admin_api_key_last4"], "WXYZ")
        self.assertEqual(body["admin_base_url"], "https://admin.acme.example/v1")
        created = Provider.objects.get(org=self.org_a, slug="new")
        self.assert_secret_absent(response, ADMIN_KEY, created.admin_api_key_encrypted)
        self.assertEqual(provider_admin_credential(created), ADMIN_KEY)
        self.assertEqual(provider_admin_base_url(created), "https://admin.acme.example/v1")
        entry = AuditEntry.objects.get(action="provider.created", object_id=str(created.pk))
        self.assertEqual(entry.after["admin_api_key"], "set (…WXYZ)")

    def test_an_empty_admin_key_clears_it_and_leaving_it_out_keeps_it(self):
        self.patch(self.admin_a, self.url(), {"admin_api_key": ADMIN_KEY})
        kept = self.patch(self.admin_a, self.url(), {"publisher": "OpenAI", "api_key": ""})
        self.assertTrue(kept.json()["admin_api_key_set"])
        self.assertEqual(secret_decrypt(self.stored().admin_api_key_encrypted), ADMIN_KEY)
        cleared = self.patch(self.admin_a, self.url(), {"admin_api_key": ""})
        self.assertEqual(cleared.status_code, 200, cleared.content)
        body = cleared.json()
        self.assertEqual((body["admin_api_key_set"], body["admin_api_key_last4"]), (False, ""))
        self.assertEqual(self.stored().admin_api_key_encrypted, "")

    def test_the_audit_log_says_set_changed_and_cleared_never_the_key(self):
        same_last4 = "sk-admin-third-key-5555555555WXYZ"
        tokens = []
        for key in (ADMIN_KEY, OTHER_ADMIN, OTHER_ADMIN, same_last4, ""):
            response = self.patch(self.admin_a, self.url(), {"admin_api_key": key})
            self.assertEqual(response.status_code, 200, response.content)
            tokens.append(self.stored().admin_api_key_encrypted)
        entries = list(
            AuditEntry.objects.filter(action="provider.updated", object_id=str(self.provider_a.pk))
            .order_by("id")
            .values_list("before", "after")
        )
        self.assertEqual(
            [(b["admin_api_key"], a["admin_api_key"]) for b, a in entries],
            [
                ("not set", "set (…WXYZ)"),
                ("set (…WXYZ)", "set (…QRST)"),
                ("set (…QRST)", "set (…QRST)"),  # the same key again
                ("set (…QRST)", "set (…WXYZ)"),
                ("set (…WXYZ)", "cleared"),
            ],
        )
        self.assertEqual({a["api_key"] for _b, a in entries}, {"not set"})
        everything = json.dumps(list(AuditEntry.objects.values("before", "after")))
        for secret in (ADMIN_KEY, OTHER_ADMIN, same_last4, *filter(None, tokens)):
            self.assertNotIn(secret, everything)
        audit_page = self.get(self.admin_a, "/audit/")
        self.assertEqual(audit_page.status_code, 200)
        self.assert_secret_absent(audit_page, ADMIN_KEY, OTHER_ADMIN, *filter(None, tokens))

    def test_a_different_key_that_looks_the_same_is_audited_as_changed(self):
        short, other_short = "sk-adm-1", "sk-adm-2"  # too short to show a last4
        self.patch(self.admin_a, self.url(), {"admin_api_key": short})
        self.patch(self.admin_a, self.url(), {"admin_api_key": other_short})
        latest = AuditEntry.objects.filter(action="provider.updated").latest("id")
        self.assertEqual((latest.before["admin_api_key"], latest.after["admin_api_key"]),
                         ("set", "changed"))  # fmt: skip
        self.assertEqual(self.stored().admin_api_key_last4, "")

    def test_another_tenant_can_neither_see_nor_set_the_admin_key(self):
        self.patch(self.admin_a, self.url(), {"admin_api_key": ADMIN_KEY})
        token = self.stored().admin_api_key_encrypted
        self.assert_not_found_for(
            [self.admin_b, self.lead_b],
            ("get", self.url()),
            ("patch", self.url(), {"admin_api_key": OTHER_ADMIN}),
            ("patch", self.url(), {"admin_api_key": ""}),
            ("patch", self.url(), {"admin_base_url": "https://evil.example/v1"}),
        )
        self.assertEqual(self.stored().admin_api_key_encrypted, token)
        refused = self.post(
            self.admin_b, "/providers/", self.body(admin_api_key=OTHER_ADMIN, org="acme")
        )
        self.assertEqual(refused.status_code, 400)
        self.assertIn("org", refused.json())
        for response in (self.get(self.admin_b, "/providers/"), self.get(self.admin_b, "/audit/")):
            self.assert_secret_absent(response, ADMIN_KEY, token)
            self.assertNotIn(b"WXYZ", response.content)

    def test_only_org_admins_set_the_admin_key_or_url(self):
        for user in (self.finance_a, self.lead_a, self.member_a):
            for data in ({"admin_api_key": ADMIN_KEY}, {"admin_base_url": "https://x.test/v1"}):
                with self.subTest(user=user.username, data=list(data)):
                    self.assertEqual(self.patch(user, self.url(), data).status_code, 403)
        stored = self.stored()
        self.assertEqual((stored.admin_api_key_encrypted, stored.admin_base_url), ("", ""))

    def test_no_log_line_holds_the_admin_key_or_its_token(self):
        with captured_logs() as logs:
            self.patch(self.admin_a, self.url(), {"admin_api_key": ADMIN_KEY})
            token = self.stored().admin_api_key_encrypted
            self.patch(self.admin_a, self.url(), {"admin_api_key": "sk-bad admin key"})
            self.get(self.admin_a, self.url())
            self.assertEqual(provider_admin_credential(self.stored()), ADMIN_KEY)
            self.patch(self.admin_a, self.url(), {"admin_api_key": ""})
        self.assertTrue(token)
        for secret in (ADMIN_KEY, "sk-bad admin key", token):
            self.assertNotIn(secret, logs.getvalue())

    def test_malformed_admin_keys_are_refused_without_being_echoed(self):
        for bad in ("sk-with space-inside1", "sk-line\nbreak-in", "sk-tab\tinside", "x" * 600):
            with self.subTest(bad=bad[:20]):
                response = self.patch(self.admin_a, self.url(), {"admin_api_key": bad})
                self.assertEqual(response.status_code, 400)
                self.assertIn("admin_api_key", response.json())
                self.assertNotIn(bad.encode(), response.content)
        self.assertEqual(self.stored().admin_api_key_encrypted, "")

    def test_a_tenant_cannot_name_a_server_variable_as_admin_credential(self):
        """The exfiltration to prevent: an org admin names the server's pepper, its database
        URL or the operator's admin key, then points admin_base_url at a host they control."""
        for name in ("FINOPS_KEY_PEPPER", "DATABASE_URL", "OPENAI_ADMIN_KEY"):
            with self.subTest(name=name):
                created = self.post(
                    self.admin_a,
                    "/providers/",
                    self.body(admin_api_key_env=name, admin_base_url="https://evil.example/v1"),
                )
                self.assertEqual(created.status_code, 400, created.content)
                self.assertIn("operators", created.json()["admin_api_key_env"][0])
                patched = self.patch(self.admin_a, self.url(), {"admin_api_key_env": name})
                self.assertEqual(patched.status_code, 400, patched.content)
                self.assertIn("operators", patched.json()["admin_api_key_env"][0])
        self.assertFalse(Provider.objects.filter(slug="new").exists())
        self.assertEqual(self.stored().admin_api_key_env, "")

    def test_the_servers_own_settings_are_never_an_admin_credential_even_for_a_superuser(self):
        for name in ("FINOPS_KEY_PEPPER", "SECRET_KEY", "DATABASE_URL", "FINOPS_ENCRYPTION_KEY"):
            with self.subTest(name=name):
                response = self.post(
                    self.superuser, "/providers/", self.body(admin_api_key_env=name, org="acme")
                )
                self.assertEqual(response.status_code, 400)
                message = response.json()["admin_api_key_env"][0]
                self.assertIn("this server's own configuration", message)
        refused = self.post(
            self.superuser, "/providers/", self.body(admin_api_key_env="GROQ_KEY", org="acme")
        )
        self.assertIn("FINOPS_PROVIDER_KEY_ENVS", refused.json()["admin_api_key_env"][0])
        bad_name = self.post(
            self.superuser, "/providers/", self.body(admin_api_key_env="sk-live-1", org="acme")
        )
        self.assertEqual(bad_name.status_code, 400)
        self.assertIn("admin_api_key_env", bad_name.json())
        with mock.patch.dict(os.environ, {"OPENAI_ADMIN_KEY": ENV_VALUE}):
            allowed = self.post(
                self.superuser,
                "/providers/",
                self.body(admin_api_key_env="OPENAI_ADMIN_KEY", org="acme"),
            )
            self.assertEqual(allowed.status_code, 201, allowed.content)
            self.assertEqual(allowed.json()["admin_api_key_env"], "OPENAI_ADMIN_KEY")
            seen = b"".join(
                self.get(user, path).content
                for user in (self.admin_a, self.superuser)
                for path in ("/providers/", "/audit/")
            )
        self.assertIn(b"OPENAI_ADMIN_KEY", seen)
        self.assertNotIn(ENV_VALUE.encode(), seen + allowed.content)

    def test_a_tenant_cannot_move_a_provider_that_holds_an_operators_admin_credential(self):
        provider = _provider(
            self.org_a, admin_api_key_env="OPENAI_ADMIN_KEY", admin_base_url=""
        )  # the admin key goes to base_url
        url = self.url(provider)
        for data in (
            {"admin_base_url": "https://evil.example/v1"},
            {"base_url": "https://evil.example/v1"},
            {"kind": "anthropic"},
        ):
            with self.subTest(data=data):
                moved = self.patch(self.admin_a, url, data)
                self.assertEqual(moved.status_code, 400, moved.content)
                (field,) = data
                self.assertIn("only an operator", moved.json()[field][0])
        for data in ({"admin_api_key_env": ""}, {"admin_api_key_env": "OPENAI_OTHER"}):
            self.assertEqual(self.patch(self.admin_a, url, data).status_code, 400)
        both = self.patch(self.admin_a, url, {"admin_api_key": ADMIN_KEY})  # no own key beside
        self.assertEqual(both.status_code, 400)
        self.assertIn("admin_api_key_env", both.json()["admin_api_key"][0])
        stored = self.stored(provider)
        self.assertEqual(
            (stored.base_url, stored.admin_base_url, stored.admin_api_key_env, stored.kind),
            ("https://api.openai.com/v1", "", "OPENAI_ADMIN_KEY", "openai"),
        )
        fine = self.patch(self.admin_a, url, {"publisher": "OpenAI", "api_key": INFERENCE_KEY})
        self.assertEqual(fine.status_code, 200, fine.content)
        operator = self.patch(self.superuser, url, {"admin_base_url": "https://admin.openai.com"})
        self.assertEqual(operator.status_code, 200, operator.content)

    def test_a_tenant_points_admin_base_url_where_it_likes_only_within_the_host_rules(self):
        ok = self.patch(self.admin_a, self.url(), {"admin_base_url": "https://admin.acme.test/v1"})
        self.assertEqual(ok.status_code, 200, ok.content)
        for url, says in (
            ("http://169.254.169.254/latest", "internal address"),
            ("http://10.0.0.1/v1", "internal address"),
            ("http://user:pw@api.openai.com/v1", "must not carry credentials"),
            ("ftp://api.openai.com/", "admin_base_url"),
        ):
            with self.subTest(url=url):
                response = self.patch(self.admin_a, self.url(), {"admin_base_url": url})
                self.assertEqual(response.status_code, 400)
                self.assertIn(says, json.dumps(response.json()))
                self.assertIn("admin_base_url", response.json())
        with override_settings(FINOPS_PROVIDER_HOSTS=["api.openai.com"]):
            outside = self.patch(
                self.admin_a, self.url(), {"admin_base_url": "https://admin.acme.test/v2"}
            )
            self.assertIn("FINOPS_PROVIDER_HOSTS", outside.json()["admin_base_url"][0])
        blank = self.patch(self.admin_a, self.url(), {"admin_base_url": ""})
        self.assertEqual(blank.status_code, 200, blank.content)
        self.assertEqual(provider_admin_base_url(self.stored()), "https://api.openai.com/v1")

    def test_an_operators_inference_variable_does_not_lend_its_key_to_the_admin_api(self):
        provider = _provider(self.org_a, api_key_env="OPENAI_API_KEY")
        with mock.patch.dict(os.environ, {"OPENAI_API_KEY": INFERENCE_KEY}):
            moved = self.patch(
                self.admin_a, self.url(provider), {"admin_base_url": "https://mine.acme.test"}
            )
            self.assertEqual(moved.status_code, 200, moved.content)  # nothing of theirs goes there
            self.assertEqual(provider_admin_credential(self.stored(provider)), "")

    def test_admin_api_key_env_or_an_admin_key_not_both(self):
        created = self.post(
            self.superuser,
            "/providers/",
            self.body(org="acme", admin_api_key_env="OPENAI_ADMIN_KEY", admin_api_key=ADMIN_KEY),
        )
        self.assertEqual(created.status_code, 400)
        self.assertFalse(Provider.objects.filter(slug="new").exists())
        provider = _provider(self.org_a, admin_api_key_env="OPENAI_ADMIN_KEY")
        switched = self.patch(
            self.superuser,
            self.url(provider),
            {"admin_api_key_env": "", "admin_api_key": ADMIN_KEY},
        )  # an operator switches from the variable to a key in one change
        self.assertEqual(switched.status_code, 200, switched.content)
        self.assertEqual(provider_admin_credential(self.stored(provider)), ADMIN_KEY)
        back = self.patch(self.superuser, self.url(provider), {"admin_api_key_env": "OPENAI_X"})
        self.assertEqual(back.status_code, 400)  # the key is still stored: clear it first
        self.assertIn("not both", back.json()["admin_api_key_env"][0])

    def test_the_schema_marks_the_admin_key_write_only(self):
        out = StringIO()
        call_command("spectacular", "--format", "openapi-json", stdout=out)
        schemas = json.loads(out.getvalue())["components"]["schemas"]
        update = schemas["PatchedProviderUpdateRequest"]["properties"]
        self.assertTrue(update["admin_api_key"]["writeOnly"])
        self.assertIn("admin_base_url", update)
        read = schemas["Provider"]["properties"]
        self.assertNotIn("admin_api_key", read)
        self.assertEqual(read["admin_api_key_set"]["type"], "boolean")
        self.assertIn("admin_api_key_last4", read)


# --- the Django admin -----------------------------------------------------------------------


@override_settings(FINOPS_ENCRYPTION_KEY=[Fernet.generate_key().decode()])
class AdminKeyDjangoAdminTests(APITestCase):
    @classmethod
    def setUpTestData(cls):
        super().setUpTestData()
        get_user_model().objects.filter(pk__in=[cls.admin_a.pk, cls.admin_b.pk]).update(
            is_staff=True
        )
        cls.provider_a = f.make_provider(cls.org_a, "own", base_url="https://api.openai.com/v1")

    def change_url(self, provider=None) -> str:
        return reverse("admin:gateway_provider_change", args=[(provider or self.provider_a).pk])

    def form(self, **extra) -> dict:
        return {
            "kind": "openai",
            "base_url": "https://api.openai.com/v1",
            "api_version": "",
            "publisher": "",
            "invoice_issuer": "",
            "admin_base_url": "",
            **extra,
        }

    def stored(self, provider=None) -> Provider:
        return Provider.objects.get(pk=(provider or self.provider_a).pk)

    def test_the_pages_never_show_the_admin_key_or_its_token(self):
        catalog.provider_update(
            provider=self.provider_a, actor=self.admin_a, admin_api_key=ADMIN_KEY
        )
        token = self.stored().admin_api_key_encrypted
        for user in (self.admin_a, self.superuser):
            self.client.force_login(user)
            for url in (self.change_url(), reverse("admin:gateway_provider_changelist")):
                with self.subTest(user=user.username, url=url):
                    page = self.client.get(url)
                    self.assertEqual(page.status_code, 200)
                    self.assertNotContains(page, ADMIN_KEY)
                    self.assertNotContains(page, token)
                    self.assertContains(page, "WXYZ")
        page = self.client.get(self.change_url())
        self.assertContains(page, 'name="admin_api_key" autocomplete="new-password"')
        self.assertContains(page, "stored encrypted and never shown")

    def test_an_org_admin_sets_keeps_and_clears_the_admin_key(self):
        self.client.force_login(self.admin_a)
        response = self.client.post(self.change_url(), self.form(admin_api_key=ADMIN_KEY))
        self.assertEqual(response.status_code, 302, response.content[:2000])
        stored = self.stored()
        self.assertEqual(secret_decrypt(stored.admin_api_key_encrypted), ADMIN_KEY)
        self.assertEqual((stored.admin_api_key_last4, stored.api_key_encrypted), ("WXYZ", ""))
        kept = self.client.post(self.change_url(), self.form(publisher="OpenAI"))
        self.assertEqual(kept.status_code, 302)
        self.assertEqual(self.stored().admin_api_key_encrypted, stored.admin_api_key_encrypted)
        bad = self.client.post(self.change_url(), self.form(admin_api_key="sk-bad admin key"))
        self.assertEqual(bad.status_code, 200)
        self.assertNotContains(bad, "sk-bad admin key")
        both = self.client.post(
            self.change_url(), self.form(admin_api_key=OTHER_ADMIN, clear_admin_api_key="on")
        )
        self.assertEqual(both.status_code, 200)
        cleared = self.client.post(self.change_url(), self.form(clear_admin_api_key="on"))
        self.assertEqual(cleared.status_code, 302)
        self.assertEqual(self.stored().admin_api_key_encrypted, "")
        entries = AuditEntry.objects.filter(action="provider.updated", actor=self.admin_a)
        self.assertEqual(
            [e.after["admin_api_key"] for e in entries.order_by("id")],
            ["set (…WXYZ)", "set (…WXYZ)", "cleared"],
        )
        self.assertNotIn(ADMIN_KEY, json.dumps(list(entries.values("before", "after"))))

    def test_an_admin_add_with_an_admin_key_stores_it_encrypted(self):
        self.client.force_login(self.admin_a)
        response = self.client.post(
            reverse("admin:gateway_provider_add"),
            {**self.form(admin_api_key=ADMIN_KEY), "org": self.org_a.pk, "slug": "added"},
        )
        self.assertEqual(response.status_code, 302, response.content[:2000])
        added = Provider.objects.get(org=self.org_a, slug="added")
        self.assertEqual(provider_admin_credential(added), ADMIN_KEY)

    def test_a_tenant_neither_names_an_admin_variable_nor_moves_an_operators_provider(self):
        self.client.force_login(self.admin_a)
        add = self.client.get(reverse("admin:gateway_provider_add")).context["adminform"].form
        self.assertNotIn("admin_api_key_env", add.fields)
        self.assertIn("admin_base_url", add.fields)
        # a field the form does not have is ignored, not saved
        self.client.post(
            self.change_url(), self.form(admin_api_key_env="FINOPS_KEY_PEPPER", publisher="x")
        )
        self.assertEqual(self.stored().admin_api_key_env, "")
        provider = _provider(self.org_a, admin_api_key_env="OPENAI_ADMIN_KEY")
        change = self.client.get(self.change_url(provider)).context["adminform"].form
        self.assertFalse(
            {"admin_api_key_env", "admin_base_url", "base_url", "kind"} & set(change.fields)
        )
        self.client.post(
            self.change_url(provider),
            self.form(admin_base_url="https://evil.example/v1", base_url="https://evil.example"),
        )
        stored = self.stored(provider)
        self.assertEqual(
            (stored.admin_base_url, stored.base_url), ("", "https://api.openai.com/v1")
        )
        self.client.force_login(self.superuser)
        operator = self.client.get(self.change_url(provider)).context["adminform"].form
        self.assertTrue({"admin_api_key_env", "admin_base_url"} <= set(operator.fields))

    def test_another_tenants_provider_is_a_404(self):
        self.client.force_login(self.admin_b)
        self.assertEqual(self.client.get(self.change_url()).status_code, 404)
        refused = self.client.post(self.change_url(), self.form(admin_api_key=OTHER_ADMIN))
        self.assertEqual(refused.status_code, 404)
        self.assertEqual(self.stored().admin_api_key_encrypted, "")


# --- YAML files -----------------------------------------------------------------------------


def encrypt_secret(*args: str, stdin: str) -> str:
    out = StringIO()
    with mock.patch("sys.stdin", StringIO(stdin)):
        call_command("encrypt_secret", *args, stdout=out)
    return out.getvalue().strip()


def config(token: str | None = None, *, org: str = "acme", **extra: str) -> str:
    provider = '{name: own, kind: openai, base_url: "https://api.openai.com/v1"'
    if token is not None:
        provider += f', admin_api_key_encrypted: "{token}"'
    for key, value in extra.items():
        provider += f', {key}: "{value}"'
    return f"organization: {org}\nproviders:\n  - {provider}}}\n"


@override_settings(FINOPS_ENCRYPTION_KEY=[OLD], FINOPS_PROVIDER_KEY_ENVS=["OPENAI_*"])
class AdminKeyConfigTests(TestCase):
    def apply(self, text: str, **kwargs) -> list[str]:
        return [str(c) for c in config_apply(data=config_load(text=text), **kwargs).changes]

    def stored(self) -> Provider:
        return Provider.objects.get(slug="own")

    def test_a_reference_is_applied_encrypted_and_neither_plan_nor_dry_run_shows_it(self):
        token = encrypt_secret("--org", "acme", stdin=f"{ADMIN_KEY}\n")
        text = config(token, admin_base_url="https://admin.openai.com/v1")
        out = StringIO()
        with mock.patch("sys.stdin", StringIO(text)):
            call_command("apply_config", "-", "--dry-run", stdout=out)
        self.assertFalse(Provider.objects.exists())
        lines = self.apply(text)
        self.assertIn("admin_api_key=set", lines[1])
        self.assertIn("admin_base_url=https://admin.openai.com/v1", lines[1])
        self.assertIn("admin_api_key=set", out.getvalue())
        provider = self.stored()
        self.assertEqual(provider_admin_credential(provider), ADMIN_KEY)
        self.assertEqual(provider.admin_api_key_last4, "WXYZ")
        self.assertEqual(provider.api_key_encrypted, "")
        audit = json.dumps(list(AuditEntry.objects.values("before", "after")))
        for secret in (ADMIN_KEY, token, provider.admin_api_key_encrypted):
            self.assertNotIn(secret, "\n".join(lines) + out.getvalue() + audit)
        self.assertEqual(self.apply(text), [])  # idempotent

    def test_changed_left_out_pruned_and_cleared(self):
        self.apply(config(encrypt_secret("--org", "acme", stdin=ADMIN_KEY)))
        changed = self.apply(config(encrypt_secret("--org", "acme", stdin=OTHER_ADMIN)))
        self.assertEqual(changed, ["update provider own: admin_api_key: set -> changed"])
        self.assertEqual(provider_admin_credential(self.stored()), OTHER_ADMIN)
        self.assertEqual(self.apply(config()), [])  # left out: kept
        self.assertEqual(self.apply(config(), prune=True), [])
        self.assertEqual(provider_admin_credential(self.stored()), OTHER_ADMIN)
        cleared = self.apply(config(""))
        self.assertEqual(cleared, ["update provider own: admin_api_key: set -> not set"])
        self.assertEqual(self.stored().admin_api_key_encrypted, "")

    def test_the_inference_and_admin_references_are_planned_apart(self):
        inference = encrypt_secret("--org", "acme", stdin=INFERENCE_KEY)
        admin = encrypt_secret("--org", "acme", stdin=ADMIN_KEY)
        text = config(admin, api_key_encrypted=inference)
        _org, line = self.apply(text)
        self.assertIn("api_key=set, admin_api_key=set", line)
        provider = self.stored()
        self.assertEqual(secret_decrypt(provider.api_key_encrypted), INFERENCE_KEY)
        self.assertEqual(provider_admin_credential(provider), ADMIN_KEY)

    def test_a_reference_made_for_another_organisation_is_refused(self):
        token = encrypt_secret("--org", "globex", stdin=ADMIN_KEY)
        with self.assertRaises(ConfigError) as caught:
            self.apply(config(token))
        (error,) = caught.exception.errors
        self.assertIn("providers[0].admin_api_key_encrypted", error)
        self.assertIn("made for organisation 'globex'", error)
        self.assertNotIn(token, error)
        bare = Fernet(OLD.encode()).encrypt(ADMIN_KEY.encode()).decode()
        with self.assertRaises(ConfigError) as caught:
            self.apply(config(bare))
        self.assertIn("encrypt_secret --org", caught.exception.errors[0])
        with override_settings(FINOPS_ENCRYPTION_KEY=[NEW]):
            foreign = encrypt_secret("--org", "acme", stdin=ADMIN_KEY)
        with self.assertRaises(ConfigError) as caught:
            self.apply(config(foreign))
        self.assertIn("FINOPS_ENCRYPTION_KEY", caught.exception.errors[0])
        self.assertNotIn(foreign, caught.exception.errors[0])
        self.assertFalse(Provider.objects.exists())

    def test_the_variable_and_the_url_are_checked_like_the_inference_ones(self):
        token = encrypt_secret("--org", "acme", stdin=ADMIN_KEY)
        for text, says in (
            (config(token, admin_api_key_env="OPENAI_ADMIN_KEY"), "one credential, not both"),
            (config(admin_api_key_env="sk-live-1"), "must be an environment variable name"),
            (config(admin_base_url="http://169.254.169.254/x"), "internal address"),
            (config(admin_base_url="http://u:p@api.openai.com"), "admin_api_key_env"),
            (config(admin_api_key_env="FINOPS_KEY_PEPPER"), "this server's own configuration"),
            (config(admin_api_key_env="DATABASE_URL"), "this server's own configuration"),
            (config(admin_api_key_env="GROQ_KEY"), "FINOPS_PROVIDER_KEY_ENVS"),
        ):
            with self.subTest(says=says), self.assertRaises(ConfigError) as caught:
                self.apply(text)
            self.assertIn(says, "\n".join(caught.exception.errors))
        self.assertFalse(Provider.objects.exists())

    def test_only_an_operator_names_an_admin_variable_or_moves_its_provider(self):
        tenant = f.make_user("admin@acme.test")
        with self.assertRaises(ConfigError) as caught:
            self.apply(config(admin_api_key_env="OPENAI_ADMIN_KEY"), actor=tenant)
        self.assertIn("operators", caught.exception.errors[0])
        lines = self.apply(config(admin_api_key_env="OPENAI_ADMIN_KEY"))  # on the server
        self.assertIn("admin_api_key_env=OPENAI_ADMIN_KEY", lines[1])
        moved = config(admin_api_key_env="OPENAI_ADMIN_KEY", admin_base_url="https://x.test/v1")
        with self.assertRaises(ConfigError) as caught:
            self.apply(moved, actor=tenant)
        self.assertIn("only an operator", caught.exception.errors[0])
        self.assertEqual(self.stored().admin_base_url, "")

    def test_an_operator_switches_from_a_variable_to_a_key_and_rotation_changes_nothing(self):
        self.apply(config(admin_api_key_env="OPENAI_ADMIN_KEY"))
        token = encrypt_secret("--org", "acme", stdin=ADMIN_KEY)
        lines = self.apply(config(token))
        self.assertEqual(
            lines,
            ["update provider own: admin_api_key_env: OPENAI_ADMIN_KEY -> , "
             "admin_api_key: not set -> set"],
        )  # fmt: skip
        with override_settings(FINOPS_ENCRYPTION_KEY=[NEW, OLD]):
            call_command("rotate_secrets", stdout=StringIO())
            self.assertEqual(self.apply(config(token)), [])  # compared decrypted
        with override_settings(FINOPS_ENCRYPTION_KEY=[NEW]):
            self.assertEqual(provider_admin_credential(self.stored()), ADMIN_KEY)


# --- rotate_secrets -------------------------------------------------------------------------


@override_settings(FINOPS_ENCRYPTION_KEY=[OLD])
class RotateAdminKeysTests(TestCase):
    @classmethod
    def setUpTestData(cls):
        cls.org = f.make_org("acme")
        cls.both = f.make_provider(cls.org, "both")
        cls.admin_only = f.make_provider(cls.org, "admin-only")

    def setUp(self):
        catalog.provider_update(
            provider=self.both, actor=None, api_key=INFERENCE_KEY, admin_api_key=ADMIN_KEY
        )
        catalog.provider_update(provider=self.admin_only, actor=None, admin_api_key=OTHER_ADMIN)

    def rotate(self, *args) -> str:
        out = StringIO()
        call_command("rotate_secrets", *args, stdout=out)
        return out.getvalue()

    def test_admin_keys_are_rotated_with_the_inference_keys(self):
        before = {p.pk: p.admin_api_key_encrypted for p in Provider.objects.all()}
        with override_settings(FINOPS_ENCRYPTION_KEY=[NEW, OLD]):
            self.assertIn("would rotate 3, already current 0", self.rotate("--dry-run"))
            self.assertEqual({p.pk: p.admin_api_key_encrypted for p in Provider.objects.all()},
                             before)  # fmt: skip
            self.assertIn("rotated 3, already current 0, unreadable 0", self.rotate())
            self.assertIn("rotated 0, already current 3", self.rotate())
        with override_settings(FINOPS_ENCRYPTION_KEY=[NEW]):  # the old key dropped
            self.both.refresh_from_db()
            self.admin_only.refresh_from_db()
            self.assertEqual(secret_decrypt(self.both.api_key_encrypted), INFERENCE_KEY)
            self.assertEqual(provider_admin_credential(self.both), ADMIN_KEY)
            self.assertEqual(provider_admin_credential(self.admin_only), OTHER_ADMIN)
            self.assertEqual(self.admin_only.admin_api_key_last4, "QRST")

    def test_an_unreadable_admin_key_is_named_and_fails_the_command(self):
        with override_settings(FINOPS_ENCRYPTION_KEY=[NEW]), self.assertRaises(CommandError) as e:
            self.rotate()
        message = str(e.exception)
        self.assertIn("acme/admin-only (admin API key)", message)
        self.assertIn("acme/both (admin API key)", message)
        for provider in Provider.objects.all():
            for token in filter(
                None, (provider.api_key_encrypted, provider.admin_api_key_encrypted)
            ):
                self.assertNotIn(token, message)
