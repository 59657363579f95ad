"""Alerts: thresholds once per window (never twice, even racing), forecast, anomaly, chargeback,
emails with text and HTML parts, webhooks with backoff, the alerts API and admin, scoped."""

from __future__ import annotations

import http.server
import threading
from datetime import date, timedelta
from decimal import Decimal

from django.core import mail
from django.core.mail.backends.base import BaseEmailBackend
from django.test import override_settings

from reports.forecast import budget_spent
from reports.models import AlertKind, AlertStatus, AlertWebhook, BudgetAlert, RollupState
from reports.services import budget_alerts_evaluate, usage_rollup
from reports.services.notify import _claim, alert_deliver
from teams.models import Role
from tests import factories as f
from tests.reports.ledger import event, utc
from tests.teams.api_case import APITestCase

NOW = utc(2026, 3, 20, 12, 0)  # a Friday


class FailingBackend(BaseEmailBackend):
    def send_messages(self, messages):
        raise ConnectionRefusedError("smtp down")


class AlertTestCase(APITestCase):
    def setUp(self):
        RollupState.objects.all().delete()
        mail.outbox = []

    def spend(self, amount: str, *, when=None, team=None, **kw):
        event(
            org=kw.pop("org", self.org_a),
            team=team or self.team_a,
            started_at=when or NOW - timedelta(hours=2),
            input_cost=amount,
            output_cost="0",
            **kw,
        )
        usage_rollup()

    def evaluate(self, now=NOW):
        return budget_alerts_evaluate(now=now)

    @staticmethod
    def mails(kind: str = "threshold") -> list:
        return [m for m in mail.outbox if m.extra_headers["X-FinOps-Alert-Kind"] == kind]


class ThresholdAlertTests(AlertTestCase):
    def setUp(self):
        super().setUp()
        self.budget = f.make_budget(
            self.org_a,
            scope="team",
            team=self.team_a,
            limit="1.00",
            alert_thresholds=[50, 80, 100],
            recipients=["ops@acme.test"],
        )

    def test_one_email_per_threshold_per_window_with_numbers_and_contributors(self):
        self.spend("0.30", feature="summarize")
        self.spend("0.20", feature="chat")
        self.spend("0.10", feature="search")
        self.spend("0.01", feature="tiny")
        self.evaluate()
        self.assertEqual(len(mail.outbox), 1)
        message = mail.outbox[0]
        self.assertIn("50% of the monthly budget", message.subject)
        self.assertEqual(message.to, ["ops@acme.test", "lead@acme.test"])
        text = message.body
        self.assertIn("0.610000 USD", text)  # under a dollar: micro-dollars
        self.assertIn("61.00%", text)
        self.assertIn("feature summarize", text)
        self.assertIn("feature chat", text)
        self.assertIn("feature search", text)
        self.assertNotIn("tiny", text)  # top 3 only
        alert = BudgetAlert.objects.get()
        self.assertIn(f"http://127.0.0.1:8000/reports/alerts/{alert.pk}/", text)
        [(html, mimetype)] = message.alternatives
        self.assertEqual(mimetype, "text/html")
        self.assertIn("<strong>summarize</strong>", html)
        self.assertEqual((alert.status, alert.threshold), (AlertStatus.SENT, 50))
        self.assertEqual(alert.spent_usd, Decimal("0.61"))

        self.evaluate()
        self.evaluate(NOW + timedelta(minutes=5))
        self.assertEqual(len(mail.outbox), 1)  # never twice

        self.spend("0.25")  # 86%
        self.evaluate()
        self.assertEqual(len(mail.outbox), 2)
        self.assertIn("80% of the monthly budget", mail.outbox[1].subject)
        self.assertEqual(
            list(BudgetAlert.objects.order_by("threshold").values_list("threshold", "status")),
            [(50, "sent"), (80, "sent")],
        )

    def test_crossing_several_thresholds_at_once_sends_only_the_highest(self):
        self.spend("0.90")
        self.evaluate()
        self.assertEqual(len(mail.outbox), 1)
        self.assertIn("80%", mail.outbox[0].subject)
        self.assertEqual(
            dict(BudgetAlert.objects.values_list("threshold", "status")),
            {50: "superseded", 80: "sent"},
        )

    def test_a_new_window_alerts_again(self):
        self.spend("0.6")
        self.evaluate()
        self.spend("0.6", when=utc(2026, 4, 2, 9))
        self.evaluate(utc(2026, 4, 2, 12))
        self.assertEqual(len(self.mails()), 2)
        self.assertEqual(len(self.mails("chargeback")), 1)  # March's statement, on the 2nd
        self.assertEqual(
            sorted(
                BudgetAlert.objects.filter(kind=AlertKind.THRESHOLD).values_list(
                    "window_start", flat=True
                )
            ),
            [utc(2026, 3, 1), utc(2026, 4, 1)],
        )

    def test_two_workers_cannot_claim_the_same_alert(self):
        self.spend("0.6")
        with self.settings(EMAIL_BACKEND="tests.reports.test_alerts.FailingBackend"):
            self.evaluate()  # recorded; the send fails, so it stays pending
        alert = BudgetAlert.objects.get()
        self.assertEqual((alert.status, alert.attempts), (AlertStatus.PENDING, 1))
        self.assertIn("smtp down", alert.last_error)
        first = _claim(alert, now=NOW)
        second = _claim(alert, now=NOW)
        self.assertIsNotNone(first)
        self.assertIsNone(second)
        self.assertFalse(alert_deliver(alert, now=NOW))
        # a claim older than the TTL belongs to a dead worker: it may be taken over
        self.assertTrue(alert_deliver(alert, now=NOW + timedelta(minutes=11)))
        self.assertFalse(alert_deliver(alert, now=NOW + timedelta(minutes=30)))
        self.assertEqual(len(mail.outbox), 1)

    @override_settings(EMAIL_BACKEND="tests.reports.test_alerts.FailingBackend")
    def test_a_failed_email_is_retried_then_given_up(self):
        self.spend("0.6")
        for i in range(6):
            self.evaluate(NOW + timedelta(minutes=i))
        alert = BudgetAlert.objects.get()
        self.assertEqual((alert.status, alert.attempts), (AlertStatus.FAILED, 5))

    def test_budget_spend_comes_from_the_rollups_and_ignores_shadow_spend(self):
        self.spend("0.2")
        self.spend("5", shadow=True)
        self.spend("9", team=self.team_a2)
        self.assertEqual(budget_spent(self.budget, at=NOW).spent, Decimal("0.2"))


class BudgetScopeTests(AlertTestCase):
    def test_feature_budget_names_endpoints_and_org_budget_mails_admins_and_finance(self):
        feature = f.make_budget(
            self.org_a,
            scope="feature",
            team=self.team_a,
            feature=self.feature_a,
            limit="1",
            alert_thresholds=[50],
        )
        org = f.make_budget(self.org_a, scope="org", limit="2", alert_thresholds=[25])
        self.spend("0.4", feature="summarize", endpoint="/a")
        self.spend("0.2", feature="summarize", endpoint="/b")
        self.spend("0.1", feature="other", team=self.team_a2)
        self.evaluate()
        by_budget = {m.extra_headers["X-FinOps-Alert"].split(":")[1]: m for m in mail.outbox}
        feature_mail = by_budget[str(feature.pk)]
        self.assertIn("endpoint /a", feature_mail.body)
        self.assertEqual(feature_mail.to, ["lead@acme.test"])
        org_mail = by_budget[str(org.pk)]
        self.assertEqual(sorted(org_mail.to), ["admin@acme.test", "finance@acme.test"])
        self.assertIn("team search", org_mail.body)
        self.assertIn("team ads", org_mail.body)

    def test_key_budget(self):
        key = self.minted_a.key
        f.make_budget(self.org_a, scope="key", team=self.team_a, key=key, limit="1")
        self.spend("0.7", key_id=key.pk)
        self.spend("0.7")  # same team, another key: not this budget's
        self.evaluate()
        [message] = mail.outbox
        self.assertIn("key search-svc", message.subject)
        self.assertIn("50%", message.subject)


class ForecastAlertTests(AlertTestCase):
    def test_run_rate_over_the_limit_warns_once_with_the_exhaustion_date(self):
        budget = f.make_budget(
            self.org_a, scope="team", team=self.team_a, limit="20", alert_thresholds=[90]
        )
        # four weeks of history: 1.00 per weekday, 0.10 per weekend day
        for days_ago in range(1, 29):
            day = NOW - timedelta(days=days_ago)
            amount = "0.10" if day.weekday() >= 5 else "1.00"
            event(
                org=self.org_a, team=self.team_a, started_at=day, input_cost=amount, output_cost="0"
            )
        usage_rollup()
        self.evaluate()
        alert = BudgetAlert.objects.get(kind=AlertKind.FORECAST)
        spent = budget_spent(budget, at=NOW).spent
        self.assertLess(spent, Decimal(20))
        # March 2026: 13.x spent by the 19th; then half of Friday 20th, 7 weekdays, 4 weekend days
        self.assertGreater(alert.forecast_usd, Decimal(20))
        self.assertEqual(alert.exhausts_on, date(2026, 3, 27))
        self.assertIn("on track to exceed the monthly budget by 2026-03-27", alert.subject)
        self.assertEqual(len(mail.outbox), 1)
        self.evaluate(NOW + timedelta(hours=1))
        self.assertEqual(BudgetAlert.objects.filter(kind=AlertKind.FORECAST).count(), 1)

    def test_no_forecast_alert_when_the_projection_fits(self):
        f.make_budget(self.org_a, scope="team", team=self.team_a, limit="100")
        for days_ago in range(1, 20):
            event(
                org=self.org_a,
                team=self.team_a,
                started_at=NOW - timedelta(days=days_ago),
                input_cost="1",
            )
        usage_rollup()
        self.evaluate()
        self.assertFalse(BudgetAlert.objects.filter(kind=AlertKind.FORECAST).exists())


class AnomalyAlertTests(AlertTestCase):
    def test_a_day_far_above_the_baseline_alerts_once_with_top_endpoints_and_models(self):
        for days_ago in range(1, 15):
            amount = "1.00" if days_ago % 2 else "1.20"
            event(
                org=self.org_a,
                team=self.team_a,
                feature="summarize",
                started_at=NOW - timedelta(days=days_ago),
                input_cost=amount,
            )
        event(org=self.org_a, team=self.team_a, feature="summarize", endpoint="/bulk",
              model="gpt-4o", started_at=NOW - timedelta(hours=1), input_cost="9")  # fmt: skip
        usage_rollup()
        self.evaluate()
        [alert] = BudgetAlert.objects.filter(kind=AlertKind.ANOMALY)
        self.assertEqual(alert.team, self.team_a)
        self.assertEqual(alert.feature, "")  # the team's alert covers its feature
        self.assertEqual(alert.baseline_usd.quantize(Decimal("0.01")), Decimal("1.10"))
        [message] = mail.outbox
        self.assertIn("Unusual spend: team search", message.subject)
        self.assertIn("endpoint /bulk", message.body)
        self.assertIn("model gpt-4o", message.body)
        self.assertEqual(message.to, ["lead@acme.test", "finance@acme.test"])
        self.evaluate(NOW + timedelta(minutes=10))
        self.assertEqual(len(mail.outbox), 1)

    def test_an_ordinary_day_is_not_an_anomaly(self):
        for days_ago in range(0, 15):
            event(
                org=self.org_a,
                team=self.team_a,
                started_at=NOW - timedelta(days=days_ago, hours=1),
                input_cost="1.5" if days_ago % 3 else "1",
            )
        usage_rollup()
        self.evaluate()
        self.assertFalse(BudgetAlert.objects.filter(kind=AlertKind.ANOMALY).exists())


class ChargebackTests(AlertTestCase):
    def test_statement_per_team_on_the_first_once(self):
        self.spend("3", when=utc(2026, 3, 5, 10), feature="summarize", model="gpt-4o")
        self.spend("1", when=utc(2026, 3, 6, 10), feature="chat", model="gpt-4o-mini")
        self.spend("2", when=utc(2026, 3, 7, 10), team=self.team_a2, feature="ads")
        self.spend("5", when=utc(2026, 3, 7, 10), shadow=True)
        self.spend("9", when=utc(2026, 4, 1, 0, 30))  # April: not in March's statement
        self.evaluate(utc(2026, 4, 1, 0, 30))  # before 01:00: rollups may still lag
        self.assertFalse(BudgetAlert.objects.filter(kind=AlertKind.CHARGEBACK).exists())
        self.evaluate(utc(2026, 4, 1, 6))
        alerts = {a.team.slug: a for a in BudgetAlert.objects.filter(kind=AlertKind.CHARGEBACK)}
        self.assertEqual(set(alerts), {"search", "ads"})
        search = alerts["search"]
        self.assertEqual(search.spent_usd, Decimal("4"))
        self.assertEqual(search.details["evaluation_cost"], "5.000000000000")
        self.assertEqual([r["name"] for r in search.details["by_feature"]], ["summarize", "chat"])
        message = next(m for m in self.mails("chargeback") if "team search" in m.subject)
        self.assertIn("Chargeback statement 2026-03", message.subject)
        self.assertIn("gpt-4o-mini: 1.00 USD", message.body)
        self.evaluate(utc(2026, 4, 2, 6))
        self.evaluate(utc(2026, 4, 10, 6))
        self.assertEqual(BudgetAlert.objects.filter(kind=AlertKind.CHARGEBACK).count(), 2)


class _Hook(http.server.BaseHTTPRequestHandler):
    statuses: list[int] = []
    bodies: list[bytes] = []

    def do_POST(self):  # noqa: N802
        body = self.rfile.read(int(self.headers["content-length"]))
        type(self).bodies.append(body)
        status = type(self).statuses.pop(0) if type(self).statuses else 200
        self.send_response(status)
        self.end_headers()

    def log_message(self, *args):
        pass


class WebhookTests(AlertTestCase):
    def setUp(self):
        super().setUp()
        _Hook.statuses, _Hook.bodies = [500, 503], []
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.addCleanup(self.server.server_close)
        self.addCleanup(self.server.shutdown)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"

    @override_settings(FINOPS_WEBHOOK_BACKOFF_SECONDS=60)
    def test_webhook_is_retried_with_backoff_and_never_holds_the_email_back(self):
        budget = f.make_budget(self.org_a, scope="team", team=self.team_a, limit="1")
        AlertWebhook.objects.create(org=self.org_a, budget=budget, url=self.url)
        AlertWebhook.objects.create(org=self.org_b, url=self.url)  # another org's: not used
        self.spend("0.6")
        self.evaluate()
        self.assertEqual(len(mail.outbox), 1)  # the email went out though the webhook failed
        alert = BudgetAlert.objects.get()
        self.assertEqual((alert.webhook_status, alert.webhook_attempts), ("pending", 1))
        self.assertEqual(alert.webhook_next_at, NOW + timedelta(seconds=60))
        self.evaluate(NOW + timedelta(seconds=30))  # not due yet
        self.assertEqual(len(_Hook.bodies), 1)
        self.evaluate(NOW + timedelta(seconds=61))  # second failure: backoff doubles
        alert.refresh_from_db()
        self.assertEqual(alert.webhook_next_at, NOW + timedelta(seconds=61 + 120))
        self.evaluate(NOW + timedelta(seconds=200))
        alert.refresh_from_db()
        self.assertEqual((alert.webhook_status, alert.webhook_attempts), ("sent", 3))
        self.assertEqual(len(_Hook.bodies), 3)
        self.assertIn(b'"text"', _Hook.bodies[-1])
        self.assertIn(b"50% of the monthly budget", _Hook.bodies[-1])
        self.evaluate(NOW + timedelta(hours=2))
        self.assertEqual(len(_Hook.bodies), 3)
        self.assertEqual(len(mail.outbox), 1)


class AlertAPITests(AlertTestCase):
    def setUp(self):
        super().setUp()
        f.make_budget(self.org_a, scope="team", team=self.team_a, limit="1")
        f.make_budget(self.org_a, scope="team", team=self.team_a2, limit="1")
        f.make_budget(self.org_b, scope="org", limit="1")
        self.spend("0.6")
        self.spend("0.6", team=self.team_a2)
        self.spend("0.6", org=self.org_b, team=self.team_b)
        self.evaluate()
        self.alert_a = BudgetAlert.objects.get(team=self.team_a)
        self.alert_b = BudgetAlert.objects.get(org=self.org_b)

    def test_alerts_are_listed_by_role(self):
        self.assertEqual(
            {r["team"] for r in self.rows(self.admin_a, "/alerts/")}, {"search", "ads"}
        )
        self.assertEqual(
            {r["team"] for r in self.rows(self.finance_a, "/alerts/")}, {"search", "ads"}
        )
        self.assertEqual({r["team"] for r in self.rows(self.lead_a, "/alerts/")}, {"search"})
        self.assertEqual({r["team"] for r in self.rows(self.lead_a2, "/alerts/")}, {"ads"})
        self.assertEqual([r["org"] for r in self.rows(self.admin_b, "/alerts/")], ["globex"])
        self.assertEqual(self.rows(self.outsider, "/alerts/"), [])
        row = self.rows(self.lead_a, "/alerts/", kind="threshold")[0]
        self.assertEqual((row["kind"], row["threshold"], row["status"]), ("threshold", 50, "sent"))
        self.assertEqual(row["spent_usd"], "0.600000000000")
        self.assertEqual(row["percent"], "60.00")
        self.assertEqual(self.rows(self.lead_a, "/alerts/", kind="anomaly"), [])

    def test_another_tenants_alert_is_404_in_the_api_and_the_page(self):
        self.assert_not_found_for(
            [self.lead_a2, self.admin_b, self.outsider], ("get", f"/alerts/{self.alert_a.pk}/")
        )
        self.assertEqual(self.get(self.lead_a, f"/alerts/{self.alert_a.pk}/").status_code, 200)
        page = f"/reports/alerts/{self.alert_a.pk}/"
        self.assertEqual(self.client_for(self.lead_a).get(page).status_code, 200)
        self.assertEqual(self.client_for(self.admin_b).get(page).status_code, 404)
        self.assertEqual(self.client.get(page).status_code, 302)  # to the login page

    def test_alerts_are_read_only(self):
        response = self.post(self.admin_a, "/alerts/", {"kind": "threshold"})
        self.assertEqual(response.status_code, 405)

    def test_admin_lists_alerts_scoped(self):
        f.make_member(self.superuser, self.org_a, Role.ADMIN)
        client = self.client_for(self.superuser)
        response = client.get("/admin/reports/budgetalert/")
        self.assertEqual(response.status_code, 200)
        self.assertContains(response, "team acme/search")
        staff = f.make_user("staff-finance@acme.test", is_staff=True)
        f.make_member(staff, self.org_a, Role.FINANCE)
        response = self.client_for(staff).get("/admin/reports/budgetalert/")
        self.assertContains(response, "team acme/ads")
        self.assertNotContains(response, "org globex")


class OverBoundAlertTests(AlertTestCase):
    """Ledger rows the gateway flagged ``usage_exceeded_bound`` (an upstream billed more than the
    request allowed) become one alert per organisation and local day, to its admins and finance,
    naming the models; rows of another organisation or day, and unflagged rows, do not count."""

    def test_flagged_rows_raise_one_alert_per_org_and_day_naming_the_models(self):
        for _ in range(3):
            event(
                org=self.org_a,
                team=self.team_a,
                model="rogue-4o",
                provider="cheapo",
                started_at=NOW - timedelta(hours=1),
                completion_tokens=5000,
                output_cost="0.05",
                usage_exceeded_bound=True,
            )
        event(org=self.org_a, team=self.team_a, started_at=NOW - timedelta(hours=1))
        event(
            org=self.org_a,
            team=self.team_a,
            started_at=NOW - timedelta(days=3),
            usage_exceeded_bound=True,
        )
        event(org=self.org_b, team=self.team_b, started_at=NOW, usage_exceeded_bound=False)
        run = self.evaluate()
        [alert] = BudgetAlert.objects.filter(kind=AlertKind.OVER_BOUND)
        self.assertEqual(alert.org, self.org_a)
        self.assertEqual(alert.details["calls"], 3)
        self.assertEqual(alert.spent_usd, Decimal("0.150045"))
        self.assertEqual([r["name"] for r in alert.details["by_model"]], ["rogue-4o (cheapo)"])
        self.assertIn("rogue-4o (cheapo)", alert.subject)
        self.assertEqual(sorted(alert.recipients), ["admin@acme.test", "finance@acme.test"])
        self.assertGreaterEqual(run.recorded, 1)
        [message] = self.mails("over_bound")
        self.assertIn("billed more than the request allowed", message.body)
        self.assertIn("rogue-4o (cheapo)", message.body)
        # the next run records nothing new for the same day
        self.evaluate()
        self.assertEqual(BudgetAlert.objects.filter(kind=AlertKind.OVER_BOUND).count(), 1)
