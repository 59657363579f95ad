"""Key secrets: shown once, stored as an HMAC, compared in constant time; rotation grace."""

from __future__ import annotations

from datetime import timedelta

from django.db import connection
from django.test import TestCase
from django.utils import timezone

from teams.models import KeySecret
from teams.services import key_authenticate, key_revoke, key_rotate
from tests import factories as f


class KeyServiceTests(TestCase):
    @classmethod
    def setUpTestData(cls):
        cls.team = f.make_team(f.make_org())

    def test_the_database_never_holds_the_secret(self):
        minted = f.make_key(self.team)
        assert minted.secret.startswith("sk-fo-")
        with connection.cursor() as cursor:
            cursor.execute("SELECT lookup, digest FROM teams_keysecret")
            rows = cursor.fetchall()
        body = minted.secret.removeprefix("sk-fo-")
        assert rows and all(body not in " ".join(map(str, row)) for row in rows)
        assert key_authenticate(secret=minted.secret) == (minted.key, "")

    def test_a_wrong_secret_with_the_right_lookup_prefix_is_rejected(self):
        minted = f.make_key(self.team)
        forged = minted.secret[:-1] + ("A" if minted.secret[-1] != "A" else "B")
        assert key_authenticate(secret=forged) == (None, "invalid_api_key")
        assert key_authenticate(secret="sk-fo-short") == (None, "invalid_api_key")

    def test_rotation_keeps_the_old_secret_for_the_grace_period_only(self):
        minted = f.make_key(self.team)
        rotated = key_rotate(key=minted.key, grace_seconds=3600)
        assert rotated.secret != minted.secret
        assert key_authenticate(secret=minted.secret)[0] == minted.key
        assert key_authenticate(secret=rotated.secret)[0] == minted.key
        later = timezone.now() + timedelta(hours=2)
        assert key_authenticate(secret=minted.secret, now=later) == (None, "key_expired")
        assert key_authenticate(secret=rotated.secret, now=later)[0] == minted.key
        assert KeySecret.objects.filter(key=minted.key).count() == 2

    def test_revoked_and_expired_keys_are_refused_with_their_codes(self):
        revoked = f.make_key(self.team)
        key_revoke(key=revoked.key)
        assert key_authenticate(secret=revoked.secret) == (None, "key_revoked")
        expired = f.make_key(self.team, expires_at=timezone.now() - timedelta(seconds=1))
        assert key_authenticate(secret=expired.secret) == (None, "key_expired")
