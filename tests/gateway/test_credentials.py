"""Provider keys at rest: Fernet under FINOPS_ENCRYPTION_KEY (newest key first), the gateway's
read of them at config load, and ``rotate_secrets``."""

from __future__ import annotations

import os
import subprocess
import sys
from io import StringIO
from pathlib import Path
from unittest import mock

from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import TestCase, TransactionTestCase, override_settings

from gateway.cache import org_config_load
from gateway.models import Provider
from gateway.services import catalog
from gateway.services.credentials import (
    SecretDecryptError,
    encryption_keys,
    provider_key_seal,
    provider_key_unseal,
    secret_decrypt,
    secret_encrypt,
    secret_is_current,
    secret_rotate,
)
from tests import factories as f

ROOT = Path(__file__).resolve().parents[2]
OLD = Fernet.generate_key().decode()
NEW = Fernet.generate_key().decode()
KEY = "sk-upstream-9f8e7d6c5b4a3210"


class EncryptionHelperTests(TestCase):
    def test_round_trip_and_rotation_from_an_old_key_to_a_new_one(self):
        with override_settings(FINOPS_ENCRYPTION_KEY=[OLD]):
            token = secret_encrypt(KEY)
            self.assertNotIn(KEY, token)
            self.assertEqual(secret_decrypt(token), KEY)
        with override_settings(FINOPS_ENCRYPTION_KEY=[NEW, OLD]):  # a new key prepended
            self.assertEqual(secret_decrypt(token), KEY)  # the old token still decrypts
            self.assertFalse(secret_is_current(token))
            rotated = secret_rotate(token)
            self.assertTrue(secret_is_current(rotated))
        with override_settings(FINOPS_ENCRYPTION_KEY=[NEW]):  # the old key dropped
            self.assertEqual(secret_decrypt(rotated), KEY)
            with self.assertRaises(SecretDecryptError) as caught:
                secret_decrypt(token)
            self.assertNotIn(token, str(caught.exception))
            self.assertIn("FINOPS_ENCRYPTION_KEY", str(caught.exception))

    def test_garbage_is_a_decrypt_error_not_a_crash(self):
        for token in ("", "not-a-token", "gAAAAA" + "x" * 80, "ключ"):
            with self.subTest(token=token), self.assertRaises(SecretDecryptError):
                secret_decrypt(token)

    @override_settings(FINOPS_ENCRYPTION_KEY=[], FINOPS_ENCRYPTION_DEV_KEY=False)
    def test_without_a_key_and_debug_off_the_first_use_says_how_to_make_one(self):
        with self.assertRaises(ImproperlyConfigured) as caught:
            secret_encrypt(KEY)
        self.assertIn("Fernet.generate_key()", str(caught.exception))

    @override_settings(
        FINOPS_ENCRYPTION_KEY=[], FINOPS_ENCRYPTION_DEV_KEY=True, SECRET_KEY="s" * 40
    )
    def test_with_debug_the_development_key_comes_from_secret_key(self):
        first = encryption_keys()
        self.assertEqual(len(first), 1)
        Fernet(first[0].encode())  # a valid Fernet key
        self.assertEqual(secret_decrypt(secret_encrypt(KEY)), KEY)
        with override_settings(SECRET_KEY="t" * 40):
            self.assertNotEqual(encryption_keys(), first)

    @override_settings(FINOPS_ENCRYPTION_KEY=[NEW])
    def test_a_config_reference_carries_its_organisation(self):
        token = provider_key_seal(org_slug="acme", key=KEY)
        self.assertEqual(provider_key_unseal(token), ("acme", KEY))
        with self.assertRaises(SecretDecryptError):
            provider_key_unseal(secret_encrypt(KEY))  # a bare token is no reference


def _settings_load(**env) -> subprocess.CompletedProcess:
    full = {**os.environ, "DEBUG": "false", "SECRET_KEY": "k" * 40, "FINOPS_KEY_PEPPER": "p" * 40}
    full.update(env)
    code = "import django; django.setup(); from django.conf import settings; print('loaded')"
    return subprocess.run(  # noqa: S603
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**full, "DJANGO_SETTINGS_MODULE": "finops.settings"},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_malformed_encryption_key_fails_at_settings_load_without_echoing_it(tmp_path):
    bad = "not-a-fernet-key-but-a-secret-value"
    result = _settings_load(FINOPS_ENCRYPTION_KEY=f"{NEW},{bad}", FINOPS_VAR_DIR=str(tmp_path))
    assert result.returncode != 0
    assert "FINOPS_ENCRYPTION_KEY: key 2 is not a Fernet key" in result.stderr
    assert bad not in result.stderr + result.stdout
    ok = _settings_load(FINOPS_ENCRYPTION_KEY=f"{NEW}, {OLD}", FINOPS_VAR_DIR=str(tmp_path))
    assert ok.returncode == 0, ok.stderr
    assert "loaded" in ok.stdout


@override_settings(FINOPS_ENCRYPTION_KEY=[NEW, OLD])
class GatewayReadTests(TransactionTestCase):  # the loader manages its own connection
    def setUp(self):
        self.org = f.make_org("acme")
        self.provider = f.make_provider(self.org, "own")
        f.make_model(self.org, "gpt-4o-mini", provider=self.provider)

    def test_the_gateway_sends_the_decrypted_key(self):
        catalog.provider_update(provider=self.provider, actor=None, api_key=KEY)
        self.provider.refresh_from_db()
        self.assertNotIn(KEY, self.provider.api_key_encrypted)
        record = org_config_load(self.org.pk).models["gpt-4o-mini"].provider
        self.assertEqual(record.api_key, KEY)

    def test_an_environment_credential_is_read_when_no_key_is_stored(self):
        Provider.objects.filter(pk=self.provider.pk).update(api_key_env="FINOPS_TEST_ENV_KEY")
        with mock.patch.dict(os.environ, {"FINOPS_TEST_ENV_KEY": "sk-from-env"}):
            record = org_config_load(self.org.pk).models["gpt-4o-mini"].provider
        self.assertEqual(record.api_key, "sk-from-env")

    def test_a_token_no_key_decrypts_leaves_the_provider_without_credential_and_warns(self):
        with override_settings(FINOPS_ENCRYPTION_KEY=[Fernet.generate_key().decode()]):
            foreign = secret_encrypt(KEY)
        Provider.objects.filter(pk=self.provider.pk).update(api_key_encrypted=foreign)
        with self.assertLogs("gateway.services.credentials", "WARNING") as logs:
            config = org_config_load(self.org.pk)
        self.assertEqual(config.models["gpt-4o-mini"].provider.api_key, "")
        text = "\n".join(logs.output)
        self.assertIn("own", text)
        self.assertNotIn(foreign, text)
        self.assertNotIn(KEY, text)


@override_settings(FINOPS_ENCRYPTION_KEY=[OLD])
class RotateSecretsTests(TestCase):
    @classmethod
    def setUpTestData(cls):
        cls.org = f.make_org("acme")
        cls.providers = [f.make_provider(cls.org, f"p{i}") for i in range(3)]
        f.make_provider(cls.org, "keyless")

    def setUp(self):
        for i, provider in enumerate(self.providers):
            catalog.provider_update(provider=provider, actor=None, api_key=f"{KEY}-{i}")

    def rotate(self, *args) -> str:
        out = StringIO()
        call_command("rotate_secrets", *args, stdout=out)
        return out.getvalue()

    def tokens(self) -> list[str]:
        return [p.api_key_encrypted for p in Provider.objects.filter(org=self.org).order_by("pk")]

    def test_rotation_moves_every_key_to_the_newest_and_is_idempotent(self):
        before = self.tokens()
        with override_settings(FINOPS_ENCRYPTION_KEY=[NEW, OLD]):
            self.assertIn("would rotate 3, already current 0", self.rotate("--dry-run"))
            self.assertEqual(self.tokens(), before)
            self.assertIn("rotated 3, already current 0, unreadable 0", self.rotate())
            after = self.tokens()
            self.assertIn("rotated 0, already current 3", self.rotate())
            self.assertEqual(self.tokens(), after)  # a second run writes nothing
        with override_settings(FINOPS_ENCRYPTION_KEY=[NEW]):  # the old key dropped
            for i, provider in enumerate(self.providers):
                provider.refresh_from_db()
                self.assertEqual(secret_decrypt(provider.api_key_encrypted), f"{KEY}-{i}")
                self.assertEqual(provider.api_key_last4, f"{KEY}-{i}"[-4:])

    def test_a_key_no_configured_key_decrypts_is_reported_and_fails_the_command(self):
        too_early = override_settings(FINOPS_ENCRYPTION_KEY=[NEW])  # OLD dropped before rotating
        with too_early, self.assertRaises(CommandError) as caught:
            self.rotate()
        self.assertIn("acme/p0", str(caught.exception))
        for token in self.tokens():
            self.assertNotIn(token or "-", str(caught.exception))
