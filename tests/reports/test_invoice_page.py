"""The "Invoice vs ledger" page: its figures are the reconciliation service's to the cent; only
an organisation's admins and finance open it (404 for everyone else); CSV downloads are
neutralised against formulas; admins accept a drifting price (finance may not); uploads, pulls
and the alert thresholds post back to it; the empty state says how to import; the overview shows
the month's coverage."""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import override_settings
from django.test.client import Client

from finops.money import money, usd_display
from gateway.models import ModelPrice, UsageEvent
from reports.invoices.figures import Figure
from reports.invoices.pull import figures_store
from reports.invoices.reconcile import coverage, org_reconcile, rows_group, totals
from reports.models import ProviderReportPull, ReconciliationPolicy
from reports.pages.invoices_data import month_after, months_back
from tests import factories as f
from tests.base import TwoOrgsTestCase
from tests.reports.ledger import event

TODAY = datetime.now(UTC).date()
THIS = TODAY.replace(day=1)
LAST = months_back(THIS, 1)
BEFORE = months_back(THIS, 2)
D1 = LAST + timedelta(days=4)
D2 = LAST + timedelta(days=9)
D0 = BEFORE + timedelta(days=2)
EVIL = '=HYPERLINK("http://evil.test","x")'
KPI = re.compile(r'data-kpi="([\w-]+)">([^<]*)<')


def _at(day: date, hour: int = 12) -> datetime:
    return datetime.combine(day, time(hour), UTC)


def _ledger(org, team, day: date, *, prompt: int, completion: int = 0, hour: int = 12):
    """A ledger row of gpt-4o-mini at the catalog's 0.15 / 0.60 USD per Mtok."""
    return event(
        org=org,
        team=team,
        model="gpt-4o-mini",
        upstream_model="gpt-4o-mini",
        provider="sim",
        started_at=_at(day, hour),
        prompt_tokens=prompt,
        completion_tokens=completion,
        input_cost=Decimal(prompt) * Decimal("0.15") / 1_000_000,
        output_cost=Decimal(completion) * Decimal("0.60") / 1_000_000,
    )


def invoice_world(org, team, provider) -> None:
    """Three months of one provider's figures next to the ledger:

    - ``BEFORE``: matched;
    - ``LAST``: D1 matched; on D2 the provider billed 10 M input tokens at 0.20 / Mtok (2.00)
      where the gateway metered 8 M at 0.15 (1.20): 0.40 unmetered and 0.40 price drift, and
      1 M tokens (1.50) of a model the gateway never served, named like a spreadsheet formula;
    - this month: today, 1 M tokens billed (0.15), half of them metered.
    """
    _ledger(org, team, D0, prompt=1_000_000)
    figures_store(
        provider=provider,
        source="openai_api",
        start=BEFORE,
        end=LAST,
        figures=[
            Figure(D0, model="gpt-4o-mini", token_type="input", tokens=1_000_000),
            Figure(D0, model="gpt-4o-mini", token_type="input", cost_usd=Decimal("0.15")),
        ],
    )
    _ledger(org, team, D1, prompt=2_000_000, completion=500_000)
    _ledger(org, team, D2, prompt=8_000_000)
    snapshot = "gpt-4o-mini-2024-07-18"
    figures_store(
        provider=provider,
        source="openai_api",
        start=LAST,
        end=THIS,
        figures=[
            Figure(D1, model=snapshot, token_type="input", tokens=2_000_000, account="proj_a"),
            Figure(D1, model=snapshot, token_type="input", cost_usd=Decimal("0.30")),
            Figure(D1, model=snapshot, token_type="output", tokens=500_000, account="proj_a"),
            Figure(D1, model=snapshot, token_type="output", cost_usd=Decimal("0.30")),
            Figure(
                D2,
                model=snapshot,
                token_type="input",
                tokens=8_000_000,
                account="proj_a",
                api_key_id="key_gateway",
            ),
            Figure(
                D2,
                model=snapshot,
                token_type="input",
                tokens=2_000_000,
                account="proj_b",
                api_key_id="key_laptop",
            ),
            Figure(D2, model=snapshot, token_type="input", cost_usd=Decimal("2.00")),
            Figure(D2, model=EVIL, token_type="input", tokens=1_000_000, cost_usd=Decimal("1.50")),
        ],
    )
    _ledger(org, team, TODAY, prompt=500_000, hour=0)
    figures_store(
        provider=provider,
        source="openai_api",
        start=THIS,
        end=TODAY + timedelta(days=1),
        figures=[
            Figure(TODAY, model="gpt-4o-mini", token_type="input", tokens=1_000_000),
            Figure(TODAY, model="gpt-4o-mini", token_type="input", cost_usd=Decimal("0.15")),
        ],
    )


@override_settings(PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"])
class InvoicePageTestCase(TwoOrgsTestCase):
    @classmethod
    def setUpTestData(cls):
        super().setUpTestData()
        cls.provider = f.make_provider(cls.org_a, "sim")
        cls.model = f.make_model(cls.org_a, "gpt-4o-mini", provider=cls.provider)
        cls.azure = f.make_provider(
            cls.org_a, "azure-east", kind="azure", base_url="https://east.openai.azure.com"
        )
        invoice_world(cls.org_a, cls.team_a, cls.provider)
        cls.page = f"/reports/orgs/{cls.org_a.pk}/invoices/"
        cls.last = {"provider": "sim", "month": LAST.strftime("%Y-%m")}

    def setUp(self):
        self.clients: dict[int, Client] = {}

    def client_for(self, user, **kwargs) -> Client:
        """One client per user (messages travel in its session), a new one with ``kwargs``."""
        if not kwargs and user.pk in self.clients:
            return self.clients[user.pk]
        client = Client(**kwargs)
        client.force_login(user)
        if not kwargs:
            self.clients[user.pk] = client
        return client

    def get(self, user, **params):
        return self.client_for(user).get(self.page, params)

    def post(self, user, data: dict, **params):
        query = "&".join(f"{k}={v}" for k, v in {**self.last, **params}.items())
        return self.client_for(user).post(f"{self.page}?{query}", data)

    def csv_rows(self, user, table: str, **params) -> list[dict]:
        response = self.get(user, **{**self.last, **params}, format="csv", table=table)
        self.assertEqual(response.status_code, 200, response.content[:300])
        return list(csv.DictReader(io.StringIO(response.content.decode())))

    def kpis(self, response) -> dict[str, str]:
        return dict(KPI.findall(response.content.decode()))


class FigureTests(InvoicePageTestCase):
    def test_the_kpis_are_the_services_totals_to_the_cent(self):
        rows = org_reconcile([self.provider], LAST, THIS)
        t = totals(rows)
        # the service's own figures, by hand
        self.assertEqual(t["provider_cost"], Decimal("4.10"))
        self.assertEqual(t["ledger_cost"], Decimal("1.80"))
        self.assertEqual(t["unmetered"], Decimal("1.90"))
        self.assertEqual(t["price_drift"], Decimal("0.40"))
        kpis = self.kpis(self.get(self.finance_a, **self.last))
        for key in ("provider_cost", "ledger_cost", "difference", "unmetered", "over_metered"):
            self.assertEqual(kpis[key], usd_display(t[key]), key)
        self.assertEqual(kpis["price_drift"], usd_display(t["price_drift"]))
        self.assertEqual(kpis["matched"], usd_display(t["matched"]))
        self.assertEqual(kpis["provider_cost"], "$4.10")
        share = coverage(rows)
        self.assertEqual(kpis["coverage"], f"{(share * 100).quantize(Decimal('0.1'))}%")
        self.assertEqual(kpis["coverage"], "53.7%")

    def test_the_model_and_day_tables_are_the_services_rows(self):
        rows = org_reconcile([self.provider], LAST, THIS, ("model",))
        expected = {r.model: r for r in rows}
        shown = {r["Model"]: r for r in self.csv_rows(self.admin_a, "models")}
        self.assertEqual(len(shown), 2)
        mini = shown["gpt-4o-mini"]
        self.assertEqual(mini["Provider USD"], money(expected["gpt-4o-mini"].provider_cost))
        self.assertEqual(mini["Ledger USD"], "1.800000000000")
        self.assertEqual(mini["Unmetered"], "0.400000000000")
        self.assertEqual(mini["Price drift"], "0.400000000000")
        self.assertEqual(mini["Class"], "unmetered")  # the larger part; a tie keeps the first
        days = self.csv_rows(self.admin_a, "days")
        self.assertEqual([d["Day"] for d in days], [D1.isoformat(), D2.isoformat()])
        by_day = {r.day: r for r in rows_group(org_reconcile([self.provider], LAST, THIS), ["day"])}
        for d in days:
            r = by_day[date.fromisoformat(d["Day"])]
            self.assertEqual(d["Difference"], money(r.difference))
        self.assertEqual(days[0]["Class"], "matched")
        total = sum(Decimal(d["Provider USD"]) for d in days)
        self.assertEqual(total, Decimal("4.10"))

    def test_the_trend_has_six_months_each_reconciled_over_its_own_days(self):
        trend = self.csv_rows(self.admin_a, "trend")
        self.assertEqual(len(trend), 6)
        self.assertEqual(trend[0]["Month"], LAST.strftime("%Y-%m"))
        self.assertEqual(trend[0]["Provider USD"], "4.100000000000")
        before = trend[1]
        self.assertEqual(before["Month"], BEFORE.strftime("%Y-%m"))
        self.assertEqual(before["Coverage"], "100.00")
        self.assertEqual(int(before["Days compared"]), (LAST - BEFORE).days)
        self.assertEqual(trend[2]["Provider USD"], "0.000000000000")
        html = self.get(self.admin_a, **self.last).content.decode()
        self.assertIn('id="chart-trend"', html)
        self.assertIn('id="invoice-trend"', html)
        self.assertIn("/static/vendor/plotly/plotly.min.js", html)
        self.assertNotIn("cdn.", html)

    def test_the_default_is_the_provider_imported_last_and_its_latest_month(self):
        response = self.get(self.admin_a)
        self.assertEqual(response.status_code, 200)
        sel = response.context["sel"]
        self.assertEqual((sel.provider, sel.first), (self.provider, THIS))
        self.assertEqual(
            response.context["months"], [m.strftime("%Y-%m") for m in (THIS, LAST, BEFORE)]
        )

    def test_a_day_shows_its_models_token_types_and_the_providers_projects_and_keys(self):
        rows = self.csv_rows(self.admin_a, "day", day=D2.isoformat())
        self.assertEqual({(r["Model"], r["Token type"]) for r in rows}, {
            ("gpt-4o-mini", "input"), ("'" + EVIL, "input")
        })  # fmt: skip
        mini = next(r for r in rows if r["Model"] == "gpt-4o-mini")
        self.assertEqual(mini["Provider $/Mtok"], "0.20")
        accounts = self.csv_rows(self.admin_a, "day_accounts", day=D2.isoformat())
        keys = {(a["Project / workspace"], a["API key"]): a["Provider tokens"] for a in accounts}
        self.assertEqual(keys[("proj_a", "key_gateway")], "8000000")
        self.assertEqual(keys[("proj_b", "key_laptop")], "2000000")
        html = self.get(self.admin_a, **self.last, day=D2.isoformat()).content.decode()
        self.assertIn("key_laptop", html)

    def test_unmetered_spend_is_shown_by_the_providers_project_and_key(self):
        accounts = self.csv_rows(self.admin_a, "accounts")
        shown = {
            (a["Project / workspace"], a["API key"]): (a["Provider tokens"], a["Provider USD"])
            for a in accounts
        }
        # the report's costs came apart from its tokens: each key at the day's unit price
        self.assertEqual(shown[("proj_a", "key_gateway")], ("8000000", "1.600000000000"))
        self.assertEqual(shown[("proj_b", "key_laptop")], ("2000000", "0.400000000000"))
        # the formula-named model's figure named no project: its own cost
        none = "(not in the report)"
        self.assertEqual(shown[(none, none)], ("1000000", "1.500000000000"))
        self.assertNotIn(("proj_a", none), shown)  # D1 matched: not listed
        self.assertEqual(sum(Decimal(a["Provider USD"]) for a in accounts), Decimal("3.50"))

    def test_a_bad_month_day_or_provider_is_a_404(self):
        for params in (
            {"month": "2026-13"},
            {"day": "tomorrow"},
            {"month": LAST.strftime("%Y-%m"), "day": THIS.isoformat()},
            {"provider": "nope"},
        ):
            self.assertEqual(self.get(self.admin_a, **params).status_code, 404, params)


class CsvTests(InvoicePageTestCase):
    def test_a_formula_in_a_providers_model_name_is_neutralised(self):
        response = self.get(self.admin_a, **self.last, format="csv", table="models")
        self.assertEqual(response["Content-Type"], "text/csv; charset=utf-8")
        self.assertIn("attachment;", response["Content-Disposition"])
        body = response.content.decode()
        self.assertIn("'" + EVIL.replace('"', '""'), body)
        for line in body.splitlines():
            self.assertFalse(line.startswith("="), line)
            self.assertNotIn(',"=', line)
        # on the page it is text
        html = self.get(self.admin_a, **self.last).content.decode()
        self.assertIn("=HYPERLINK(&quot;http://evil.test&quot;", html)

    def test_every_table_of_the_page_downloads(self):
        for table in ("trend", "models", "days", "accounts", "imports"):
            self.csv_rows(self.finance_a, table)
        short = self.get(self.admin_a, **self.last, csv="models")  # ?csv=NAME, the short form
        long = self.get(self.admin_a, **self.last, format="csv", table="models")
        self.assertEqual(short["Content-Type"], "text/csv; charset=utf-8")
        self.assertEqual(short.content, long.content)
        self.assertEqual(self.get(self.admin_a, csv="nope").status_code, 404)
        self.assertEqual(
            self.get(self.admin_a, **self.last, format="csv", table="day").status_code, 404
        )


class AccessTests(InvoicePageTestCase):
    def test_admins_finance_and_superusers_open_it(self):
        for user in (self.admin_a, self.finance_a, self.superuser):
            self.assertEqual(self.get(user, **self.last).status_code, 200, user)

    def test_team_roles_other_orgs_and_outsiders_get_a_404(self):
        for user in (self.lead_a, self.member_a, self.lead_a2, self.admin_b, self.lead_b,
                     self.outsider):  # fmt: skip
            for params in ({}, self.last, {**self.last, "format": "csv", "table": "models"}):
                response = self.get(user, **params)
                self.assertEqual(response.status_code, 404, (user, params))
                self.assertNotIn(b"4.10", response.content)
            response = self.post(user, {"action": "policy", "unmetered_alert_usd": "1"})
            self.assertEqual(response.status_code, 404, user)
        self.assertFalse(ReconciliationPolicy.objects.exists())

    def test_another_orgs_provider_is_not_on_this_page(self):
        other = f.make_provider(self.org_b, "globex-sim")
        figures_store(
            provider=other,
            source="csv",
            start=LAST,
            end=THIS,
            figures=[Figure(D1, model="gpt-4o", token_type="input", cost_usd=Decimal("777"))],
        )
        self.assertEqual(self.get(self.admin_a, provider="globex-sim").status_code, 404)
        html = self.get(self.admin_a, **self.last).content.decode()
        self.assertNotIn("globex", html)
        self.assertNotIn("777.0", html)
        # and org B's admin sees its own provider only
        response = self.client_for(self.admin_b).get(f"/reports/orgs/{self.org_b.pk}/invoices/")
        self.assertEqual(response.context["sel"].providers, [other])

    def test_anonymous_is_sent_to_log_in(self):
        response = Client().get(self.page)
        self.assertEqual(response.status_code, 302)
        self.assertIn("/accounts/login/", response["Location"])


class AcceptTests(InvoicePageTestCase):
    def suggestion(self) -> dict:
        return {
            "action": "accept",
            "model": self.model.pk,
            "token_type": "input",
            "usd_per_mtok": "0.200000",
            "since": D2.isoformat(),
        }

    def test_an_admin_accepts_the_price_and_the_ledger_is_corrected(self):
        html = self.get(self.admin_a, **self.last).content.decode()
        self.assertIn('name="action" value="accept"', html)
        self.assertIn(f'name="since" value="{D2.isoformat()}"', html)
        self.assertIn('name="usd_per_mtok" value="0.200000"', html)
        response = self.post(self.admin_a, self.suggestion())
        self.assertEqual(response.status_code, 302)
        self.assertEqual(response["Location"], f"{self.page}?provider=sim&month={LAST:%Y-%m}")
        price = ModelPrice.objects.filter(model=self.model).order_by("-effective_from").first()
        self.assertEqual(
            (price.source, price.input_usd_per_mtok), ("reconciliation", Decimal("0.2"))
        )
        self.assertEqual(price.output_usd_per_mtok, Decimal("0.60"))
        corrections = UsageEvent.objects.filter(status="correction", started_at__lt=_at(THIS, 0))
        self.assertEqual(sum(c.cost for c in corrections), Decimal("0.4"))
        page = self.client_for(self.admin_a).get(response["Location"])
        self.assertContains(page, "Accepted 0.20 USD per million input tokens for gpt-4o-mini")
        kpis = self.kpis(page)
        self.assertEqual(kpis["price_drift"], usd_display(0))
        self.assertEqual(kpis["ledger_cost"], "$2.20")
        self.assertNotContains(page, 'name="action" value="accept"')

    def test_finance_sees_the_suggestion_without_the_button_and_is_refused(self):
        html = self.get(self.finance_a, **self.last).content.decode()
        self.assertIn("Only an organisation admin may accept one.", html)
        self.assertIn("0.15", html)
        self.assertNotIn('name="action" value="accept"', html)
        response = self.post(self.finance_a, self.suggestion())
        self.assertEqual(response.status_code, 403)
        self.assertEqual(ModelPrice.objects.filter(model=self.model).count(), 1)
        self.assertFalse(UsageEvent.objects.filter(status="correction").exists())

    def test_a_post_without_the_csrf_token_is_refused(self):
        client = self.client_for(self.admin_a, enforce_csrf_checks=True)
        response = client.post(f"{self.page}?provider=sim", self.suggestion())
        self.assertEqual(response.status_code, 403)
        self.assertEqual(ModelPrice.objects.filter(model=self.model).count(), 1)

    def test_a_model_of_another_provider_is_a_404(self):
        other = f.make_model(self.org_b, "gpt-4o-mini", provider=f.make_provider(self.org_b))
        response = self.post(self.admin_a, {**self.suggestion(), "model": other.pk})
        self.assertEqual(response.status_code, 404)
        self.assertEqual(ModelPrice.objects.filter(model=other).count(), 1)


class ImportTests(InvoicePageTestCase):
    def upload(self, user, content: bytes, name: str = "report.csv", **params):
        data = {"action": "upload", "file": SimpleUploadedFile(name, content, "text/csv")}
        return self.post(user, data, **params)

    def test_finance_uploads_a_report_and_lands_on_its_month(self):
        body = f"date,model,token_type,tokens,cost_usd\n{D0},gpt-4o-mini,output,10,0.000006\n"
        response = self.upload(self.finance_a, body.encode(), "feb.csv")
        self.assertEqual(response.status_code, 302)
        self.assertEqual(response["Location"], f"{self.page}?provider=sim&month={BEFORE:%Y-%m}")
        pull = ProviderReportPull.objects.get(filename="feb.csv")
        self.assertEqual((pull.source, pull.rows, pull.start), ("csv", 1, D0))
        self.assertEqual(pull.created_by, self.finance_a)
        page = self.client_for(self.finance_a).get(response["Location"])
        self.assertContains(page, "Imported 1 figure(s) of feb.csv")
        imports = page.context["tables"]["imports"].rows
        self.assertEqual((imports[0]["filename"], imports[0]["status"]), ("feb.csv", "ok"))

    def test_a_bad_file_says_why_and_stores_nothing(self):
        before = ProviderReportPull.objects.count()
        response = self.upload(self.admin_a, b"date,model,token_type,tokens\nnope,x,input,1\n")
        self.assertEqual(response.status_code, 400)
        self.assertContains(response, "report.csv: line 2:", status_code=400)
        self.assertContains(response, "not a date: &#x27;nope&#x27;", status_code=400)
        self.assertEqual(ProviderReportPull.objects.count(), before)
        response = self.upload(self.admin_a, b"")
        self.assertEqual(response.status_code, 400)  # an empty upload: the form refuses it

    def test_pull_now_records_why_it_failed(self):
        html = self.get(self.admin_a, **self.last).content.decode()
        self.assertIn("Pull now", html)
        self.assertIn("No admin API key is set", html)
        response = self.post(self.admin_a, {"action": "pull"})
        self.assertEqual(response.status_code, 302)
        pull = ProviderReportPull.objects.filter(status="failed").get()
        self.assertEqual((pull.start, pull.end), (LAST, THIS))
        self.assertEqual(pull.error, "no admin API credential is set")
        page = self.client_for(self.admin_a).get(response["Location"])
        self.assertContains(page, "failed: no admin API credential is set")
        # an Azure provider has no usage API: no button
        azure = self.get(self.admin_a, provider="azure-east").content.decode()
        self.assertNotIn("Pull now</button>", azure)

    def test_the_alert_thresholds_form(self):
        page = self.get(self.finance_a, **self.last)
        self.assertContains(page, 'name="unmetered_alert_usd" value="10"')
        response = self.post(
            self.finance_a,
            {"action": "policy", "unmetered_alert_usd": "25", "price_drift_alert_usd": ""},
        )
        self.assertEqual(response.status_code, 302)
        policy = ReconciliationPolicy.objects.get(org=self.org_a)
        self.assertEqual((policy.unmetered_alert_usd, policy.price_drift_alert_usd), (25, None))
        response = self.post(self.admin_a, {"action": "policy", "unmetered_alert_usd": "-5"})
        self.assertEqual(response.status_code, 400)
        self.assertContains(response, "greater than or equal to 0", status_code=400)
        self.assertEqual(ReconciliationPolicy.objects.get(org=self.org_a).unmetered_alert_usd, 25)

    def test_an_unknown_action_is_a_400(self):
        self.assertEqual(self.post(self.admin_a, {"action": "drop"}).status_code, 400)


class EmptyStateTests(InvoicePageTestCase):
    def test_a_provider_without_imports_says_how_to_import(self):
        response = self.get(self.admin_a, provider="azure-east")
        self.assertEqual(response.status_code, 200)
        html = response.content.decode()
        self.assertIn("No import covers", html)
        self.assertIn("python manage.py reconcile_invoices --org acme --provider azure-east", html)
        self.assertIn("--upload FILE", html)
        self.assertIn("Cost Management export", html)
        self.assertIn('name="file"', html)
        self.assertIn("No import of azure-east yet.", html)
        self.assertNotIn('id="chart-trend"', html)

    def test_an_openai_provider_without_imports_mentions_its_admin_key(self):
        f.make_provider(self.org_a, "openai-direct")
        html = self.get(self.admin_a, provider="openai-direct").content.decode()
        self.assertIn("set the provider's admin API key", html)
        self.assertIn("Pull now", html)

    def test_an_org_without_providers(self):
        response = self.client_for(self.admin_b).get(f"/reports/orgs/{self.org_b.pk}/invoices/")
        self.assertEqual(response.status_code, 200)
        self.assertContains(response, "No provider yet")


class OverviewTests(InvoicePageTestCase):
    def test_the_overview_shows_this_months_coverage_and_links_the_page(self):
        response = self.client_for(self.finance_a).get(f"/reports/orgs/{self.org_a.pk}/")
        self.assertEqual(response.status_code, 200)
        rows = org_reconcile([self.provider, self.azure], THIS, month_after(THIS), ("model",))
        self.assertEqual(coverage(rows), Decimal("0.5"))
        self.assertEqual(self.kpis(response)["invoice-coverage"], "")  # a link inside
        self.assertContains(response, f'href="{self.page}?month={THIS:%Y-%m}">50.0%</a>')
        self.assertContains(response, "Invoice coverage")
        self.assertContains(response, f'href="{self.page}">Invoice vs ledger</a>')

    def test_no_coverage_figure_without_imports_this_month(self):
        ProviderReportPull.objects.filter(start=THIS).delete()
        response = self.client_for(self.admin_a).get(f"/reports/orgs/{self.org_a.pk}/")
        self.assertNotContains(response, "Invoice coverage")
        response = self.client_for(self.admin_b).get(f"/reports/orgs/{self.org_b.pk}/")
        self.assertNotContains(response, "Invoice coverage")
