"""``/api/v1/reconciliation/``: rows and totals as fixed-point strings, CSV, scoping (admins and
finance of the org only), imports by upload and by pull, price suggestions and accepting one,
the alert thresholds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from django.core.files.uploadedfile import SimpleUploadedFile

from gateway.models import ModelPrice, UsageEvent
from reports.invoices.figures import Figure
from reports.invoices.pull import figures_store
from reports.models import ProviderReportPull, ReconciliationPolicy
from teams.models import AuditEntry
from tests import factories as f
from tests.reports.ledger import event
from tests.teams.api_case import API, APITestCase

MTOK = Decimal(1_000_000)


class ReconciliationAPITests(APITestCase):
    @classmethod
    def setUpTestData(cls):
        super().setUpTestData()
        cls.day = datetime.now(UTC).date() - timedelta(days=3)
        cls.when = datetime.combine(cls.day, datetime.min.time(), UTC) + timedelta(hours=10)
        cls.provider_a = f.make_provider(cls.org_a, "sim")
        cls.model_a = f.make_model(cls.org_a, provider=cls.provider_a)
        cls.provider_b = f.make_provider(cls.org_b, "sim")
        f.make_model(cls.org_b, provider=cls.provider_b)
        for org, team in ((cls.org_a, cls.team_a), (cls.org_b, cls.team_b)):
            event(
                org=org,
                team=team,
                model="gpt-4o-mini",
                upstream_model="gpt-4o-mini",
                provider="sim",
                started_at=cls.when,
                prompt_tokens=1_000_000,
                completion_tokens=0,
                input_cost=Decimal("0.15"),
                output_cost=Decimal(0),
            )
        for provider, tokens, cost in (
            (cls.provider_a, 3_000_000, "0.6"),
            (cls.provider_b, 1_000_000, "0.15"),
        ):
            figures_store(
                provider=provider,
                source="openai_api",
                start=cls.day,
                end=cls.day + timedelta(days=1),
                figures=[
                    Figure(cls.day, model="gpt-4o-mini-2024-07-18", token_type="input",
                           tokens=tokens, account="proj_main", api_key_id="key_x"),
                    Figure(cls.day, model="gpt-4o-mini-2024-07-18", token_type="input",
                           cost_usd=Decimal(cost)),
                ],
            )  # fmt: skip

    def window(self, **extra):
        return {"start": self.day.isoformat(), "end": self.day.isoformat(), **extra}

    def test_rows_split_the_difference_exactly_as_strings(self):
        body = self.get(self.finance_a, "/reconciliation/", **self.window()).json()
        (row,) = body["rows"]
        # the provider billed 3 M tokens at $0.20: 2 M unmetered ($0.40), 1 M at the wrong
        # catalog price ($0.05 of drift)
        assert row["provider"] == "sim" and row["model"] == "gpt-4o-mini"
        assert row["provider_tokens"] == 3_000_000 and row["ledger_tokens"] == 1_000_000
        assert row["provider_cost_usd"] == "0.600000000000"
        assert row["ledger_cost_usd"] == "0.150000000000"
        assert row["difference_usd"] == "0.450000000000"
        assert row["unmetered_usd"] == "0.400000000000"
        assert row["price_drift_usd"] == "0.050000000000"
        assert row["class"] == "unmetered"
        assert row["accounts"] == [
            {"account": "", "api_key_id": "", "tokens": 0, "cost_usd": "0.600000000000"},
            {"account": "proj_main", "api_key_id": "key_x", "tokens": 3000000,
             "cost_usd": "0.000000000000"},
        ]  # fmt: skip
        assert body["totals"]["unmetered"] == "0.400000000000"
        assert body["coverage"] == "0.3333"

    def test_group_by_token_type_and_bad_parameters(self):
        body = self.get(
            self.admin_a, "/reconciliation/", **self.window(group_by="token_type")
        ).json()
        assert [(r["day"], r["model"], r["token_type"]) for r in body["rows"]] == [
            (None, "", "input")
        ]
        for params, field in (
            ({"group_by": "team"}, "group_by"),
            ({"start": "2026-13-01"}, "start"),
            ({"start": "2026-05-02", "end": "2026-05-01"}, "start"),
            ({"start": "2020-01-01", "end": "2026-01-01"}, "end"),
        ):
            r = self.get(self.admin_a, "/reconciliation/", **params)
            assert r.status_code == 400 and field in r.json(), (params, r.content)

    def test_csv_has_the_same_rows(self):
        r = self.get(self.finance_a, "/reconciliation/", **self.window(format="csv"))
        assert r.status_code == 200 and r["content-type"].startswith("text/csv")
        lines = r.content.decode().strip().splitlines()
        assert lines[0].startswith("provider,day,model,token_type")
        assert len(lines) == 2 and ",unmetered" in lines[1]

    def test_only_the_orgs_admins_and_finance_see_its_invoice(self):
        body = self.get(self.admin_b, "/reconciliation/", **self.window()).json()
        assert [r["provider_cost_usd"] for r in body["rows"]] == ["0.150000000000"]
        # ?org= narrows to one of the user's organisations (a superuser reads both)
        both = self.get(self.superuser, "/reconciliation/", **self.window()).json()["rows"]
        one = self.get(self.superuser, "/reconciliation/", **self.window(org="globex")).json()
        assert len(both) == 2 and [r["provider_cost_usd"] for r in one["rows"]] == [
            "0.150000000000"
        ]
        for user in (self.lead_a, self.member_a, self.outsider):
            assert self.get(user, "/reconciliation/", **self.window()).json()["rows"] == []
        # another org's provider id: not there
        r = self.post(self.admin_a, "/reconciliation/imports/pull/", {
            "provider": self.provider_b.pk,
            "start": self.day.isoformat(),
            "end": self.day.isoformat(),
        })  # fmt: skip
        assert r.status_code == 400 and "provider" in r.json()
        assert (
            self.get(
                self.admin_a, f"/reconciliation/imports/{self._pull(self.provider_b)}/"
            ).status_code
            == 404
        )

    def _pull(self, provider):
        return ProviderReportPull.objects.filter(provider=provider).first().pk

    def test_upload_replaces_the_days_and_is_audited(self):
        data = (
            f"date,model,token_type,tokens,cost_usd\n{self.day},gpt-4o-mini,input,1000000,0.15\n"
        ).encode()
        client = self.client_for(self.finance_a)
        r = client.post(
            f"{API}/reconciliation/imports/",
            {"provider": self.provider_a.pk, "file": SimpleUploadedFile("nov.csv", data)},
            format="multipart",
        )
        assert r.status_code == 201, r.content
        assert r.json()["source"] == "csv" and r.json()["rows"] == 1
        assert AuditEntry.objects.filter(action="invoice.imported", org=self.org_a).exists()
        (row,) = self.get(self.finance_a, "/reconciliation/", **self.window()).json()["rows"]
        assert row["class"] == "matched"
        bad = client.post(
            f"{API}/reconciliation/imports/",
            {"provider": self.provider_a.pk, "file": SimpleUploadedFile("x.csv", b"date,model\n")},
            format="multipart",
        )
        assert bad.status_code == 400 and "missing column" in bad.json()["file"][0]
        lead = self.client_for(self.lead_a).post(
            f"{API}/reconciliation/imports/",
            {"provider": self.provider_a.pk, "file": SimpleUploadedFile("nov.csv", data)},
            format="multipart",
        )
        assert lead.status_code in (400, 403)

    def test_a_pull_without_an_admin_key_is_recorded_as_failed(self):
        r = self.post(self.admin_a, "/reconciliation/imports/pull/", {
            "provider": self.provider_a.pk,
            "start": self.day.isoformat(),
            "end": self.day.isoformat(),
        })  # fmt: skip
        assert r.status_code == 201, r.content
        assert r.json()["status"] == "failed" and "no admin API credential" in r.json()["error"]
        # the failed pull replaced nothing
        (row,) = self.get(self.finance_a, "/reconciliation/", **self.window()).json()["rows"]
        assert row["provider_tokens"] == 3_000_000

    def test_suggestions_and_accepting_one(self):
        (s,) = self.get(self.admin_a, "/reconciliation/suggestions/", **self.window()).json()[
            "suggestions"
        ]
        assert (s["model_name"], s["token_type"], s["since"]) == (
            "gpt-4o-mini",
            "input",
            self.day.isoformat(),
        )
        assert Decimal(s["implied_usd_per_mtok"]) == Decimal("0.2")
        assert Decimal(s["catalog_usd_per_mtok"]) == Decimal("0.15")
        body = {
            "model": s["model"],
            "token_type": "input",
            "usd_per_mtok": "0.2",
            "since": s["since"],
        }
        assert self.post(self.finance_a, "/reconciliation/suggestions/", body).status_code == 403
        assert self.post(self.admin_b, "/reconciliation/suggestions/", body).status_code == 404
        r = self.post(self.admin_a, "/reconciliation/suggestions/", body)
        assert r.status_code == 201, r.content
        assert r.json()["correction_rows"] == 1
        assert ModelPrice.objects.filter(model=self.model_a, source="reconciliation").count() == 1
        assert UsageEvent.objects.filter(status="correction", org_id=self.org_a.pk).count() == 1
        (row,) = self.get(self.finance_a, "/reconciliation/", **self.window()).json()["rows"]
        assert row["price_drift_usd"] == "0.000000000000"
        assert row["unmetered_usd"] == "0.400000000000"
        future = {**body, "since": (datetime.now(UTC).date() + timedelta(days=2)).isoformat()}
        assert self.post(self.admin_a, "/reconciliation/suggestions/", future).status_code == 400

    def test_policy_get_and_put(self):
        r = self.get(self.finance_a, "/reconciliation/policy/", org="acme")
        assert r.json()["unmetered_alert_usd"] == "10.000000"
        r = self.client_for(self.finance_a).put(
            f"{API}/reconciliation/policy/?org=acme",
            {"unmetered_alert_usd": "25", "price_drift_alert_usd": None},
            format="json",
        )
        assert r.status_code == 200, r.content
        policy = ReconciliationPolicy.objects.get(org=self.org_a)
        assert policy.unmetered_alert_usd == 25 and policy.price_drift_alert_usd is None
        bad = self.client_for(self.admin_a).put(
            f"{API}/reconciliation/policy/?org=acme",
            {"unmetered_alert_usd": "-1", "price_drift_alert_usd": "1"},
            format="json",
        )
        assert bad.status_code == 400
        assert self.get(self.lead_a, "/reconciliation/policy/", org="acme").status_code == 404
        assert self.get(self.admin_a, "/reconciliation/policy/", org="globex").status_code == 404
