"""mint_key: the secret is printed once, as the last line, and nowhere else."""

from __future__ import annotations

import json
from io import StringIO

from django.core.management import call_command
from django.core.management.base import CommandError

from teams.models import AuditEntry, KeySecret, VirtualKey
from teams.services import key_authenticate
from tests import factories as f
from tests.base import TwoOrgsTestCase


def mint(*args: str) -> list[str]:
    out, err = StringIO(), StringIO()
    call_command("mint_key", *args, stdout=out, stderr=err)
    assert err.getvalue() == ""
    return out.getvalue().rstrip("\n").split("\n")


class MintKeyTests(TwoOrgsTestCase):
    @classmethod
    def setUpTestData(cls):
        super().setUpTestData()
        f.make_model(cls.org_a, "gpt-4o-mini")

    def test_last_line_is_a_secret_that_authenticates(self):
        lines = mint("--org", "acme", "--team", "search", "--name", "billing-svc")
        secret = lines[-1]
        self.assertTrue(secret.startswith("sk-fo-"))
        key, error = key_authenticate(secret=secret)
        self.assertEqual(error, "")
        self.assertEqual((key.name, key.team, key.org), ("billing-svc", self.team_a, self.org_a))
        for line in lines[:-1]:
            self.assertNotIn(secret, line)
            self.assertNotIn(secret[len("sk-fo-") + 12 :], line)  # not even the secret part

    def test_secret_is_stored_nowhere_in_clear(self):
        secret = mint("--org", "acme", "--team", "search", "--name", "svc")[-1]
        key = VirtualKey.objects.get(name="svc")
        stored = list(KeySecret.objects.filter(key=key).values_list("lookup", "digest"))
        self.assertTrue(all(secret not in value for row in stored for value in row))
        audit = AuditEntry.objects.filter(object_id=str(key.pk))
        self.assertTrue(audit.exists())
        for entry in audit:
            self.assertNotIn(secret, json.dumps([entry.before, entry.after, entry.object_repr]))

    def test_options_set_feature_models_and_limits(self):
        lines = mint(
            "--org", "acme", "--team", "search", "--name", "svc", "--feature", "summarize",
            "--models", "gpt-4o-mini", "--rpm", "60", "--tpm", "100000", "--max-parallel", "4",
            "--expires-days", "30",
        )  # fmt: skip
        key, _ = key_authenticate(secret=lines[-1])
        self.assertEqual(key.default_feature, self.feature_a)
        self.assertEqual(key.allowed_models, ["gpt-4o-mini"])
        self.assertEqual((key.rpm_limit, key.tpm_limit, key.max_parallel), (60, 100000, 4))
        self.assertIsNotNone(key.expires_at)
        self.assertIn("  models: gpt-4o-mini", lines)

    def test_unknown_names_are_clear_errors(self):
        cases = [
            (["--org", "nope", "--team", "search"], "unknown organisation 'nope'"),
            (["--org", "acme", "--team", "nope"], "unknown team 'nope' in organisation acme"),
            (["--org", "acme", "--team", "search", "--feature", "nope"], "unknown feature 'nope'"),
            (["--org", "acme", "--team", "search", "--models", "gpt-9"], "unknown model(s)"),
            # another organisation's team is not found through this one
            (["--org", "globex", "--team", "ads"], "unknown team 'ads' in organisation globex"),
        ]
        keys = VirtualKey.objects.count()
        for args, message in cases:
            with self.subTest(message=message), self.assertRaises(CommandError) as ctx:
                call_command("mint_key", *args, "--name", "x", stdout=StringIO())
            self.assertIn(message, str(ctx.exception))
        self.assertEqual(VirtualKey.objects.count(), keys)
