"""Keys through the API: mint shows the secret once, the database keeps only a digest; leads
manage their own team's keys only; members and finance cannot mint; every change is audited."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from teams.models import AuditEntry, KeySecret, VirtualKey
from teams.services import key_authenticate, key_model_names_clean, key_secret_digest
from tests import factories as f
from tests.teams.api_case import APITestCase


class KeyMintTests(APITestCase):
    def mint(self, user, **body):
        return self.post(user, "/keys/", {"team": "search", "name": "batch-svc", **body})

    def test_mint_returns_the_secret_once_and_the_database_holds_only_its_digest(self):
        f.make_model(self.org_a, "gpt-4.1")
        f.make_model(self.org_a, "gpt-4o-mini")
        response = self.mint(self.lead_a, allowed_models=["gpt-4.1", "gpt-4o-mini"], rpm_limit=60)
        self.assertEqual(response.status_code, 201, response.content)
        body = response.json()
        secret = body["secret"]
        self.assertTrue(secret.startswith("sk-fo-"))
        self.assertEqual(response["Cache-Control"], "no-store")
        self.assertEqual(body["org"], "acme")
        self.assertEqual(body["team"], "search")
        self.assertEqual(body["allowed_models"], ["gpt-4.1", "gpt-4o-mini"])
        self.assertTrue(body["hint"].startswith("sk-fo-") and secret not in body["hint"])

        stored = KeySecret.objects.get(key_id=body["id"])
        self.assertEqual(stored.digest, key_secret_digest(secret=secret))
        for row in KeySecret.objects.filter(key_id=body["id"]).values():
            self.assertNotIn(secret, str(row))
        key, error = key_authenticate(secret=secret)
        self.assertEqual((key.pk, error), (body["id"], ""))

        for path in ("/keys/", f"/keys/{body['id']}/"):
            text = self.get(self.lead_a, path).content.decode()
            self.assertNotIn(secret, text)
            self.assertNotIn(stored.digest, text)
            self.assertNotIn('"secret"', text)

    def test_mint_is_audited_without_the_secret(self):
        secret = self.mint(self.admin_a).json()["secret"]
        entry = AuditEntry.objects.get(action="key.minted", object_repr__startswith="batch-svc")
        self.assertEqual((entry.org, entry.actor), (self.org_a, self.admin_a))
        self.assertNotIn(secret, str(entry.before) + str(entry.after))

    def test_member_cannot_mint_keys(self):
        response = self.mint(self.member_a)
        self.assertEqual(response.status_code, 403)
        self.assertFalse(VirtualKey.objects.filter(name="batch-svc").exists())

    def test_finance_cannot_mint_keys(self):
        self.assertEqual(self.mint(self.finance_a).status_code, 403)

    def test_lead_cannot_mint_for_another_team(self):
        response = self.mint(self.lead_a, team="ads")
        self.assertEqual(response.status_code, 400)
        self.assertIn("team", response.json())
        self.assertFalse(VirtualKey.objects.filter(name="batch-svc").exists())

    def test_admin_mints_for_any_team_of_the_org(self):
        response = self.mint(self.admin_a, team="ads")
        self.assertEqual(response.status_code, 201)
        self.assertEqual(response.json()["team"], "ads")

    def test_default_feature_must_belong_to_the_team(self):
        ok = self.mint(self.lead_a, default_feature="summarize")
        self.assertEqual(ok.status_code, 201, ok.content)
        self.assertEqual(ok.json()["default_feature"], "summarize")
        bad = self.mint(self.admin_a, team="ads", name="other", default_feature="summarize")
        self.assertEqual(bad.status_code, 400)
        self.assertIn("default_feature", bad.json())

    def test_mint_validation_errors_name_the_field(self):
        response = self.mint(
            self.lead_a,
            name="",
            rpm_limit=0,
            allowed_models=["bad name!"],
            expires_at=(timezone.now() - timedelta(days=1)).isoformat(),
        )
        self.assertEqual(response.status_code, 400)
        self.assertEqual(
            set(response.json()), {"name", "rpm_limit", "allowed_models", "expires_at"}
        )

    def test_fallbacks_are_chat_models_of_the_keys_org_in_order(self):
        f.make_model(self.org_a, "gpt-4o-mini")
        f.make_model(self.org_a, "gpt-4.1")
        f.make_model(self.org_b, "globex-only")
        ok = self.mint(self.lead_a, fallbacks=["gpt-4o-mini", "gpt-4.1"])
        self.assertEqual(ok.status_code, 201, ok.content)
        self.assertEqual(ok.json()["fallbacks"], ["gpt-4o-mini", "gpt-4.1"])
        key = VirtualKey.objects.get(pk=ok.json()["id"])
        self.assertEqual(key.fallbacks, ["gpt-4o-mini", "gpt-4.1"])

        for bad in (["globex-only"], ["nope"], ["gpt-4.1", "gpt-4.1"]):
            response = self.mint(self.lead_a, name="bad", fallbacks=bad)
            self.assertEqual(response.status_code, 400, bad)
            self.assertIn("fallbacks", response.json())
        self.assertFalse(VirtualKey.objects.filter(name="bad").exists())

        changed = self.patch(self.lead_a, f"/keys/{key.pk}/", {"fallbacks": ["gpt-4.1"]})
        self.assertEqual(changed.status_code, 200, changed.content)
        key.refresh_from_db()
        self.assertEqual(key.fallbacks, ["gpt-4.1"])
        entry = AuditEntry.objects.filter(action="key.updated").latest("id")
        self.assertEqual(entry.after["fallbacks"], ["gpt-4.1"])

    def test_default_model_is_set_at_mint_and_changed_later(self):
        mini = f.make_model(self.org_a, "gpt-4o-mini")
        f.make_router(self.org_a, "smart", strong=f.make_model(self.org_a, "gpt-4o"), weak=mini)
        ok = self.mint(self.lead_a, default_model="router:smart")
        self.assertEqual(ok.status_code, 201, ok.content)
        self.assertEqual(ok.json()["default_model"], "router:smart")
        key_id = ok.json()["id"]
        changed = self.patch(self.lead_a, f"/keys/{key_id}/", {"default_model": "gpt-4o-mini"})
        self.assertEqual(changed.json()["default_model"], "gpt-4o-mini")
        bad = self.patch(self.lead_a, f"/keys/{key_id}/", {"default_model": "bad name!"})
        self.assertEqual(bad.status_code, 400)
        self.assertIn("default_model", bad.json())

    def test_names_the_org_does_not_have_are_refused_on_mint_and_update(self):
        """A key's allowed and default models must be its org's: another org's model name, or
        one that does not exist, is a 400 naming the field (mint_key refused them already)."""
        f.make_model(self.org_a, "gpt-4o-mini")
        f.make_model(self.org_b, "globex-only")
        for field, value in (
            ("allowed_models", ["gpt-4o-mini", "globex-only"]),
            ("allowed_models", ["no-such-model"]),
            ("default_model", "globex-only"),
            ("default_model", "router:nope"),
        ):
            minted = self.mint(self.lead_a, **{field: value})
            self.assertEqual(minted.status_code, 400, (field, value))
            self.assertIn("unknown model(s) in organisation acme", str(minted.json()[field]))
            key = self.minted_a.key
            changed = self.patch(self.lead_a, f"/keys/{key.pk}/", {field: value})
            self.assertEqual(changed.status_code, 400, (field, value))
            self.assertIn(field, changed.json())
        with self.assertRaises(ValueError):
            key_model_names_clean(org=self.org_a, names=["globex-only"])
        self.assertFalse(VirtualKey.objects.filter(name="batch-svc").exists())

    def test_anonymous_request_is_refused(self):
        from rest_framework.test import APIClient

        response = APIClient().post("/api/v1/keys/", {"team": "search", "name": "x"})
        self.assertEqual(response.status_code, 401)


class KeyLifecycleTests(APITestCase):
    def test_rotate_returns_a_new_secret_once_and_old_one_works_during_grace(self):
        key = self.minted_a.key
        response = self.post(self.lead_a, f"/keys/{key.pk}/rotate/", {"grace_seconds": 300})
        self.assertEqual(response.status_code, 200, response.content)
        new_secret = response.json()["secret"]
        self.assertNotEqual(new_secret, self.minted_a.secret)
        self.assertEqual(key_authenticate(secret=new_secret)[0], key)
        self.assertEqual(key_authenticate(secret=self.minted_a.secret)[0], key)
        self.assertNotIn(new_secret, self.get(self.lead_a, f"/keys/{key.pk}/").content.decode())
        self.assertEqual(response.json()["hint"], f"sk-fo-{new_secret[6:18]}…")
        entry = AuditEntry.objects.get(action="key.rotated", object_id=str(key.pk))
        self.assertEqual(entry.actor, self.lead_a)
        self.assertNotIn(new_secret, str(entry.after))

    def test_rotate_with_zero_grace_stops_the_old_secret(self):
        key = self.minted_a.key
        self.post(self.admin_a, f"/keys/{key.pk}/rotate/", {"grace_seconds": 0})
        self.assertEqual(key_authenticate(secret=self.minted_a.secret), (None, "key_expired"))

    def test_revoke_is_audited_and_idempotent(self):
        key = self.minted_a.key
        response = self.post(self.lead_a, f"/keys/{key.pk}/revoke/")
        self.assertEqual(response.status_code, 200)
        self.assertFalse(response.json()["active"])
        self.assertIsNotNone(response.json()["revoked_at"])
        self.assertNotIn("secret", response.json())
        self.assertEqual(self.post(self.lead_a, f"/keys/{key.pk}/revoke/").status_code, 200)
        self.assertEqual(AuditEntry.objects.filter(action="key.revoked").count(), 1)
        self.assertEqual(key_authenticate(secret=self.minted_a.secret), (None, "key_revoked"))

    def test_revoked_key_cannot_be_rotated(self):
        key = self.minted_a.key
        self.post(self.admin_a, f"/keys/{key.pk}/revoke/")
        response = self.post(self.admin_a, f"/keys/{key.pk}/rotate/")
        self.assertEqual(response.status_code, 409)
        self.assertEqual(key.secrets.count(), 1)

    def test_lead_updates_limits_and_allowed_models_of_own_team_key(self):
        f.make_model(self.org_a, "gpt-4o")
        key = self.minted_a.key
        response = self.patch(
            self.lead_a,
            f"/keys/{key.pk}/",
            {"rpm_limit": 10, "tpm_limit": 5000, "allowed_models": ["gpt-4o", "gpt-4o"]},
        )
        self.assertEqual(response.status_code, 200, response.content)
        self.assertEqual(response.json()["allowed_models"], ["gpt-4o"])
        key.refresh_from_db()
        self.assertEqual((key.rpm_limit, key.tpm_limit), (10, 5000))
        entry = AuditEntry.objects.get(action="key.updated")
        self.assertEqual(entry.before["rpm_limit"], None)
        self.assertEqual(entry.after["rpm_limit"], 10)

    def test_lead_gets_404_for_another_teams_key_and_member_gets_403_on_own_team(self):
        other = self.minted_a2.key
        self.assert_not_found_for(
            [self.lead_a, self.member_a],
            ("get", f"/keys/{other.pk}/"),
            ("post", f"/keys/{other.pk}/revoke/"),
            ("post", f"/keys/{other.pk}/rotate/"),
            ("patch", f"/keys/{other.pk}/", {"rpm_limit": 1}),
        )
        own = self.minted_a.key
        for user in (self.member_a, self.finance_a):
            for path in (f"/keys/{own.pk}/revoke/", f"/keys/{own.pk}/rotate/"):
                with self.subTest(user=user.username, path=path):
                    self.assertEqual(self.post(user, path).status_code, 403)
            self.assertEqual(
                self.patch(user, f"/keys/{own.pk}/", {"rpm_limit": 1}).status_code, 403
            )
        own.refresh_from_db()
        self.assertIsNone(own.revoked_at)

    def test_finance_reads_every_key_of_the_org(self):
        ids = self.ids(self.finance_a, "/keys/")
        self.assertEqual(ids, {self.minted_a.key.pk, self.minted_a2.key.pk})

    def test_member_reads_own_team_keys_only(self):
        self.assertEqual(self.ids(self.member_a, "/keys/"), {self.minted_a.key.pk})

    def test_keys_cannot_be_deleted_only_revoked(self):
        response = self.delete(self.admin_a, f"/keys/{self.minted_a.key.pk}/")
        self.assertEqual(response.status_code, 405)

    def test_token_authentication_works(self):
        from rest_framework.authtoken.models import Token
        from rest_framework.test import APIClient

        token = Token.objects.create(user=self.lead_a)
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
        response = client.get("/api/v1/keys/")
        self.assertEqual(response.status_code, 200)
        self.assertEqual({r["id"] for r in response.json()["results"]}, {self.minted_a.key.pk})
