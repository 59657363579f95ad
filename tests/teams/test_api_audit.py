"""The audit log API: admin and finance read it; it records control-plane changes with
before/after and never a secret; it cannot be written through the API."""

from __future__ import annotations

from tests.teams.api_case import APITestCase


class AuditTests(APITestCase):
    def test_admin_and_finance_read_the_audit_log_others_see_nothing(self):
        minted = self.post(self.admin_a, "/keys/", {"team": "search", "name": "svc"}).json()
        for user in (self.admin_a, self.finance_a):
            rows = self.rows(user, "/audit/", action="key.minted", object_id=minted["id"])
            self.assertEqual(len(rows), 1)
            self.assertEqual(rows[0]["actor"], "admin@acme.test")
            self.assertEqual(rows[0]["object_id"], str(minted["id"]))
        for user in (self.lead_a, self.member_a):
            self.assertEqual(self.rows(user, "/audit/"), [])

    def test_no_audit_entry_ever_contains_a_secret(self):
        minted = self.post(self.lead_a, "/keys/", {"team": "search", "name": "svc"}).json()
        rotated = self.post(self.lead_a, f"/keys/{minted['id']}/rotate/").json()
        self.post(self.lead_a, f"/keys/{minted['id']}/revoke/")
        text = self.get(self.admin_a, "/audit/").content.decode()
        for secret in (minted["secret"], rotated["secret"]):
            self.assertNotIn(secret, text)
        rows = self.rows(self.admin_a, "/audit/", object_type="virtualkey")
        actions = [r["action"] for r in rows if r["object_id"] == str(minted["id"])]
        self.assertEqual(actions, ["key.revoked", "key.rotated", "key.minted"])

    def test_audit_log_is_read_only(self):
        before = self.rows(self.admin_a, "/audit/")
        response = self.post(self.admin_a, "/audit/", {"action": "x"})
        self.assertIn(response.status_code, (403, 405))
        self.assertEqual(self.rows(self.admin_a, "/audit/"), before)
