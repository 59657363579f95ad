"""Uploading a provider's report in the Django admin: stored through the same service (audited,
replacing its days), a bad file a form error naming its line, another org's provider not on
offer, imports never changed or deleted there."""

from __future__ import annotations

from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import TestCase, override_settings

from reports.models import ProviderReportPull, ProviderUsage
from teams.models import AuditEntry
from tests import factories as f

ADD = "/admin/reports/providerreportpull/add/"
GOOD = b"date,model,token_type,tokens,cost_usd\n2026-11-10,gpt-4o-mini,input,1000,0.00015\n"


@override_settings(PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"])
class InvoiceAdminTests(TestCase):
    @classmethod
    def setUpTestData(cls):
        cls.org = f.make_org("inv-a")
        cls.other = f.make_org("inv-b")
        cls.provider = f.make_provider(cls.org, "openai")
        cls.foreign = f.make_provider(cls.other, "theirs")
        cls.finance = f.make_user("fin@inv-a.test", is_staff=True)
        f.make_member(cls.finance, cls.org, "finance")
        cls.lead = f.make_user("lead@inv-a.test", is_staff=True)
        f.make_member(cls.lead, cls.org, "lead", f.make_team(cls.org))

    def post(self, user, provider, data: bytes, name="nov.csv"):
        self.client.force_login(user)
        return self.client.post(
            ADD, {"provider": provider.pk, "file": SimpleUploadedFile(name, data)}
        )

    def test_finance_uploads_a_report(self):
        response = self.post(self.finance, self.provider, GOOD)
        self.assertEqual(response.status_code, 302, response.content[:500])
        pull = ProviderReportPull.objects.get(provider=self.provider)
        self.assertEqual((pull.source, pull.rows, pull.filename), ("csv", 1, "nov.csv"))
        self.assertEqual(ProviderUsage.objects.filter(pull=pull).count(), 1)
        self.assertTrue(AuditEntry.objects.filter(action="invoice.imported").exists())
        self.assertEqual(
            self.client.get(f"/admin/reports/providerreportpull/{pull.pk}/delete/").status_code, 403
        )

    def test_a_bad_file_is_a_form_error_and_stores_nothing(self):
        response = self.post(
            self.finance, self.provider, b"date,model,token_type,tokens\nx,m,input,1\n"
        )
        self.assertEqual(response.status_code, 200)
        self.assertContains(response, "line 2: not a date")
        self.assertFalse(ProviderReportPull.objects.exists())

    def test_another_orgs_provider_is_not_on_offer_and_a_lead_cannot_upload(self):
        response = self.post(self.finance, self.foreign, GOOD)
        self.assertEqual(response.status_code, 200)  # "select a valid choice"
        self.assertFalse(ProviderReportPull.objects.exists())
        self.client.force_login(self.lead)
        self.assertIn(self.client.get(ADD).status_code, (302, 403))
