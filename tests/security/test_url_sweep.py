"""Tenant isolation over EVERY URL pattern of the project.

The project's URL patterns are walked (``get_resolver()``); each one is either requested here
with an object of org A — as org B's admin and lead (staff, so the admin is open to them) and,
for team-scoped objects, as the lead of another team of org A — or listed in ``SKIPPED`` with the
reason. A pattern that is neither fails ``test_every_url_pattern_is_covered``: a new page must
be added here before it ships.

For an object of A, the answer is 404/403 (the admin's "does not exist" redirect counts) and
never contains A's names; a list answers without A's rows.
"""

from __future__ import annotations

import re
from datetime import date, timedelta

from django.contrib import admin
from django.contrib.auth import get_user_model
from django.test import override_settings
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from evaluation.models import Experiment
from gateway.models import Batch, LLMModel, ModelGroup, Router, UsageEvent
from reports.invoices.figures import Figure
from reports.invoices.pull import figures_store
from reports.models import AlertWebhook, BudgetAlert, DailySpend
from teams.cache_services import cache_policy_create
from teams.models import AuditEntry, Membership
from teams.services import audit_record
from tests import factories as f
from tests.base import TwoOrgsTestCase
from tests.reports.ledger import event

MARK = "zqxacme"  # in the name of every object of org A made here: must never leak
DENIED = {403, 404, 405}  # 405: a method the URL does not offer, to anyone


def _walk(patterns, prefix: str = "", namespace: str | None = None):
    for p in patterns:
        if isinstance(p, URLResolver):
            ns = p.namespace
            inner = f"{namespace}:{ns}" if namespace and ns else (ns or namespace)
            yield from _walk(p.url_patterns, prefix + str(p.pattern), inner)
        elif isinstance(p, URLPattern):
            name = f"{namespace}:{p.name}" if namespace and p.name else p.name
            yield name or prefix + str(p.pattern), prefix + str(p.pattern)


def all_patterns() -> dict[str, str]:
    return dict(_walk(get_resolver().url_patterns))


# Patterns deliberately not swept, with why.
SKIPPED = {
    "admin-login": "redirect to the throttled login page; no data",
    "admin:login": "shadowed by admin-login",
    "admin:logout": "logs out; no data",
    "admin:password_change": "the user's own password; no object id",
    "admin:password_change_done": "static confirmation page",
    "admin:jsi18n": "static JavaScript catalog",
    "admin:index": "lists model names only (checked for leaks in the admin list test)",
    "admin:app_list": "lists model names only",
    "admin:view_on_site": "redirects to get_absolute_url; no model here defines one",
    "admin/(?P<url>.*)$": "the admin's catch-all 404",
    "login": "anonymous sign-in form",
    "logout": "POST-only sign-out",
    "password_reset": "emails a link to the address given; answers the same for any address",
    "password_reset_done": "static page",
    "password_reset_confirm": "token-guarded; no tenant object",
    "password_reset_complete": "static page",
    "schema": "the OpenAPI document; no tenant data",
    "api-docs": "Swagger UI shell; no tenant data",
    "healthz": "liveness probe; no tenant data",
    "readyz": "readiness probe; no tenant data",
    "metrics": "Prometheus text, aggregated; needs FINOPS_METRICS_TOKEN unless DEBUG",
    "favicon": "redirect to the static icon; no data",
}
# Admin models of apps still being built; each needs an object factory in ``admin_objects``.
ADMIN_PENDING = {
    "evaluation.evalpair": "evaluation app in progress: add an object of org A below",
}
ADMIN_ACTIONS = ("change", "delete", "history")


@override_settings(PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"])
class URLSweepTests(TwoOrgsTestCase):
    @classmethod
    def setUpTestData(cls):
        super().setUpTestData()
        get_user_model().objects.update(is_staff=True)
        org = cls.org_a
        cls.org_a.name = f"Acme {MARK}"
        cls.org_a.save()
        cls.team_x = f.make_team(org, f"{MARK}-team")
        cls.feature_x = f.make_feature(cls.team_x, f"{MARK}-feature")
        cls.key_x = f.make_key(cls.team_x, f"{MARK}-key").key
        cls.provider_x = f.make_provider(org, f"{MARK}-prov", base_url=f"http://{MARK}.test/v1")
        cls.model_x = f.make_model(org, f"{MARK}-model", provider=cls.provider_x)
        cls.group_x = ModelGroup.objects.create(org=org, name=f"{MARK}-group")
        cls.router_x = Router.objects.create(
            org=org, name=f"{MARK}-router", strong=cls.model_x, weak=cls.model_x
        )
        cls.budget_x = f.make_budget(org, scope="team", team=cls.team_x, limit="123.45")
        cls.cache_x = cache_policy_create(actor=None, org=org, scope="team", team=cls.team_x)
        cls.alert_x = BudgetAlert.objects.create(
            org=org,
            budget=cls.budget_x,
            team=cls.team_x,
            kind="threshold",
            dedupe_key=f"{MARK}-alert",
            scope_label=f"team {MARK}-team",
            subject=f"{MARK} budget at 80%",
        )
        cls.webhook_x = AlertWebhook.objects.create(
            org=org, team=cls.team_x, url=f"https://hooks.{MARK}.test/x"
        )
        cls.audit_x = audit_record(
            actor=cls.admin_a, org=org, action="team.updated", obj=cls.team_x
        )
        cls.event_x = event(
            org=org, team=cls.team_x, feature=f"{MARK}-feature", model=f"{MARK}-model"
        )
        cls.batch_x = Batch.objects.create(
            batch_id=f"batch_{MARK}",
            api="openai",
            org=org,
            key_id=cls.key_x.pk,
            team_id=cls.team_x.pk,
            feature=f"{MARK}-feature",
            endpoint="/v1/chat/completions",
            provider=cls.provider_x.slug,
            status="in_progress",
            expires_at=timezone.now() + timedelta(days=1),
        )
        cls.daily_x = DailySpend.objects.create(
            org_id=org.pk, team_id=cls.team_x.pk, feature=f"{MARK}-feature", day=date.today()
        )
        cls.membership_x = f.make_member(
            f.make_user(f"{MARK}@acme.test"), org, "member", cls.team_x
        )
        cls.token_x = Token.objects.create(user=cls.admin_a)
        cls.experiment_x = Experiment.objects.create(
            org=org, name=f"{MARK}-exp", route=cls.model_x.name, candidate=cls.model_x
        )
        today = date.today()
        cls.pull_x = figures_store(
            provider=cls.provider_x,
            source="csv",
            start=today,
            end=today + timedelta(days=1),
            filename=f"{MARK}.csv",
            figures=[
                Figure(today, model=f"{MARK}-model", token_type="input", tokens=5,
                       account=f"{MARK}-proj", api_key_id=f"{MARK}-key")
            ],
        )  # fmt: skip
        cls.attackers_b = [cls.admin_b, cls.lead_b]
        # lead of another team of org A: may read org-wide things, not team_x's
        cls.team_outsider = cls.lead_a2

    # --- helpers ------------------------------------------------------------------------------

    def fetch(self, user, path: str, method: str = "get"):
        client = APIClient()
        client.force_login(user)
        return getattr(client, method)(path, format="json") if method != "get" else client.get(path)

    def assert_denied(self, users, path: str, *, methods=("get",)) -> None:
        for user in users:
            for method in methods:
                with self.subTest(user=user.username, method=method, path=path):
                    response = self.fetch(user, path, method)
                    body = b"".join(response) if response.streaming else response.content
                    if response.status_code == 302:
                        # the admin's "does not exist" redirect to its index
                        self.assertIn("/admin/", response["Location"], path)
                        self.assertNotIn(MARK, response["Location"])
                    else:
                        self.assertIn(response.status_code, DENIED, (path, body[:300]))
                    self.assertFalse(MARK.encode() in body, f"{path} leaks org A's names")

    def assert_list_clean(self, users, path: str) -> None:
        for user in users:
            with self.subTest(user=user.username, path=path):
                response = self.fetch(user, path)
                body = b"".join(response) if response.streaming else response.content
                self.assertIn(response.status_code, {200, 302, 403, 404}, (path, body[:300]))
                self.assertFalse(MARK.encode() in body, f"{path} leaks org A's names")

    # --- the sweep ------------------------------------------------------------------------------

    def admin_objects(self) -> dict[str, object]:
        """One object of org A per admin model (``app_label.model_name``)."""
        return {
            "auth.user": self.membership_x.user,
            "auth.group": None,  # platform-level; checked as a list only
            "authtoken.tokenproxy": None,  # tokens are keyed by secret; list only
            "teams.organization": self.org_a,
            "teams.team": self.team_x,
            "teams.membership": self.membership_x,
            "teams.feature": self.feature_x,
            "teams.virtualkey": self.key_x,
            "teams.budget": self.budget_x,
            "teams.cachepolicy": self.cache_x,
            "teams.auditentry": self.audit_x,
            "gateway.provider": self.provider_x,
            "gateway.llmmodel": self.model_x,
            "gateway.modelgroup": self.group_x,
            "gateway.router": self.router_x,
            "gateway.usageevent": self.event_x,
            "gateway.batch": self.batch_x,
            "reports.budgetalert": self.alert_x,
            "reports.alertwebhook": self.webhook_x,
            "reports.dailyspend": self.daily_x,
            "reports.providerreportpull": self.pull_x,
            "evaluation.experiment": self.experiment_x,
        }

    def page_cases(self) -> dict[str, tuple[list[str], bool]]:
        """Pattern name -> (paths to request, team-scoped?). Team-scoped objects are also
        requested as the lead of another team of org A."""
        a, t, k, b, al = (
            self.org_a.pk,
            self.team_x.pk,
            self.key_x.pk,
            self.budget_x.pk,
            self.alert_x.pk,
        )
        api = "/api/v1"
        month = date.today().strftime("%Y-%m")
        return {
            "org-detail": ([f"{api}/orgs/{self.org_a.slug}/"], False),
            "team-detail": ([f"{api}/teams/{t}/"], True),
            "membership-detail": ([f"{api}/members/{self.membership_x.pk}/"], True),
            "feature-detail": ([f"{api}/features/{self.feature_x.pk}/"], True),
            "key-detail": ([f"{api}/keys/{k}/"], True),
            "budget-detail": ([f"{api}/budgets/{b}/"], True),
            "cache-policy-detail": ([f"{api}/cache-policies/{self.cache_x.pk}/"], True),
            "audit-entry-detail": ([f"{api}/audit/{self.audit_x.pk}/"], True),
            "provider-detail": ([f"{api}/providers/{self.provider_x.pk}/"], False),
            "model-detail": ([f"{api}/models/{self.model_x.pk}/"], False),
            "model-prices": ([f"{api}/models/{self.model_x.pk}/prices/"], False),
            "group-detail": ([f"{api}/groups/{self.group_x.pk}/"], False),
            "router-detail": ([f"{api}/routers/{self.router_x.pk}/"], False),
            "budget-alert-detail": ([f"{api}/alerts/{al}/"], True),
            "reconciliation-import-detail": (
                [f"{api}/reconciliation/imports/{self.pull_x.pk}/"],
                False,
            ),
            "team-keys": ([f"/teams/{t}/keys/"], True),
            "reports:alert-detail": ([f"/reports/alerts/{al}/"], True),
            "reports:catalog": ([f"/reports/orgs/{a}/models/"], False),
            "reports:team-statement": (
                [
                    f"/reports/teams/{t}/statements/{month}/",
                    f"/reports/teams/{t}/statements/{month}/?format=csv",
                    f"/reports/teams/{t}/statements/{month}/?format=pdf",
                ],
                True,
            ),
            "reports:statement-index": ([f"/reports/teams/{t}/statements/"], True),
            "reports:org-overview": ([f"/reports/orgs/{a}/"], False),
            "reports:invoices": (
                [
                    f"/reports/orgs/{a}/invoices/",
                    f"/reports/orgs/{a}/invoices/?month={month}&csv=models",
                ],
                False,
            ),
            "reports:org-overview-data": ([f"/reports/orgs/{a}/data.json"], False),
            "reports:team-dashboard": ([f"/reports/teams/{t}/"], True),
            "reports:team-dashboard-data": ([f"/reports/teams/{t}/data.json"], True),
            "evaluation:router": ([f"/reports/routers/{self.router_x.pk}/"], False),
            "evaluation:router-data": ([f"/reports/routers/{self.router_x.pk}/data.json"], False),
            "evaluation:experiment": ([f"/reports/experiments/{self.experiment_x.pk}/"], False),
            "evaluation:experiment-data": (
                [f"/reports/experiments/{self.experiment_x.pk}/data.json"],
                False,
            ),
        }

    def list_cases(self) -> dict[str, list[str]]:
        """Pattern name -> list pages, requested as org B's people: none of A's rows."""
        api = "/api/v1"
        a = self.org_a
        return {
            "home": ["/"],
            "org-list": [f"{api}/orgs/"],
            "team-list": [f"{api}/teams/", f"{api}/teams/?org={a.slug}"],
            "membership-list": [f"{api}/members/"],
            "feature-list": [f"{api}/features/"],
            "key-list": [f"{api}/keys/", f"{api}/keys/?org={a.slug}"],
            "budget-list": [f"{api}/budgets/"],
            "cache-policy-list": [f"{api}/cache-policies/", f"{api}/cache-policies/?org={a.slug}"],
            "audit-entry-list": [f"{api}/audit/"],
            "provider-list": [f"{api}/providers/"],
            "model-list": [f"{api}/models/"],
            "group-list": [f"{api}/groups/"],
            "router-list": [f"{api}/routers/"],
            "budget-alert-list": [f"{api}/alerts/", f"{api}/alerts/?budget={self.budget_x.pk}"],
            "spend": [
                f"{api}/spend/?group_by=feature",
                f"{api}/spend/?group_by=team&org={a.slug}",
                f"{api}/spend/?group_by=model&team={self.team_x.pk}",
            ],
            "savings": [
                f"{api}/savings/?group_by=lever",
                f"{api}/savings/?group_by=team,feature,model,day&org={a.slug}",
                f"{api}/savings/?group_by=model&team={self.team_x.slug}",
            ],
            "export-focus": [
                f"{api}/exports/focus/?start={date.today():%Y-%m-01}&end={date.today()}",
                f"{api}/exports/focus/?start={date.today():%Y-%m-01}&end={date.today()}&org={a.slug}",
            ],
            "reports:spend-home": ["/reports/"],
            "reconciliation": [
                f"{api}/reconciliation/",
                f"{api}/reconciliation/?org={a.slug}&group_by=day,model,token_type",
                f"{api}/reconciliation/?format=csv&group_by=model",
            ],
            "reconciliation-import-list": [f"{api}/reconciliation/imports/"],
            "reconciliation-suggestions": [f"{api}/reconciliation/suggestions/"],
            "reconciliation-policy": [f"{api}/reconciliation/policy/?org={a.slug}"],
        }

    def test_every_url_pattern_is_covered(self):
        covered = (
            set(SKIPPED)
            | set(self.page_cases())
            | set(self.list_cases())
            | {"key-revoke", "key-rotate"}  # POST-only: test_writes_on_org_a_objects_are_denied
            | {"reconciliation-import-pull"}  # POST-only: test_writes_on_org_a_objects_are_denied
        )
        admin_models = {f"{m._meta.app_label}.{m._meta.model_name}" for m in admin.site._registry}
        missing_admin = admin_models - set(self.admin_objects()) - set(ADMIN_PENDING)
        self.assertFalse(missing_admin, "admin models with no object of org A in the sweep")
        admin_re = re.compile(r"^admin:(\w+?)_(\w+)_(changelist|add|change|delete|history)$")
        uncovered = []
        for name, route in all_patterns().items():
            if name in covered:
                continue
            m = admin_re.match(name)
            if m or (route.startswith("admin/") and "<path:object_id>/" in route):
                continue  # every registered admin model is swept below
            if name == "admin:autocomplete":
                continue  # swept below
            uncovered.append(f"{name} ({route})")
        self.assertEqual(uncovered, [], "new URL patterns: add them to the sweep or SKIPPED")

    def test_object_pages_of_org_a_are_denied_to_org_b_and_other_teams(self):
        for name, (paths, team_scoped) in self.page_cases().items():
            for path in paths:
                self.assert_denied(self.attackers_b, path)
                if team_scoped:
                    self.assert_denied([self.team_outsider], path)

    def test_writes_on_org_a_objects_are_denied(self):
        api = "/api/v1"
        for path in (
            f"{api}/orgs/{self.org_a.slug}/",
            f"{api}/teams/{self.team_x.pk}/",
            f"{api}/keys/{self.key_x.pk}/",
            f"{api}/budgets/{self.budget_x.pk}/",
            f"{api}/cache-policies/{self.cache_x.pk}/",
            f"{api}/providers/{self.provider_x.pk}/",
            f"{api}/models/{self.model_x.pk}/",
            f"{api}/groups/{self.group_x.pk}/",
            f"{api}/routers/{self.router_x.pk}/",
            f"{api}/features/{self.feature_x.pk}/",
            f"{api}/members/{self.membership_x.pk}/",
        ):
            self.assert_denied(self.attackers_b, path, methods=("patch", "delete"))
        for path in (f"{api}/keys/{self.key_x.pk}/revoke/", f"{api}/keys/{self.key_x.pk}/rotate/"):
            self.assert_denied([*self.attackers_b, self.team_outsider], path, methods=("post",))
        for user in self.attackers_b:  # pulling or re-pricing org A's provider: not there
            client = APIClient()
            client.force_login(user)
            pull = client.post(
                f"{api}/reconciliation/imports/pull/",
                {
                    "provider": self.provider_x.pk,
                    "start": str(date.today()),
                    "end": str(date.today()),
                },
                format="json",
            )
            self.assertIn(pull.status_code, {400, 403}, pull.content)
            self.assertNotIn(MARK.encode(), pull.content)
            accept = client.post(
                f"{api}/reconciliation/suggestions/",
                {"model": self.model_x.pk, "token_type": "input", "usd_per_mtok": "9",
                 "since": str(date.today())},
                format="json",
            )  # fmt: skip
            self.assertIn(accept.status_code, DENIED, accept.content)
        self.assertEqual(self.model_x.prices.count(), 1)
        self.key_x.refresh_from_db()
        self.assertIsNone(self.key_x.revoked_at)
        self.assertEqual(self.key_x.secrets.count(), 1)
        self.assertTrue(LLMModel.objects.filter(pk=self.model_x.pk).exists())
        self.assertTrue(Membership.objects.filter(pk=self.membership_x.pk).exists())

    def test_lists_never_show_org_a_rows_to_org_b(self):
        for _name, paths in self.list_cases().items():
            for path in paths:
                self.assert_list_clean(self.attackers_b, path)

    def test_admin_pages_of_org_a_objects_are_denied_to_org_b(self):
        for label, obj in self.admin_objects().items():
            app_label, model_name = label.split(".")
            changelist = reverse(f"admin:{app_label}_{model_name}_changelist")
            self.assert_list_clean(self.attackers_b, changelist)
            self.assert_list_clean(self.attackers_b, f"{changelist}?q={MARK[:4]}")
            if obj is None:
                continue
            for action in ADMIN_ACTIONS:
                path = reverse(f"admin:{app_label}_{model_name}_{action}", args=[obj.pk])
                self.assert_denied(self.attackers_b, path)
            change = reverse(f"admin:{app_label}_{model_name}_change", args=[obj.pk])
            self.assert_denied(self.attackers_b, change, methods=("post",))
        self.assert_list_clean(self.attackers_b, reverse("admin:index"))

    def test_admin_pages_of_a_team_are_denied_to_the_lead_of_another_team(self):
        for obj in (
            self.team_x,
            self.key_x,
            self.budget_x,
            self.cache_x,
            self.alert_x,
            self.membership_x,
        ):
            opts = obj._meta
            for action in ADMIN_ACTIONS:
                path = reverse(f"admin:{opts.app_label}_{opts.model_name}_{action}", args=[obj.pk])
                self.assert_denied([self.team_outsider], path)

    def test_admin_autocomplete_never_offers_org_a_objects(self):
        url = reverse("admin:autocomplete")
        for app_label, model_name, field in (
            ("teams", "virtualkey", "team"),
            ("teams", "budget", "team"),
            ("gateway", "llmmodel", "provider"),
            ("teams", "budget", "downgrade_to"),
        ):
            path = (
                f"{url}?app_label={app_label}&model_name={model_name}&field_name={field}&term=zqx"
            )
            self.assert_list_clean(self.attackers_b, path)

    def test_usage_and_rollups_of_org_a_are_not_reachable_by_id(self):
        # sanity: the rows the sweep relies on exist and belong to A
        self.assertTrue(UsageEvent.objects.filter(org_id=self.org_a.pk, feature__contains=MARK))
        self.assertTrue(AuditEntry.objects.filter(org=self.org_a).exists())
