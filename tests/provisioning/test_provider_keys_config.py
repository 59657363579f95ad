"""Provider keys in the YAML file: ``api_key_encrypted`` references made by ``encrypt_secret``,
checked to decrypt and to belong to the file's organisation, planned as set / changed / not
set (never the token), compared decrypted (so rotation changes nothing) and kept when left
out."""

from __future__ import annotations

import json
from io import StringIO
from unittest import mock

from cryptography.fernet import Fernet
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import TestCase, override_settings

from gateway.models import Provider
from gateway.services.credentials import provider_key_unseal, secret_decrypt
from provisioning.config import ConfigError, config_apply, config_load
from teams.models import AuditEntry

OLD = Fernet.generate_key().decode()
NEW = Fernet.generate_key().decode()
KEY = "sk-config-key-0123456789abcdEFGH"
OTHER = "sk-config-key-9876543210zyxwIJKL"


def encrypt_secret(*args: str, stdin: str) -> str:
    out = StringIO()
    with mock.patch("sys.stdin", StringIO(stdin)):
        call_command("encrypt_secret", *args, stdout=out)
    return out.getvalue().strip()


def config(token: str | None = None, *, org: str = "acme", env: str = "") -> str:
    provider = '{name: own, kind: openai, base_url: "https://api.openai.com/v1"'
    if token is not None:
        provider += f', api_key_encrypted: "{token}"'
    if env:
        provider += f", api_key_env: {env}"
    return f"organization: {org}\nproviders:\n  - {provider}}}\n"


@override_settings(FINOPS_ENCRYPTION_KEY=[OLD])
class ProviderKeyConfigTests(TestCase):
    def apply(self, text: str, **kwargs) -> list[str]:
        return [str(c) for c in config_apply(data=config_load(text=text), **kwargs).changes]

    def stored_key(self) -> str:
        return secret_decrypt(Provider.objects.get(slug="own").api_key_encrypted)

    def test_a_reference_is_applied_encrypted_and_the_plan_never_shows_it(self):
        token = encrypt_secret("--org", "acme", stdin=f"{KEY}\n")
        self.assertEqual(provider_key_unseal(token), ("acme", KEY))
        dry = self.apply(config(token), dry_run=True)
        self.assertFalse(Provider.objects.exists())
        lines = self.apply(config(token))
        self.assertEqual(lines, dry)
        self.assertIn("create provider own (", lines[1])
        self.assertIn("api_key=set", lines[1])
        self.assertEqual(self.stored_key(), KEY)
        provider = Provider.objects.get(slug="own")
        self.assertEqual(provider.api_key_last4, "EFGH")
        audit = json.dumps(list(AuditEntry.objects.values("before", "after")))
        for secret in (KEY, token, provider.api_key_encrypted):
            self.assertNotIn(secret, "\n".join(lines) + audit)
        self.assertEqual(self.apply(config(token)), [])  # idempotent

    def test_command_output_has_no_token_and_reapplying_after_rotation_changes_nothing(self):
        token = encrypt_secret("--org", "acme", stdin=KEY)
        self.apply(config(token))
        with override_settings(FINOPS_ENCRYPTION_KEY=[NEW, OLD]):
            call_command("rotate_secrets", stdout=StringIO())
            out = StringIO()
            with mock.patch("sys.stdin", StringIO(config(token))):
                call_command("apply_config", "-", stdout=out)
            self.assertIn("acme: no changes", out.getvalue())  # compared decrypted
            fresh = encrypt_secret("--rotate", stdin=token)  # the file's token, re-encrypted
        with override_settings(FINOPS_ENCRYPTION_KEY=[NEW]):
            self.assertEqual(self.apply(config(fresh)), [])
            self.assertEqual(self.stored_key(), KEY)

    def test_a_changed_key_left_out_key_and_cleared_key(self):
        self.apply(config(encrypt_secret("--org", "acme", stdin=KEY)))
        changed = self.apply(config(encrypt_secret("--org", "acme", stdin=OTHER)))
        self.assertEqual(changed, ["update provider own: api_key: set -> changed"])
        self.assertEqual(self.stored_key(), OTHER)
        self.assertEqual(self.apply(config()), [])  # left out: kept, not pruned
        self.assertEqual(self.apply(config(), prune=True), [])
        self.assertEqual(self.stored_key(), OTHER)
        cleared = self.apply(config(""))
        self.assertEqual(cleared, ["update provider own: api_key: set -> not set"])
        self.assertEqual(Provider.objects.get(slug="own").api_key_encrypted, "")
        self.assertEqual(
            AuditEntry.objects.filter(action="provider.updated").latest("id").after["api_key"],
            "cleared",
        )

    def test_a_token_no_key_decrypts_is_a_validation_error_naming_the_provider(self):
        with override_settings(FINOPS_ENCRYPTION_KEY=[NEW]):
            foreign = encrypt_secret("--org", "acme", stdin=KEY)
        with self.assertRaises(ConfigError) as caught:
            self.apply(config(foreign))
        (error,) = caught.exception.errors
        self.assertIn("providers[0].api_key_encrypted: provider own:", error)
        self.assertIn("FINOPS_ENCRYPTION_KEY", error)
        self.assertNotIn(foreign, error)
        with self.assertRaises(ConfigError):
            self.apply(config("not-a-token"))
        self.assertFalse(Provider.objects.exists())

    def test_a_reference_made_for_another_organisation_is_refused(self):
        token = encrypt_secret("--org", "globex", stdin=KEY)
        with self.assertRaises(ConfigError) as caught:
            self.apply(config(token))
        self.assertIn("made for organisation 'globex'", caught.exception.errors[0])
        self.assertNotIn(token, caught.exception.errors[0])
        bare = Fernet(OLD.encode()).encrypt(KEY.encode()).decode()  # not an encrypt_secret one
        with self.assertRaises(ConfigError) as caught:
            self.apply(config(bare))
        self.assertIn("encrypt_secret --org", caught.exception.errors[0])
        self.assertFalse(Provider.objects.exists())

    def test_api_key_env_and_a_reference_together_are_refused(self):
        token = encrypt_secret("--org", "acme", stdin=KEY)
        with self.assertRaises(ConfigError) as caught:
            self.apply(config(token, env="OPENAI_API_KEY"))
        self.assertIn("api_key_env and api_key_encrypted", caught.exception.errors[0])

    def test_an_operator_switches_a_provider_from_a_variable_to_a_key(self):
        self.apply(config(env="OPENAI_API_KEY"))
        lines = self.apply(config(encrypt_secret("--org", "acme", stdin=KEY)))
        self.assertEqual(
            lines, ["update provider own: api_key_env: OPENAI_API_KEY -> , api_key: not set -> set"]
        )
        provider = Provider.objects.get(slug="own")
        self.assertEqual(
            (provider.api_key_env, secret_decrypt(provider.api_key_encrypted)), ("", KEY)
        )


class EncryptSecretCommandTests(TestCase):
    def test_it_needs_an_organisation_and_a_clean_key(self):
        with self.assertRaisesMessage(CommandError, "--org SLUG is required"):
            encrypt_secret(stdin=KEY)
        with self.assertRaisesMessage(CommandError, "must not be empty"):
            encrypt_secret("--org", "acme", stdin="\n")
        with self.assertRaises(CommandError) as caught:
            encrypt_secret("--org", "acme", stdin="sk-two words")
        self.assertNotIn("sk-two words", str(caught.exception))

    def test_the_token_is_the_only_output_and_rotate_refuses_garbage(self):
        token = encrypt_secret("--org", "acme", stdin=KEY)
        self.assertEqual(len(token.splitlines()), 1)
        self.assertNotIn(KEY, token)
        with self.assertRaises(CommandError):
            encrypt_secret("--rotate", stdin="garbage")
