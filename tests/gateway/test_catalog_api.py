"""The gateway catalog through the API: providers (no credential ever shown, base_url bounded
by FINOPS_PROVIDER_HOSTS, only org admins change them), models with current price and an
append-only price history, groups with weights and ordered fallbacks, routers; each endpoint
isolated per tenant and every change audited."""

from __future__ import annotations

import os
from datetime import timedelta
from decimal import Decimal
from unittest import mock

from django.test import override_settings
from django.utils import timezone

from gateway.models import GroupMember, LLMModel, ModelGroup, ModelPrice, Provider, Router
from teams.models import AuditEntry
from tests import factories as f
from tests.teams.api_case import APITestCase


class CatalogTestCase(APITestCase):
    @classmethod
    def setUpTestData(cls):
        super().setUpTestData()
        cls.provider_a = f.make_provider(cls.org_a, "sim")
        cls.provider_b = f.make_provider(cls.org_b, "sim")
        cls.big_a = f.make_model(
            cls.org_a, "gpt-4o", input_per_mtok="2.50", output_per_mtok="10.00"
        )
        cls.small_a = f.make_model(cls.org_a, "gpt-4o-mini")
        cls.big_b = f.make_model(cls.org_b, "gpt-4o")
        cls.small_b = f.make_model(cls.org_b, "gpt-4o-mini")
        cls.group_a = f.make_group(cls.org_a, members=[(cls.big_a, 1)], fallbacks=[cls.small_a])
        cls.group_b = f.make_group(cls.org_b, members=[(cls.big_b, 1)])
        cls.router_a = f.make_router(cls.org_a, strong=cls.big_a, weak=cls.small_a)
        cls.router_b = f.make_router(cls.org_b, strong=cls.big_b, weak=cls.small_b)


class CatalogIsolationTests(CatalogTestCase):
    def test_providers_of_other_org_are_invisible_and_404(self):
        for user in (self.admin_a, self.lead_a, self.member_a):
            self.assertEqual(self.ids(user, "/providers/"), {self.provider_a.pk})
        self.assert_not_found_for(
            [self.admin_a, self.lead_a],
            ("get", f"/providers/{self.provider_b.pk}/"),
            ("patch", f"/providers/{self.provider_b.pk}/", {"base_url": "https://x.test/v1"}),
            ("delete", f"/providers/{self.provider_b.pk}/"),
        )
        self.provider_b.refresh_from_db()
        self.assertEqual(self.provider_b.base_url, "http://127.0.0.1:9100/v1")

    def test_models_of_other_org_are_invisible_and_404(self):
        for user in (self.admin_a, self.lead_a):
            self.assertEqual(self.ids(user, "/models/"), {self.big_a.pk, self.small_a.pk})
        self.assert_not_found_for(
            [self.admin_a, self.lead_a],
            ("get", f"/models/{self.big_b.pk}/"),
            ("patch", f"/models/{self.big_b.pk}/", {"active": False}),
            ("get", f"/models/{self.big_b.pk}/prices/"),
            (
                "post",
                f"/models/{self.big_b.pk}/prices/",
                {"input_usd_per_mtok": "0", "output_usd_per_mtok": "0"},
            ),
        )
        self.assertEqual(self.big_b.prices.count(), 1)

    def test_groups_of_other_org_are_invisible_and_404(self):
        for user in (self.admin_a, self.lead_a):
            self.assertEqual(self.ids(user, "/groups/"), {self.group_a.pk})
        self.assert_not_found_for(
            [self.admin_a, self.lead_a],
            ("get", f"/groups/{self.group_b.pk}/"),
            ("patch", f"/groups/{self.group_b.pk}/", {"strategy": "cost"}),
            ("delete", f"/groups/{self.group_b.pk}/"),
        )

    def test_routers_of_other_org_are_invisible_and_404(self):
        for user in (self.admin_a, self.lead_a):
            self.assertEqual(self.ids(user, "/routers/"), {self.router_a.pk})
        self.assert_not_found_for(
            [self.admin_a, self.lead_a],
            ("get", f"/routers/{self.router_b.pk}/"),
            ("patch", f"/routers/{self.router_b.pk}/", {"threshold": 0.9}),
            ("delete", f"/routers/{self.router_b.pk}/"),
        )

    def test_references_to_other_orgs_models_are_not_found(self):
        response = self.post(
            self.admin_a,
            "/routers/",
            {"name": "sneaky", "strong": "gpt-4o", "weak": "gpt-4o-mini", "org": "globex"},
        )
        self.assertEqual(response.status_code, 400)
        self.assertIn("org", response.json())
        models_b = self.post(
            self.admin_a,
            "/models/",
            {
                "name": "x",
                "provider": "sim",
                "org": "globex",
                "input_usd_per_mtok": "1",
                "output_usd_per_mtok": "1",
            },
        )
        self.assertEqual(models_b.status_code, 400)

    def test_superuser_sees_both_orgs_catalogs_and_org_param_filters(self):
        for path in ("/providers/", "/models/", "/groups/", "/routers/"):
            with self.subTest(path=path):
                self.assertEqual(
                    {r["org"] for r in self.rows(self.superuser, path)}, {"acme", "globex"}
                )
                self.assertEqual(
                    {r["org"] for r in self.rows(self.superuser, path, org="acme")}, {"acme"}
                )


class ProviderTests(CatalogTestCase):
    def provider_body(self, **extra):
        return {
            "slug": "openai",
            "kind": "openai",
            "base_url": "https://api.openai.com/v1",
            **extra,
        }

    def test_admin_creates_a_provider_and_no_credential_is_exposed(self):
        response = self.post(
            self.superuser,
            "/providers/",
            self.provider_body(api_key_env="OPENAI_API_KEY", org="acme"),
        )
        self.assertEqual(response.status_code, 201, response.content)
        body = response.json()
        self.assertEqual((body["org"], body["api_key_env"]), ("acme", "OPENAI_API_KEY"))
        self.assertFalse({"api_key", "key", "secret", "credential"} & set(body))
        entry = AuditEntry.objects.get(action="provider.created")
        self.assertEqual(entry.after["base_url"], "https://api.openai.com/v1")

    def test_provider_credentials_from_the_environment_never_appear(self):
        with mock.patch.dict(os.environ, {"FINOPS_TEST_UPSTREAM_KEY": "sk-upstream-secret"}):
            created = self.post(
                self.superuser,
                "/providers/",
                self.provider_body(api_key_env="FINOPS_TEST_UPSTREAM_KEY", org="acme"),
            )
            self.assertEqual(created.status_code, 201, created.content)
            text = self.get(self.admin_a, "/providers/").content.decode()
            text += self.get(self.admin_a, "/audit/").content.decode()
        self.assertIn("FINOPS_TEST_UPSTREAM_KEY", text)
        self.assertNotIn("sk-upstream-secret", text)

    @override_settings(FINOPS_PROVIDER_HOSTS=["api.openai.com", "*.openai.azure.com"])
    def test_base_url_outside_provider_hosts_is_a_field_error(self):
        bad = self.post(
            self.admin_a,
            "/providers/",
            self.provider_body(base_url="http://169.254.169.254/latest"),
        )
        self.assertEqual(bad.status_code, 400)
        self.assertIn("FINOPS_PROVIDER_HOSTS", bad.json()["base_url"][0])
        self.assertFalse(Provider.objects.filter(slug="openai").exists())
        ok = self.post(
            self.admin_a,
            "/providers/",
            self.provider_body(slug="az", kind="azure", base_url="https://res.openai.azure.com"),
        )
        self.assertEqual(ok.status_code, 201, ok.content)
        moved = self.patch(
            self.admin_a, f"/providers/{self.provider_a.pk}/", {"base_url": "http://10.0.0.5/v1"}
        )
        self.assertEqual(moved.status_code, 400)
        self.assertIn("base_url", moved.json())

    @override_settings(FINOPS_PROVIDER_HOSTS=["*"])
    def test_internal_addresses_are_refused_unless_listed_as_written(self):
        """``*`` means any public host: metadata, loopback, private, link-local and mapped
        addresses are refused with the rule, and allowed once listed as written."""
        for url in (
            "http://169.254.169.254/latest",
            "http://metadata.google.internal/computeMetadata/v1",
            "http://10.0.0.1/v1",
            "http://[::1]:6379/",
            "http://[::ffff:127.0.0.1]/v1",
            "http://0.0.0.0:8000/v1",
            "http://224.0.0.1/v1",
        ):
            response = self.post(self.admin_a, "/providers/", self.provider_body(base_url=url))
            self.assertEqual(response.status_code, 400, url)
            self.assertIn("internal address", response.json()["base_url"][0])
        public = self.post(
            self.admin_a, "/providers/", self.provider_body(base_url="https://x.test/v1")
        )
        self.assertEqual(public.status_code, 201, public.content)
        with override_settings(FINOPS_PROVIDER_HOSTS=["*", "10.0.0.1"]):
            listed = self.post(
                self.admin_a,
                "/providers/",
                self.provider_body(slug="vllm", base_url="http://10.0.0.1:8000/v1"),
            )
        self.assertEqual(listed.status_code, 201, listed.content)

    def test_a_tenant_admin_cannot_name_a_server_variable_as_credential(self):
        """The exfiltration the issue found: an org admin names the server's pepper (or another
        tenant's key) and points base_url at a host they control. Refused, with the rule."""
        for name in ("FINOPS_KEY_PEPPER", "OPENAI_API_KEY"):
            response = self.post(self.admin_a, "/providers/", self.provider_body(api_key_env=name))
            self.assertEqual(response.status_code, 400, name)
            self.assertIn("operators", response.json()["api_key_env"][0])
        self.assertFalse(Provider.objects.filter(slug="openai").exists())

    def test_the_servers_own_settings_are_never_a_credential_not_even_for_a_superuser(self):
        for name in ("FINOPS_KEY_PEPPER", "SECRET_KEY", "DATABASE_URL", "FINOPS_ENCRYPTION_KEY"):
            response = self.post(
                self.superuser, "/providers/", self.provider_body(api_key_env=name, org="acme")
            )
            self.assertEqual(response.status_code, 400, name)
            self.assertIn("this server's own configuration", response.json()["api_key_env"][0])
        with override_settings(FINOPS_PROVIDER_KEY_ENVS=["OPENAI_*"]):
            refused = self.post(
                self.superuser,
                "/providers/",
                self.provider_body(api_key_env="GROQ_KEY", org="acme"),
            )
            self.assertIn("FINOPS_PROVIDER_KEY_ENVS", refused.json()["api_key_env"][0])
            allowed = self.post(
                self.superuser,
                "/providers/",
                self.provider_body(api_key_env="OPENAI_API_KEY", org="acme"),
            )
            self.assertEqual(allowed.status_code, 201, allowed.content)

    def test_a_tenant_cannot_move_a_provider_that_holds_an_operators_credential(self):
        provider = Provider.objects.create(
            org=self.org_a, slug="op", kind="openai", base_url="https://api.openai.com/v1",
            api_key_env="OPENAI_API_KEY",
        )  # fmt: skip
        moved = self.patch(
            self.admin_a, f"/providers/{provider.pk}/", {"base_url": "https://evil.example/v1"}
        )
        self.assertEqual(moved.status_code, 400)
        self.assertIn("only an operator", moved.json()["base_url"][0])
        renamed = self.patch(self.admin_a, f"/providers/{provider.pk}/", {"api_key_env": ""})
        self.assertEqual(renamed.status_code, 400)
        fine = self.patch(self.admin_a, f"/providers/{provider.pk}/", {"publisher": "OpenAI"})
        self.assertEqual(fine.status_code, 200, fine.content)

    def test_the_gateway_never_reads_a_refused_variable_saved_before_the_rule(self):
        from gateway.services.providers import provider_key_from_env

        with mock.patch.dict(os.environ, {"FINOPS_KEY_PEPPER": "pepper", "OPENAI_API_KEY": "sk-o"}):
            self.assertEqual(provider_key_from_env("FINOPS_KEY_PEPPER"), "")
            self.assertEqual(provider_key_from_env("OPENAI_API_KEY"), "sk-o")
            with override_settings(FINOPS_PROVIDER_KEY_ENVS=[]):
                self.assertEqual(provider_key_from_env("OPENAI_API_KEY"), "")

    def test_base_url_with_credentials_or_odd_scheme_is_refused(self):
        for url in ("http://user:pw@api.openai.com/v1", "ftp://api.openai.com/"):
            with self.subTest(url=url):
                response = self.post(self.admin_a, "/providers/", self.provider_body(base_url=url))
                self.assertEqual(response.status_code, 400)
                self.assertIn("base_url", response.json())

    def test_only_org_admins_create_or_change_providers(self):
        for user in (self.finance_a, self.lead_a, self.member_a):
            with self.subTest(user=user.username):
                self.assertEqual(
                    self.post(user, "/providers/", self.provider_body()).status_code, 403
                )
                self.assertEqual(
                    self.patch(
                        user,
                        f"/providers/{self.provider_a.pk}/",
                        {"base_url": "https://evil.test/v1"},
                    ).status_code,
                    403,
                )

    def test_api_key_env_must_be_a_variable_name(self):
        response = self.post(
            self.superuser, "/providers/", self.provider_body(api_key_env="sk-live-123", org="acme")
        )
        self.assertEqual(response.status_code, 400)
        self.assertIn("api_key_env", response.json())

    def test_provider_in_use_cannot_be_deleted(self):
        response = self.delete(self.admin_a, f"/providers/{self.provider_a.pk}/")
        self.assertEqual(response.status_code, 409)
        self.assertTrue(Provider.objects.filter(pk=self.provider_a.pk).exists())


class ModelAndPriceTests(CatalogTestCase):
    def test_model_lists_carry_current_price_as_decimal_strings(self):
        row = next(r for r in self.rows(self.member_a, "/models/") if r["name"] == "gpt-4o")
        self.assertEqual(Decimal(row["price"]["input_usd_per_mtok"]), Decimal("2.50"))
        self.assertIsInstance(row["price"]["output_usd_per_mtok"], str)
        self.assertEqual(len(row["prices"]), 1)

    def test_admin_creates_a_model_with_a_dotted_name_and_its_first_price(self):
        response = self.post(
            self.admin_a,
            "/models/",
            {
                "name": "gpt-4.1",
                "provider": "sim",
                "context_window": 1000000,
                "input_usd_per_mtok": "2.00",
                "output_usd_per_mtok": "8.00",
                "cached_input_usd_per_mtok": "0.50",
            },
        )
        self.assertEqual(response.status_code, 201, response.content)
        body = response.json()
        self.assertEqual(
            (body["name"], body["upstream_model"], body["provider"]), ("gpt-4.1", "gpt-4.1", "sim")
        )
        self.assertEqual(Decimal(body["price"]["cached_input_usd_per_mtok"]), Decimal("0.5"))
        self.assertEqual(
            set(AuditEntry.objects.values_list("action", flat=True)),
            {"model.created", "model.price_added"} | {"key.minted"},
        )

    def test_model_name_is_validated_and_unique_among_models_groups_and_routers(self):
        price = {"provider": "sim", "input_usd_per_mtok": "1", "output_usd_per_mtok": "1"}
        for name in ("bad name", "router:x", "chat-pool", "smart", "gpt-4o"):
            with self.subTest(name=name):
                response = self.post(self.admin_a, "/models/", {"name": name, **price})
                self.assertEqual(response.status_code, 400)
                self.assertIn("name", response.json())

    def test_new_price_is_appended_and_history_is_never_rewritten(self):
        first = self.big_a.prices.get()
        response = self.post(
            self.admin_a,
            f"/models/{self.big_a.pk}/prices/",
            {"input_usd_per_mtok": "2.00", "output_usd_per_mtok": "8.00"},
        )
        self.assertEqual(response.status_code, 201, response.content)
        self.assertEqual(ModelPrice.objects.filter(model=self.big_a).count(), 2)
        first.refresh_from_db()
        self.assertEqual(first.input_usd_per_mtok, Decimal("2.50"))
        history = self.get(self.admin_a, f"/models/{self.big_a.pk}/prices/").json()
        self.assertEqual(
            [Decimal(p["input_usd_per_mtok"]) for p in history], [Decimal("2.00"), Decimal("2.50")]
        )
        current = self.get(self.admin_a, f"/models/{self.big_a.pk}/").json()["price"]
        self.assertEqual(Decimal(current["input_usd_per_mtok"]), Decimal("2.00"))
        entry = AuditEntry.objects.get(action="model.price_added")
        self.assertEqual(
            (
                Decimal(entry.before["input_usd_per_mtok"]),
                Decimal(entry.after["input_usd_per_mtok"]),
            ),
            (Decimal("2.50"), Decimal("2.00")),
        )

    def test_future_price_is_scheduled_and_back_dated_price_is_refused(self):
        later = timezone.now() + timedelta(days=7)
        scheduled = self.post(
            self.admin_a,
            f"/models/{self.big_a.pk}/prices/",
            {
                "effective_from": later.isoformat(),
                "input_usd_per_mtok": "1",
                "output_usd_per_mtok": "4",
            },
        )
        self.assertEqual(scheduled.status_code, 201, scheduled.content)
        current = self.get(self.admin_a, f"/models/{self.big_a.pk}/").json()["price"]
        self.assertEqual(Decimal(current["input_usd_per_mtok"]), Decimal("2.50"))
        back = self.post(
            self.admin_a,
            f"/models/{self.big_a.pk}/prices/",
            {
                "effective_from": (timezone.now() - timedelta(days=1)).isoformat(),
                "input_usd_per_mtok": "1",
                "output_usd_per_mtok": "4",
            },
        )
        self.assertEqual(back.status_code, 400)
        self.assertIn("effective_from", back.json())
        before_latest = self.post(
            self.admin_a,
            f"/models/{self.big_a.pk}/prices/",
            {
                "input_usd_per_mtok": "1",
                "output_usd_per_mtok": "4",
            },
        )
        self.assertEqual(before_latest.status_code, 400)
        self.assertIn("effective_from", before_latest.json())

    def test_negative_or_malformed_prices_are_field_errors(self):
        response = self.post(
            self.admin_a,
            f"/models/{self.big_a.pk}/prices/",
            {"input_usd_per_mtok": "-1", "output_usd_per_mtok": "abc"},
        )
        self.assertEqual(response.status_code, 400)
        self.assertEqual(set(response.json()), {"input_usd_per_mtok", "output_usd_per_mtok"})

    def test_only_admins_change_models_or_prices(self):
        for user in (self.finance_a, self.lead_a, self.member_a):
            with self.subTest(user=user.username):
                self.assertEqual(
                    self.patch(user, f"/models/{self.big_a.pk}/", {"active": False}).status_code,
                    403,
                )
                self.assertEqual(
                    self.post(
                        user,
                        f"/models/{self.big_a.pk}/prices/",
                        {"input_usd_per_mtok": "0", "output_usd_per_mtok": "0"},
                    ).status_code,
                    403,
                )

    def test_admin_deactivates_a_model_but_cannot_rename_or_delete_it(self):
        response = self.patch(
            self.admin_a, f"/models/{self.small_a.pk}/", {"active": False, "name": "renamed"}
        )
        self.assertEqual(response.status_code, 200, response.content)
        self.assertEqual(
            (response.json()["active"], response.json()["name"]), (False, "gpt-4o-mini")
        )
        self.assertEqual(self.delete(self.admin_a, f"/models/{self.small_a.pk}/").status_code, 405)
        self.assertTrue(LLMModel.objects.filter(pk=self.small_a.pk).exists())


class GroupAndRouterTests(CatalogTestCase):
    def test_group_shows_members_with_weights_and_ordered_fallbacks(self):
        row = self.get(self.member_a, f"/groups/{self.group_a.pk}/").json()
        self.assertEqual(row["members"], [{"model": "gpt-4o", "weight": 1}])
        self.assertEqual(row["fallbacks"], ["gpt-4o-mini"])

    def test_admin_creates_and_replaces_a_group(self):
        f.make_model(self.org_a, "claude-sonnet")
        response = self.post(
            self.admin_a,
            "/groups/",
            {
                "name": "pool-2",
                "strategy": "least_busy",
                "members": [{"model": "gpt-4o", "weight": 3}, {"model": "claude-sonnet"}],
                "fallbacks": ["claude-sonnet", "gpt-4o-mini"],
            },
        )
        self.assertEqual(response.status_code, 201, response.content)
        body = response.json()
        self.assertEqual(
            body["members"],
            [{"model": "gpt-4o", "weight": 3}, {"model": "claude-sonnet", "weight": 1}],
        )
        self.assertEqual(body["fallbacks"], ["claude-sonnet", "gpt-4o-mini"])
        replaced = self.patch(
            self.admin_a, f"/groups/{body['id']}/", {"fallbacks": ["gpt-4o-mini", "claude-sonnet"]}
        )
        self.assertEqual(replaced.json()["fallbacks"], ["gpt-4o-mini", "claude-sonnet"])
        self.assertEqual(len(replaced.json()["members"]), 2)
        entry = AuditEntry.objects.get(action="group.updated")
        self.assertEqual(entry.before["fallbacks"], ["claude-sonnet", "gpt-4o-mini"])
        self.assertEqual(entry.after["fallbacks"], ["gpt-4o-mini", "claude-sonnet"])

    def test_group_validation_names_the_field(self):
        cases = [
            ({"name": "g", "members": []}, "members"),
            ({"name": "g", "members": [{"model": "nope"}]}, "members"),
            ({"name": "g", "members": [{"model": "gpt-4o"}, {"model": "gpt-4o"}]}, "members"),
            ({"name": "g", "members": [{"model": "gpt-4o", "weight": 0}]}, "members"),
            ({"name": "g", "members": [{"model": "gpt-4o"}], "fallbacks": ["nope"]}, "fallbacks"),
            ({"name": "smart", "members": [{"model": "gpt-4o"}]}, "name"),
        ]
        for body, field in cases:
            with self.subTest(body=body):
                response = self.post(self.admin_a, "/groups/", body)
                self.assertEqual(response.status_code, 400, response.content)
                self.assertIn(field, response.json())
        self.assertEqual(ModelGroup.objects.filter(org=self.org_a).count(), 1)
        self.assertEqual(GroupMember.objects.filter(group__org=self.org_a).count(), 1)

    def test_admin_creates_updates_and_deletes_a_router(self):
        response = self.post(
            self.admin_a,
            "/routers/",
            {
                "name": "cheap-first",
                "strong": "gpt-4o",
                "weak": "gpt-4o-mini",
                "scorer": "random",
                "threshold": 0.8,
            },
        )
        self.assertEqual(response.status_code, 201, response.content)
        rid = response.json()["id"]
        self.assertEqual(
            (response.json()["strong"], response.json()["weak"]), ("gpt-4o", "gpt-4o-mini")
        )
        updated = self.patch(self.admin_a, f"/routers/{rid}/", {"threshold": 0.3})
        self.assertEqual(updated.json()["threshold"], 0.3)
        self.assertEqual(self.delete(self.admin_a, f"/routers/{rid}/").status_code, 204)
        self.assertFalse(Router.objects.filter(pk=rid).exists())
        self.assertEqual(
            sorted(
                AuditEntry.objects.filter(object_type="router").values_list("action", flat=True)
            ),
            ["router.created", "router.deleted", "router.updated"],
        )

    def test_router_shadow_evaluation_settings_round_trip(self):
        body = {
            "name": "shadowed",
            "strong": "gpt-4o",
            "weak": "gpt-4o-mini",
            "shadow_rate": 0.1,
            "pair_sample_rate": 0.5,
            "pair_retention_days": 14,
            "judge_model": "gpt-4o",
            "judge_rubric": "Be exact.",
        }
        response = self.post(self.admin_a, "/routers/", body)
        self.assertEqual(response.status_code, 201, response.content)
        created = response.json()
        self.assertEqual(
            {k: created[k] for k in body if k not in ("strong", "weak")},
            {k: v for k, v in body.items() if k not in ("strong", "weak")},
        )
        rid = created["id"]
        updated = self.patch(self.admin_a, f"/routers/{rid}/", {"judge_model": ""}).json()
        self.assertEqual((updated["judge_model"], updated["shadow_rate"]), (None, 0.1))
        for bad, field in (
            ({"shadow_rate": 1.5}, "shadow_rate"),
            ({"pair_sample_rate": -0.1}, "pair_sample_rate"),
            ({"pair_retention_days": 0}, "pair_retention_days"),
            ({"judge_model": self.big_b.name + "-missing"}, "judge_model"),
        ):
            with self.subTest(bad=bad):
                response = self.patch(self.admin_a, f"/routers/{rid}/", bad)
                self.assertEqual(response.status_code, 400, response.content)
                self.assertIn(field, response.json())

    def test_router_threshold_must_be_between_0_and_1_and_models_must_differ(self):
        for body, field in (
            ({"threshold": 1.5}, "threshold"),
            ({"threshold": -0.1}, "threshold"),
            ({"weak": "gpt-4o"}, "weak"),
            ({"strong": "missing"}, "strong"),
        ):
            with self.subTest(body=body):
                full = {"name": "r2", "strong": "gpt-4o", "weak": "gpt-4o-mini", **body}
                response = self.post(self.admin_a, "/routers/", full)
                self.assertEqual(response.status_code, 400, response.content)
                self.assertIn(field, response.json())

    def test_model_used_by_a_router_cannot_be_removed_from_under_it(self):
        response = self.delete(self.admin_a, f"/providers/{self.provider_a.pk}/")
        self.assertEqual(response.status_code, 409)

    def test_non_admins_cannot_change_groups_or_routers(self):
        for user in (self.finance_a, self.lead_a, self.member_a):
            with self.subTest(user=user.username):
                self.assertEqual(
                    self.patch(
                        user, f"/routers/{self.router_a.pk}/", {"threshold": 0.1}
                    ).status_code,
                    403,
                )
                self.assertEqual(self.delete(user, f"/groups/{self.group_a.pk}/").status_code, 403)
                self.assertEqual(
                    self.post(
                        user, "/routers/", {"name": "r", "strong": "gpt-4o", "weak": "gpt-4o-mini"}
                    ).status_code,
                    403,
                )
