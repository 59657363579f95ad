"""The admin saves through the services: one audit entry per change, the service's snapshot and
rules (``Budget.clean`` for who owns what), for the control plane and the gateway catalog."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from django.utils import timezone

from gateway.models import LLMModel, Provider, Router
from gateway.services import catalog
from teams import services
from teams.models import AuditEntry, Budget, Feature, Team
from tests.teams.test_admin import AdminTestCase, _url


class AdminServiceTestCase(AdminTestCase):
    def post_ok(self, url: str, data: dict):
        response = self.client.post(url, data)
        form_errors = response.context and response.context["adminform"].form.errors
        self.assertEqual(response.status_code, 302, form_errors or response.content[:500])
        return response

    def entries(self, action: str):
        return list(AuditEntry.objects.filter(action=action))

    def one_entry(self, action: str, *, actor=None) -> AuditEntry:
        entries = self.entries(action)
        self.assertEqual(len(entries), 1, entries)
        self.assertEqual(entries[0].actor, actor or self.admin_a)
        return entries[0]


class ControlPlaneAdminServiceTests(AdminServiceTestCase):
    def test_adding_and_changing_a_team_writes_one_entry_each_with_the_service_snapshot(self):
        self.client.force_login(self.admin_a)
        audited = AuditEntry.objects.count()
        self.post_ok(
            _url(Team, "add"),
            {"org": self.org_a.pk, "slug": "billing", "name": "Billing", "rpm_limit": "30"},
        )
        team = Team.objects.get(org=self.org_a, slug="billing")
        entry = self.one_entry("team.created")
        self.assertEqual(entry.object_id, str(team.pk))
        self.assertEqual(entry.after, services.team_snapshot(team))
        self.post_ok(_url(Team, "change", team.pk), {"name": "Billing", "max_parallel": "2"})
        entry = self.one_entry("team.updated")
        self.assertEqual((entry.before["rpm_limit"], entry.after["rpm_limit"]), (30, None))
        self.assertEqual(entry.after["max_parallel"], 2)
        self.assertEqual(AuditEntry.objects.count(), audited + 2)

    def test_saving_an_unchanged_team_writes_no_entry(self):
        self.client.force_login(self.admin_a)
        audited = AuditEntry.objects.count()
        self.post_ok(_url(Team, "change", self.team_a.pk), {"name": "Search"})
        self.assertEqual(AuditEntry.objects.count(), audited)

    def test_adding_and_changing_a_feature_writes_one_entry_each(self):
        self.client.force_login(self.admin_a)
        data = {"team": self.team_a.pk, "slug": "chat", "name": "", "default_model": ""}
        self.post_ok(_url(Feature, "add"), {**data, "claimed": "on"})
        feature = Feature.objects.get(team=self.team_a, slug="chat")
        self.assertEqual(feature.name, "chat")  # feature_create names it after its slug
        entry = self.one_entry("feature.created")
        self.assertEqual(entry.after, services.feature_snapshot(feature))
        self.assertEqual(entry.org, self.org_a)
        self.post_ok(_url(Feature, "change", feature.pk), {"name": "Chat", "default_model": ""})
        entry = self.one_entry("feature.updated")
        self.assertEqual((entry.before["claimed"], entry.after["claimed"]), (True, False))
        self.assertEqual(entry.after["name"], "Chat")

    def test_adding_changing_and_deleting_a_budget_writes_one_entry_each(self):
        self.client.force_login(self.admin_a)
        data = {
            "org": self.org_a.pk,
            "scope": "team",
            "team": self.team_a2.pk,
            "feature": "",
            "key": "",
            "period": "week",
            "limit_usd": "40",
            "action": "block",
            "downgrade_to": "",
            "alert_thresholds": "50, 100",
            "recipients": "",
        }
        self.post_ok(_url(Budget, "add"), data)
        budget = Budget.objects.get(team=self.team_a2, period="week")
        entry = self.one_entry("budget.created")
        snapshot = services.budget_snapshot(budget)
        self.assertEqual(Decimal(entry.after.pop("limit_usd")), Decimal(snapshot.pop("limit_usd")))
        self.assertEqual(entry.after, snapshot)
        self.assertEqual(entry.after["alert_thresholds"], [50, 100])
        changed = {k: v for k, v in data.items() if k not in ("org", "scope", "team")}
        self.post_ok(_url(Budget, "change", budget.pk), {**changed, "limit_usd": "45"})
        entry = self.one_entry("budget.updated")
        limits = (Decimal(entry.before["limit_usd"]), Decimal(entry.after["limit_usd"]))
        self.assertEqual(limits, (Decimal("40"), Decimal("45")))
        self.post_ok(_url(Budget, "delete", budget.pk), {"post": "yes"})
        self.assertFalse(Budget.objects.filter(pk=budget.pk).exists())
        self.assertEqual(Decimal(self.one_entry("budget.deleted").before["limit_usd"]), 45)

    def test_a_budget_keeps_what_it_limits_on_its_change_page(self):
        self.client.force_login(self.admin_a)
        form = self.client.get(_url(Budget, "change", self.budget_a.pk)).context["adminform"].form
        self.assertFalse({"org", "scope", "team", "feature", "key"} & set(form.fields))
        self.assertEqual(set(form.fields), set(services.BUDGET_EDITABLE))


class AdminBudgetOwnershipTests(AdminServiceTestCase):
    """``Budget.clean`` decides who owns what; the admin form shows its errors."""

    def budget_form(self, **fields):
        data = {
            "org": self.org_a.pk,
            "scope": "feature",
            "team": "",
            "feature": "",
            "key": "",
            "period": "day",
            "limit_usd": "5",
            "action": "block",
            "downgrade_to": "",
            "alert_thresholds": "",
            "recipients": "",
            **fields,
        }
        budgets, audited = Budget.objects.count(), AuditEntry.objects.count()
        response = self.client.post(_url(Budget, "add"), data)
        self.assertEqual(response.status_code, 200)
        self.assertEqual((Budget.objects.count(), AuditEntry.objects.count()), (budgets, audited))
        return response.context["adminform"].form.errors

    def test_a_feature_of_another_team_is_the_models_error(self):
        self.client.force_login(self.admin_a)
        errors = self.budget_form(team=self.team_a2.pk, feature=self.feature_a.pk)
        self.assertEqual(errors["team"], ["does not own this feature or key"])

    def test_a_key_of_another_team_is_the_models_error(self):
        self.client.force_login(self.admin_a)
        errors = self.budget_form(scope="key", team=self.team_a.pk, key=self.minted_a2.key.pk)
        self.assertEqual(errors["team"], ["does not own this feature or key"])

    def test_a_feature_of_another_organisation_is_the_models_error(self):
        self.client.force_login(self.superuser)  # every organisation's features are choices
        errors = self.budget_form(feature=self.feature_b.pk)
        self.assertEqual(errors["feature"], ["belongs to another organisation"])
        self.assertEqual(errors["team"], ["belongs to another organisation"])  # filled in from it

    def test_a_scope_without_its_field_is_the_models_error(self):
        self.client.force_login(self.admin_a)
        self.assertEqual(self.budget_form()["feature"], ["required for a feature budget"])
        errors = self.budget_form(scope="org", team=self.team_a.pk)
        self.assertEqual(errors["team"], ["not allowed on a org budget"])


class CatalogAdminServiceTests(AdminServiceTestCase):
    def test_adding_and_changing_a_provider_goes_through_the_catalog(self):
        self.client.force_login(self.superuser)  # an operator: it may name a server variable
        data = {
            "org": self.org_a.pk,
            "slug": "sim2",
            "kind": "openai",
            "base_url": "http://127.0.0.1:9100/v1",
            "api_key_env": "SIM2_KEY",
            "api_version": "",
            "publisher": "",
            "invoice_issuer": "",
        }
        self.post_ok(_url(Provider, "add"), data)
        provider = Provider.objects.get(org=self.org_a, slug="sim2")
        self.assertEqual(
            self.one_entry("provider.created", actor=self.superuser).after,
            catalog.provider_snapshot(provider),
        )
        changed = {k: v for k, v in data.items() if k not in ("org", "slug")}
        self.post_ok(_url(Provider, "change", provider.pk), {**changed, "publisher": "Sim Inc"})
        entry = self.one_entry("provider.updated", actor=self.superuser)
        self.assertEqual((entry.before["publisher"], entry.after["publisher"]), ("", "Sim Inc"))
        form = self.client.get(_url(Provider, "change", provider.pk)).context["adminform"].form
        self.assertEqual(
            set(form.fields),
            {
                *catalog.PROVIDER_EDITABLE,
                "api_key",
                "clear_api_key",
                "admin_api_key",
                "clear_admin_api_key",
            },
        )

    def test_an_org_admin_can_neither_name_a_server_variable_nor_move_an_operators_provider(self):
        self.client.force_login(self.admin_a)
        add = self.client.get(_url(Provider, "add")).context["adminform"].form
        self.assertNotIn("api_key_env", add.fields)
        provider = Provider.objects.create(
            org=self.org_a, slug="op", kind="openai", base_url="https://api.openai.com/v1",
            api_key_env="OPENAI_API_KEY",
        )  # fmt: skip
        change = self.client.get(_url(Provider, "change", provider.pk)).context["adminform"].form
        self.assertFalse({"api_key_env", "base_url", "kind"} & set(change.fields))

    def test_adding_and_changing_a_router_goes_through_the_catalog(self):
        self.client.force_login(self.admin_a)
        data = {
            "org": self.org_a.pk,
            "name": "smart-2",
            "strong": self.model_a2.pk,
            "weak": self.model_a.pk,
            "scorer": "heuristic",
            "threshold": "0.4",
            "store_prompts": "on",
            "prompt_retention": "100",
            "shadow_rate": "0",
            "pair_sample_rate": "1",
            "pair_retention_days": "30",
            "judge_model": "",
            "judge_rubric": "",
        }
        self.post_ok(_url(Router, "add"), data)
        router = Router.objects.get(org=self.org_a, name="smart-2")
        self.assertEqual(self.one_entry("router.created").after, catalog.router_snapshot(router))
        changed = {k: v for k, v in data.items() if k not in ("org", "name")}
        self.post_ok(_url(Router, "change", router.pk), {**changed, "threshold": "0.6"})
        entry = self.one_entry("router.updated")
        self.assertEqual((entry.before["threshold"], entry.after["threshold"]), (0.4, 0.6))
        response = self.client.post(_url(Router, "change", router.pk), {**changed, "weak": ""})
        self.assertEqual(response.status_code, 200)  # a form error, not a crash
        self.assertEqual(len(self.entries("router.updated")), 1)

    def model_form(self, name: str, **price) -> dict:
        return {
            "org": self.org_a.pk,
            "name": name,
            "provider": self.provider_a.pk,
            "upstream_model": name,
            "mode": "chat",
            "context_window": "",
            "max_output_tokens": "",
            "active": "on",
            "prices-TOTAL_FORMS": "0",
            "prices-INITIAL_FORMS": "0",
            "prices-MIN_NUM_FORMS": "0",
            "prices-MAX_NUM_FORMS": "1000",
            "prices-2-TOTAL_FORMS": "1",
            "prices-2-INITIAL_FORMS": "0",
            "prices-2-MIN_NUM_FORMS": "0",
            "prices-2-MAX_NUM_FORMS": "1",
            **{f"prices-2-0-{k}": v for k, v in price.items()},
        }

    def test_a_new_model_is_created_with_its_first_price(self):
        self.client.force_login(self.admin_a)
        start = timezone.localtime(timezone.now() + timedelta(days=2))
        data = self.model_form(
            "o4-mini",
            effective_from_0=start.strftime("%Y-%m-%d"),
            effective_from_1=start.strftime("%H:%M:%S"),
            input_usd_per_mtok="1.10",
            output_usd_per_mtok="4.40",
        )
        self.post_ok(_url(LLMModel, "add"), data)
        model = LLMModel.objects.get(org=self.org_a, name="o4-mini")
        self.assertEqual(self.one_entry("model.created").after, catalog.model_snapshot(model))
        self.assertEqual(self.one_entry("model.price_added").object_id, str(model.prices.get().pk))
        price = model.prices.get()
        self.assertEqual((price.input_usd_per_mtok, price.source), (Decimal("1.10"), "admin"))
        self.assertEqual(price.effective_from.replace(microsecond=0), start.replace(microsecond=0))

    def test_a_new_model_needs_its_first_price(self):
        self.client.force_login(self.admin_a)
        now = timezone.localtime(timezone.now())
        day, time = now.strftime("%Y-%m-%d"), now.strftime("%H:%M:%S")
        untouched = self.model_form(  # the add page as the browser sends it back
            "o4-mini",
            effective_from_0=day,
            effective_from_1=time,
            input_usd_per_mtok="0",
            output_usd_per_mtok="0",
        )
        untouched["initial-prices-2-0-effective_from_0"] = day
        untouched["initial-prices-2-0-effective_from_1"] = time
        response = self.client.post(_url(LLMModel, "add"), untouched)
        self.assertEqual(response.status_code, 200)
        self.assertContains(response, "a new model needs its first price")
        self.assertFalse(LLMModel.objects.filter(name="o4-mini").exists())

    def test_changing_a_model_goes_through_the_catalog(self):
        self.client.force_login(self.admin_a)
        data = {
            **self.model_form("gpt-4o-mini"),
            "upstream_model": "gpt-4o-mini-2024-07-18",
            "prices-TOTAL_FORMS": "1",
            "prices-INITIAL_FORMS": "1",
            "prices-0-id": self.model_a.prices.get().pk,
            "prices-0-model": self.model_a.pk,
            "prices-2-TOTAL_FORMS": "0",
        }
        del data["org"], data["name"]
        self.post_ok(_url(LLMModel, "change", self.model_a.pk), data)
        entry = self.one_entry("model.updated")
        self.assertEqual(entry.after["upstream_model"], "gpt-4o-mini-2024-07-18")
        self.assertEqual(
            entry.after, catalog.model_snapshot(LLMModel.objects.get(pk=self.model_a.pk))
        )
        self.assertFalse(self.entries("model.price_added"))
