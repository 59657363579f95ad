"""Provider base URLs (where the gateway sends prompts and the provider's credential) are set by
org admins only; request/response payload logging is off by default and redacts when on."""

from __future__ import annotations

import asyncio
import logging

from django.contrib.auth import get_user_model
from django.test import SimpleTestCase, override_settings
from django.urls import reverse
from rest_framework.test import APIClient

from gateway import payload_log
from gateway.models import Provider
from tests.base import TwoOrgsTestCase

EVIL = "http://169.254.169.254/latest"


@override_settings(PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"])
class ProviderBaseURLTests(TwoOrgsTestCase):
    @classmethod
    def setUpTestData(cls):
        super().setUpTestData()
        get_user_model().objects.update(is_staff=True)
        cls.provider = Provider.objects.create(
            org=cls.org_a, slug="sim", kind="openai", base_url="http://127.0.0.1:9100/v1"
        )
        cls.not_admins = [cls.finance_a, cls.lead_a, cls.member_a]

    def client_for(self, user) -> APIClient:
        client = APIClient()
        client.force_login(user)
        return client

    def assert_unchanged(self):
        self.provider.refresh_from_db()
        self.assertEqual(self.provider.base_url, "http://127.0.0.1:9100/v1")
        self.assertFalse(Provider.objects.filter(base_url__startswith="http://169.254").exists())

    def test_only_org_admins_change_a_base_url_through_the_api(self):
        path = f"/api/v1/providers/{self.provider.pk}/"
        for user in self.not_admins:
            with self.subTest(user=user.username):
                client = self.client_for(user)
                response = client.patch(path, {"base_url": EVIL}, format="json")
                self.assertIn(response.status_code, (403, 404), response.content)
                response = client.post(
                    "/api/v1/providers/",
                    {"org": "acme", "slug": "evil", "kind": "openai", "base_url": EVIL},
                    format="json",
                )
                self.assertIn(response.status_code, (400, 403), response.content)
        self.assert_unchanged()
        response = self.client_for(self.admin_a).patch(
            path, {"base_url": "http://127.0.0.1:9200/v1"}, format="json"
        )
        self.assertEqual(response.status_code, 200, response.content)

    def test_only_org_admins_change_a_base_url_in_the_admin(self):
        change = reverse("admin:gateway_provider_change", args=[self.provider.pk])
        add = reverse("admin:gateway_provider_add")
        form = {"org": self.org_a.pk, "slug": "sim", "kind": "openai", "base_url": EVIL}
        for user in self.not_admins:
            with self.subTest(user=user.username):
                client = self.client_for(user)
                response = client.post(change, form)
                self.assertIn(response.status_code, (302, 403, 404))
                if response.status_code == 302:  # "does not exist" / no permission redirect
                    self.assertNotEqual(response["Location"], change)
                response = client.post(add, {**form, "slug": "evil"})
                self.assertIn(response.status_code, (302, 403))
        self.assert_unchanged()


class PayloadLogTests(SimpleTestCase):
    BODY = (
        b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": '
        b'"my key is sk-abcdefgh12345678 and mail me at jane.doe@example.com"}]}'
    )

    def run_call(self):
        sent = []

        async def send(message):
            sent.append(message)

        async def go():
            wrapped = payload_log.wrap(send, self.BODY)
            await wrapped({"type": "http.response.start", "status": 200, "headers": []})
            await wrapped(
                {"type": "http.response.body", "body": b'{"a": "x@y.org', "more_body": True}
            )
            await wrapped({"type": "http.response.body", "body": b' sk-fo-ABCDEFGHIJKL"}'})
            return wrapped

        wrapped = asyncio.run(go())
        self.assertEqual(len(sent), 3)  # the client gets every message either way
        return wrapped, send

    def test_off_by_default_nothing_is_logged_and_send_is_untouched(self):
        self.assertFalse(payload_log.settings.FINOPS_LOG_PAYLOADS)
        with self.assertNoLogs("gateway.payload", level=logging.DEBUG):
            wrapped, send = self.run_call()
        self.assertIs(wrapped, send)

    @override_settings(FINOPS_LOG_PAYLOADS=True)
    def test_on_logs_both_bodies_with_keys_and_emails_redacted(self):
        with self.assertLogs("gateway.payload", level=logging.DEBUG) as logs:
            self.run_call()
        text = "\n".join(logs.output)
        self.assertIn("request body", text)
        self.assertIn("response 200 body", text)
        self.assertIn("gpt-4o-mini", text)
        for secret in (
            "sk-abcdefgh12345678",
            "jane.doe@example.com",
            "x@y.org",
            "sk-fo-ABCDEFGHIJKL",
        ):
            self.assertNotIn(secret, text)
        self.assertEqual(text.count(payload_log.MASK), 4)

    @override_settings(FINOPS_LOG_PAYLOADS=True, FINOPS_REDACT_PATTERNS=[r"gpt-\S+"])
    def test_redaction_patterns_come_from_the_setting(self):
        self.assertEqual(payload_log.redact("use gpt-4o now"), f"use {payload_log.MASK} now")
        self.assertEqual(payload_log.redact("sk-abcdefgh12345678"), "sk-abcdefgh12345678")

    @override_settings(FINOPS_LOG_PAYLOADS=True)
    def test_on_but_logger_above_debug_logs_nothing(self):
        logger = logging.getLogger("gateway.payload")
        old = logger.level
        logger.setLevel(logging.INFO)
        try:
            # (assertNoLogs would lower the level itself)
            wrapped, send = self.run_call()
            self.assertIs(wrapped, send)
        finally:
            logger.setLevel(old)
