# ruff: noqa: E501  (YAML fixtures, some quoted verbatim from the issue, keep their long lines)
"""apply_config: the YAML file in git is the desired state of one organisation."""

from __future__ import annotations

import tempfile
import textwrap
from decimal import Decimal
from io import StringIO
from pathlib import Path

from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import TestCase, override_settings

from gateway.models import (
    GroupFallback,
    GroupMember,
    LLMModel,
    ModelGroup,
    ModelPrice,
    Provider,
    Router,
)
from provisioning.config import ConfigError, config_apply, config_load
from provisioning.config.plan_cache import policy_ident
from teams.cache_services import cache_policy_create
from teams.models import (
    AuditEntry,
    Budget,
    CachePolicy,
    Feature,
    Membership,
    Organization,
    Role,
    Team,
)
from teams.services import key_revoke
from tests import factories as f

# The example of the foundation issue, verbatim.
ISSUE_EXAMPLE = """
organization: acme
timezone: Europe/Berlin
providers:        # kind: openai | azure | anthropic; base_url as the official SDK takes it
  - {name: sim, kind: openai, base_url: "http://127.0.0.1:9100/v1", api_key_env: SIM_KEY}
  - {name: claude, kind: anthropic, base_url: "https://api.anthropic.com", api_key_env: ANTHROPIC_API_KEY}
  - {name: az, kind: azure, base_url: "https://res.openai.azure.com", api_version: "2024-10-21",
     api_key_env: AZURE_KEY, invoice_issuer: Microsoft}   # publisher / invoice_issuer feed FOCUS
models:           # upstream_model defaults to name
  - {name: gpt-4o, provider: sim, upstream_model: gpt-4o, context_window: 128000, max_output_tokens: 16384,
     input_usd_per_mtok: "2.50", output_usd_per_mtok: "10.00", cached_input_usd_per_mtok: "1.25"}
  - {name: gpt-4o-mini, provider: sim, input_usd_per_mtok: "0.15", output_usd_per_mtok: "0.60"}
  - {name: claude-sonnet, provider: claude, upstream_model: claude-sonnet-4-5, input_usd_per_mtok: "3.00",
     output_usd_per_mtok: "15.00", cached_input_usd_per_mtok: "0.30", cache_write_usd_per_mtok: "3.75"}
budgets:          # organisation-wide budgets
  - {period: quarter, limit_usd: "5000.00", action: alert}
groups:
  - {name: chat-pool, strategy: weighted, members: [{model: gpt-4o, weight: 1}], fallbacks: [gpt-4o-mini]}
routers:
  - {name: smart, strong: gpt-4o, weak: gpt-4o-mini, scorer: heuristic, threshold: 0.5}
teams:
  - name: search
    leads: [lead@acme.test]
    features: [summarize, {name: rerank, budgets: [{period: day, limit_usd: "5"}]}]
    budgets:
      - {period: month, limit_usd: "100.00", action: block, alert_at: [50, 80, 100], notify: [fin@acme.test]}
      - {period: day, limit_usd: "20.00", action: downgrade, downgrade_to: gpt-4o-mini}
"""

COUNTED = (
    Organization,
    Provider,
    LLMModel,
    ModelPrice,
    ModelGroup,
    GroupMember,
    GroupFallback,
    Router,
    Team,
    Feature,
    Membership,
    Budget,
    AuditEntry,
)


def _counts() -> dict[str, int]:
    return {model.__name__: model.objects.count() for model in COUNTED}


class ConfigTestCase(TestCase):
    def setUp(self):
        self.tmp = Path(self.enterContext(tempfile.TemporaryDirectory()))

    def write(self, text: str, name: str = "finops.yaml") -> str:
        path = self.tmp / name
        path.write_text(textwrap.dedent(text), encoding="utf-8")
        return str(path)

    def apply(self, text: str, *args: str) -> str:
        out = StringIO()
        call_command("apply_config", self.write(text), *args, stdout=out)
        return out.getvalue()

    def apply_fails(self, text: str, *args: str) -> str:
        with self.assertRaises(CommandError) as ctx:
            call_command("apply_config", self.write(text), *args, stdout=StringIO())
        return str(ctx.exception)


class ApplyTests(ConfigTestCase):
    def test_issue_example_creates_every_object(self):
        out = self.apply(ISSUE_EXAMPLE)
        self.assertIn("acme: applied", out)
        org = Organization.objects.get(slug="acme")
        self.assertEqual(org.timezone, "Europe/Berlin")
        self.assertEqual(
            set(Provider.objects.filter(org=org).values_list("slug", "kind")),
            {("sim", "openai"), ("claude", "anthropic"), ("az", "azure")},
        )
        az = Provider.objects.get(org=org, slug="az")
        self.assertEqual((az.api_version, az.invoice_issuer), ("2024-10-21", "Microsoft"))
        mini = LLMModel.objects.get(org=org, name="gpt-4o-mini")
        self.assertEqual(mini.upstream_model, "gpt-4o-mini")  # defaults to the name
        claude = LLMModel.objects.get(org=org, name="claude-sonnet")
        price = claude.price_at()
        self.assertEqual(price.input_usd_per_mtok, Decimal("3.00"))
        self.assertEqual(price.cache_write_usd_per_mtok, Decimal("3.75"))
        self.assertIsNone(mini.price_at().cached_input_usd_per_mtok)
        group = ModelGroup.objects.get(org=org, name="chat-pool")
        self.assertEqual([(m.model.name, m.weight) for m in group.members.all()], [("gpt-4o", 1)])
        self.assertEqual([x.model.name for x in group.fallback_links.all()], ["gpt-4o-mini"])
        router = Router.objects.get(org=org, name="smart")
        self.assertEqual(
            (router.strong.name, router.weak.name, router.threshold), ("gpt-4o", "gpt-4o-mini", 0.5)
        )
        team = Team.objects.get(org=org, slug="search")
        self.assertEqual(
            set(Feature.objects.filter(team=team).values_list("slug", flat=True)),
            {"summarize", "rerank"},
        )
        org_budget = Budget.objects.get(org=org, scope="org")
        self.assertEqual(
            (org_budget.period, org_budget.limit_usd, org_budget.action),
            ("quarter", Decimal("5000"), "alert"),
        )
        month = Budget.objects.get(org=org, scope="team", team=team, period="month")
        self.assertEqual(month.alert_thresholds, [50, 80, 100])
        self.assertEqual(month.recipients, ["fin@acme.test"])
        day = Budget.objects.get(org=org, scope="team", team=team, period="day")
        self.assertEqual((day.action, day.downgrade_to.name), ("downgrade", "gpt-4o-mini"))
        rerank = Budget.objects.get(org=org, scope="feature", feature__slug="rerank")
        self.assertEqual(
            (rerank.period, rerank.limit_usd, rerank.action), ("day", Decimal("5"), "block")
        )

    def test_leads_become_passwordless_users_with_the_lead_role(self):
        self.apply(ISSUE_EXAMPLE)
        membership = Membership.objects.get(user__username="lead@acme.test")
        self.assertEqual((membership.role, membership.team.slug), (Role.LEAD, "search"))
        self.assertFalse(membership.user.has_usable_password())
        self.assertEqual(membership.user.email, "lead@acme.test")

    def test_a_member_listed_as_lead_is_promoted(self):
        org = f.make_org("acme")
        team = f.make_team(org, "search")
        user = f.make_user("lead@acme.test")
        f.make_member(user, org, Role.MEMBER, team)
        self.apply("organization: acme\nteams: [{name: search, leads: [LEAD@acme.test]}]\n")
        self.assertEqual(Membership.objects.get(user=user, team=team).role, Role.LEAD)

    def test_reapplying_the_same_file_changes_nothing(self):
        self.apply(ISSUE_EXAMPLE)
        before = _counts()
        out = self.apply(ISSUE_EXAMPLE)
        self.assertEqual(out.strip(), "acme: no changes")
        self.assertEqual(_counts(), before)  # no new price rows, no audit entries

    def test_demo_config_is_idempotent(self):
        text = (Path(__file__).resolve().parents[2] / "config" / "demo.yaml").read_text()
        self.apply(text)
        before = _counts()
        self.assertIn("no changes", self.apply(text))
        self.assertEqual(_counts(), before)
        embedding = LLMModel.objects.get(name="text-embedding-3-small")
        self.assertEqual(embedding.mode, "embedding")
        self.assertEqual(embedding.price_at().output_usd_per_mtok, Decimal("0"))

    def test_dry_run_on_an_empty_database_writes_nothing(self):
        before = _counts()
        out = self.apply(ISSUE_EXAMPLE, "--dry-run")
        self.assertEqual(_counts(), before)
        self.assertIn("create organization acme", out)
        self.assertIn("create model gpt-4o (", out)
        self.assertIn("dry run", out)
        self.assertFalse(Organization.objects.filter(slug="acme").exists())

    def test_dry_run_prints_before_and_after_and_writes_nothing(self):
        self.apply(ISSUE_EXAMPLE)
        changed = ISSUE_EXAMPLE.replace('limit_usd: "100.00"', 'limit_usd: "150.00"').replace(
            "threshold: 0.5", "threshold: 0.7"
        )
        before = _counts()
        out = self.apply(changed, "--dry-run")
        self.assertIn("update month budget of team search: limit_usd: 100.00 -> 150.00", out)
        self.assertIn("update router smart: threshold: 0.5 -> 0.7", out)
        self.assertEqual(_counts(), before)
        self.assertEqual(Budget.objects.get(period="month").limit_usd, Decimal("100"))
        self.assertEqual(Router.objects.get(name="smart").threshold, 0.5)

    def test_router_shadow_settings_are_applied_and_kept_when_left_out(self):
        self.apply(ISSUE_EXAMPLE)
        router = Router.objects.get(name="smart")
        self.assertEqual(
            (router.shadow_rate, router.pair_sample_rate, router.pair_retention_days),
            (0.0, 1.0, 30),
        )
        self.assertIsNone(router.judge_model)
        shadowed = ISSUE_EXAMPLE.replace(
            "threshold: 0.5}",
            "threshold: 0.5, shadow_rate: 0.05, pair_sample_rate: 0.5,\n"
            "     pair_retention_days: 14, judge_model: gpt-4o, judge_rubric: Be exact.}",
        )
        out = self.apply(shadowed)
        self.assertIn("shadow_rate: 0.0 -> 0.05", out)
        router.refresh_from_db()
        self.assertEqual(
            (router.shadow_rate, router.pair_sample_rate, router.pair_retention_days),
            (0.05, 0.5, 14),
        )
        self.assertEqual((router.judge_model.name, router.judge_rubric), ("gpt-4o", "Be exact."))
        self.assertIn("no changes", self.apply(shadowed))
        self.apply(ISSUE_EXAMPLE)  # left out: kept, like the threshold
        router.refresh_from_db()
        self.assertEqual((router.shadow_rate, router.judge_model.name), (0.05, "gpt-4o"))
        cleared = ISSUE_EXAMPLE.replace("threshold: 0.5}", 'threshold: 0.5, judge_model: ""}')
        self.apply(cleared)
        router.refresh_from_db()
        self.assertIsNone(router.judge_model)
        for bad, message in (
            ("shadow_rate: 1.5", "routers[0].shadow_rate: must be between 0 and 1"),
            ("pair_sample_rate: yes", "routers[0].pair_sample_rate: expected a number"),
            ("pair_retention_days: 0", "routers[0].pair_retention_days: must be between 1"),
            ("judge_model: ghost", "routers[0].judge_model: unknown model 'ghost'"),
        ):
            with self.subTest(bad=bad):
                text = ISSUE_EXAMPLE.replace("threshold: 0.5}", f"threshold: 0.5, {bad}}}")
                self.assertIn(message, self.apply_fails(text))

    def test_updates_are_applied_and_audited_once_each(self):
        self.apply(ISSUE_EXAMPLE)
        audits = AuditEntry.objects.count()
        changed = ISSUE_EXAMPLE.replace('limit_usd: "100.00"', 'limit_usd: "150.00"').replace(
            "api_key_env: SIM_KEY", "api_key_env: SIM_KEY_2"
        )
        out = self.apply(changed)
        self.assertIn("applied 2 change(s)", out)
        self.assertEqual(AuditEntry.objects.count(), audits + 2)
        entry = AuditEntry.objects.get(action="budget.updated")
        self.assertEqual(entry.actor_label, "system")
        self.assertEqual(Decimal(entry.before["limit_usd"]), Decimal("100"))
        self.assertEqual(Decimal(entry.after["limit_usd"]), Decimal("150"))
        self.assertEqual(Provider.objects.get(slug="sim").api_key_env, "SIM_KEY_2")

    def test_a_price_change_adds_a_history_row(self):
        self.apply(ISSUE_EXAMPLE)
        model = LLMModel.objects.get(name="gpt-4o")
        old = model.price_at()
        out = self.apply(
            ISSUE_EXAMPLE.replace('input_usd_per_mtok: "2.50"', 'input_usd_per_mtok: "2.00"')
        )
        self.assertIn("create price of gpt-4o: input_usd_per_mtok: 2.50 -> 2.00", out)
        self.assertEqual(model.prices.count(), 2)
        old.refresh_from_db()
        self.assertEqual(old.input_usd_per_mtok, Decimal("2.50"))  # history is not rewritten
        self.assertEqual(model.price_at().input_usd_per_mtok, Decimal("2.00"))
        self.assertEqual(model.price_at().output_usd_per_mtok, Decimal("10.00"))
        self.assertTrue(AuditEntry.objects.filter(action="model.price_added").exists())

    def test_names_are_slugified_but_model_names_keep_their_dots(self):
        self.apply(
            """
            organization: Acme Corp
            providers: [{name: My Provider, kind: openai, base_url: "https://api.openai.com/v1"}]
            models: [{name: gpt-4.1, provider: My Provider, input_usd_per_mtok: "2", output_usd_per_mtok: "8"}]
            teams: [{name: Search Team, features: [Deep Research]}]
            """
        )
        org = Organization.objects.get(slug="acme-corp")
        self.assertEqual(org.name, "Acme Corp")
        self.assertTrue(Provider.objects.filter(org=org, slug="my-provider").exists())
        self.assertTrue(LLMModel.objects.filter(org=org, name="gpt-4.1").exists())
        team = Team.objects.get(org=org, slug="search-team")
        self.assertEqual(team.name, "Search Team")
        self.assertTrue(Feature.objects.filter(team=team, slug="deep-research").exists())

    def test_listing_an_unclaimed_feature_claims_it(self):
        org = f.make_org("acme")
        team = f.make_team(org, "search")
        Feature.objects.create(team=team, slug="chat", name="chat", claimed=False)
        out = self.apply("organization: acme\nteams: [{name: search, features: [chat]}]\n")
        self.assertIn("update feature search/chat: claimed: False -> True", out)
        self.assertTrue(Feature.objects.get(team=team, slug="chat").claimed)

    def test_objects_missing_from_the_file_are_kept_without_prune(self):
        self.apply(ISSUE_EXAMPLE)
        before = _counts()
        out = self.apply("organization: acme\n")
        self.assertIn("no changes", out)
        self.assertEqual(_counts(), before)

    def test_config_apply_accepts_an_actor(self):
        user = f.make_user("deployer@acme.test")
        config_apply(data=config_load(text="organization: acme\n"), actor=user)
        entry = AuditEntry.objects.get(action="org.created")
        self.assertEqual((entry.actor, entry.actor_label), (user, "deployer@acme.test"))


LIMITS_EXAMPLE = """
organization: acme
budgets:
  - {period: month, limit_usd: "1000", fail_open: true}
teams:
  - name: search
    rpm_limit: 600
    tpm_limit: 200000
    max_parallel: 8
    features: [{name: rerank, budgets: [{period: day, limit_usd: "5", fail_open: true}]}]
    budgets: [{period: month, limit_usd: "100", action: alert, fail_open: false}]
"""


class LimitsAndFailOpenTests(ConfigTestCase):
    def test_team_limits_and_fail_open_are_applied_and_audited(self):
        out = self.apply(LIMITS_EXAMPLE)
        self.assertIn("create team search (name=search, rpm_limit=600, tpm_limit=200000", out)
        self.assertIn(
            "create month budget of org (limit_usd=1000.00, action=block, fail_open=True", out
        )
        team = Team.objects.get(slug="search")
        self.assertEqual((team.rpm_limit, team.tpm_limit, team.max_parallel), (600, 200000, 8))
        self.assertEqual(AuditEntry.objects.get(action="team.created").after["max_parallel"], 8)
        self.assertTrue(Budget.objects.get(scope="org").fail_open)
        self.assertTrue(Budget.objects.get(scope="feature").fail_open)
        self.assertFalse(Budget.objects.get(scope="team").fail_open)

    def test_reapplying_limits_and_fail_open_changes_nothing(self):
        self.apply(LIMITS_EXAMPLE)
        before = _counts()
        self.assertEqual(self.apply(LIMITS_EXAMPLE).strip(), "acme: no changes")
        self.assertEqual(_counts(), before)

    def test_dry_run_prints_limit_and_fail_open_changes_and_writes_nothing(self):
        self.apply(LIMITS_EXAMPLE)
        changed = LIMITS_EXAMPLE.replace("rpm_limit: 600", "rpm_limit: 900").replace(
            '"1000", fail_open: true', '"1000", fail_open: false'
        )
        before = _counts()
        out = self.apply(changed, "--dry-run")
        self.assertIn("update team search: rpm_limit: 600 -> 900", out)
        self.assertIn("update month budget of org: fail_open: True -> False", out)
        self.assertEqual(_counts(), before)
        self.assertEqual(Team.objects.get(slug="search").rpm_limit, 600)
        self.assertTrue(Budget.objects.get(scope="org").fail_open)
        self.apply(changed)
        self.assertEqual(Team.objects.get(slug="search").rpm_limit, 900)
        self.assertFalse(Budget.objects.get(scope="org").fail_open)
        entry = AuditEntry.objects.get(action="budget.updated")
        self.assertEqual((entry.before["fail_open"], entry.after["fail_open"]), (True, False))
        entry = AuditEntry.objects.get(action="team.updated")
        self.assertEqual((entry.before["rpm_limit"], entry.after["rpm_limit"]), (600, 900))

    def test_a_left_out_limit_is_kept_and_null_removes_it(self):
        self.apply(LIMITS_EXAMPLE)
        out = self.apply("organization: acme\nteams: [{name: search, tpm_limit: null}]\n")
        self.assertIn("update team search: tpm_limit: 200000 -> -", out)
        team = Team.objects.get(slug="search")
        self.assertEqual((team.rpm_limit, team.tpm_limit, team.max_parallel), (600, None, 8))

    def test_a_left_out_fail_open_goes_back_to_fail_closed(self):
        # a budget is described whole by the file, like its action and alert_at
        self.apply(LIMITS_EXAMPLE)
        out = self.apply(LIMITS_EXAMPLE.replace('"1000", fail_open: true', '"1000"'))
        self.assertIn("update month budget of org: fail_open: True -> False", out)
        self.assertFalse(Budget.objects.get(scope="org").fail_open)


class PruneTests(ConfigTestCase):
    def setUp(self):
        super().setUp()
        self.apply(ISSUE_EXAMPLE)
        self.apply(
            ISSUE_EXAMPLE
            + """
  - name: legacy
    features: [old]
"""
        )

    def test_prune_deletes_what_the_file_no_longer_lists(self):
        smaller = """
        organization: acme
        providers:
          - {name: sim, kind: openai, base_url: "http://127.0.0.1:9100/v1", api_key_env: SIM_KEY}
        models:
          - {name: gpt-4o-mini, provider: sim, input_usd_per_mtok: "0.15", output_usd_per_mtok: "0.60"}
        teams:
          - {name: search, leads: [lead@acme.test], features: [summarize]}
        """
        dry = self.apply(smaller, "--prune", "--dry-run")
        for line in (
            "delete team legacy",
            "delete feature search/rerank",
            "delete router smart",
            "delete group chat-pool",
            "delete model gpt-4o",
            "delete model claude-sonnet",
            "delete provider claude",
            "delete quarter budget of org",
        ):
            self.assertIn(line, dry)
        self.assertTrue(Team.objects.filter(slug="legacy").exists())
        self.apply(smaller, "--prune")
        self.assertFalse(Team.objects.filter(slug="legacy").exists())
        self.assertEqual(list(LLMModel.objects.values_list("name", flat=True)), ["gpt-4o-mini"])
        self.assertEqual(list(Provider.objects.values_list("slug", flat=True)), ["sim"])
        self.assertFalse(Router.objects.exists())
        self.assertFalse(ModelGroup.objects.exists())
        self.assertFalse(Budget.objects.exists())
        self.assertEqual(list(Feature.objects.values_list("slug", flat=True)), ["summarize"])
        self.assertIn("no changes", self.apply(smaller, "--prune"))

    def test_prune_keeps_unclaimed_features_named_by_traffic(self):
        team = Team.objects.get(slug="search")
        Feature.objects.create(team=team, slug="from-traffic", claimed=False)
        self.apply(ISSUE_EXAMPLE, "--prune")
        self.assertTrue(Feature.objects.filter(slug="from-traffic").exists())
        self.assertFalse(Team.objects.filter(slug="legacy").exists())

    def test_prune_refuses_a_team_with_usable_keys(self):
        f.make_key(Team.objects.get(slug="legacy"), "legacy-svc")
        message = self.apply_fails(ISSUE_EXAMPLE, "--prune")
        self.assertIn("team 'legacy' is not in the file but has 1 usable key(s)", message)
        self.assertTrue(Team.objects.filter(slug="legacy").exists())

    def test_prune_deletes_a_team_whose_keys_are_revoked(self):
        minted = f.make_key(Team.objects.get(slug="legacy"), "legacy-svc")
        key_revoke(key=minted.key)
        self.apply(ISSUE_EXAMPLE, "--prune")
        self.assertFalse(Team.objects.filter(slug="legacy").exists())

    def test_prune_refuses_a_model_a_key_budget_downgrades_to(self):
        org = Organization.objects.get(slug="acme")
        minted = f.make_key(Team.objects.get(slug="search"), "svc")
        Budget.objects.create(
            org=org,
            scope="key",
            key=minted.key,
            team=minted.key.team,
            period="month",
            limit_usd=Decimal("1"),
            action="downgrade",
            downgrade_to=LLMModel.objects.get(name="claude-sonnet"),
        )
        without_claude = ISSUE_EXAMPLE.replace(
            """  - {name: claude-sonnet, provider: claude, upstream_model: claude-sonnet-4-5, input_usd_per_mtok: "3.00",
     output_usd_per_mtok: "15.00", cached_input_usd_per_mtok: "0.30", cache_write_usd_per_mtok: "3.75"}
""",
            "",
        )
        message = self.apply_fails(without_claude, "--prune")
        self.assertIn(
            "model 'claude-sonnet' is not in the file but key budgets downgrade to it", message
        )
        self.assertTrue(LLMModel.objects.filter(name="claude-sonnet").exists())
        # a key budget is not described by files, so prune keeps it
        self.apply(ISSUE_EXAMPLE + "  - name: legacy\n    features: [old]\n", "--prune")
        self.assertTrue(Budget.objects.filter(scope="key").exists())


class ErrorTests(ConfigTestCase):
    BAD_FILES = [
        (
            """
            organization: acme
            teams:
              - name: search
              - name: ads
                budgets: [{period: month, limit_usd: "lots"}]
            """,
            "teams[1].budgets[0].limit_usd: not a decimal",
        ),
        (
            "organization: acme\nbudgets: [{period: month, limit_usd: 5.0}]\n",
            "budgets[0].limit_usd: not a decimal string: quote money as a string",
        ),
        (
            "organization: acme\nteams: [{name: x, features: [{name: y, budgets: [{period: day, limit_usd: 5}]}]}]\n",
            "teams[0].features[0].budgets[0].limit_usd: not a decimal string: quote money",
        ),
        ("organization: acme\ncolour: blue\n", "colour: unknown key"),
        ("organization: acme\nteams: [{name: x, owner: me}]\n", "teams[0].owner: unknown key"),
        ("timezone: UTC\n", "organization: required"),
        ("organization: acme\ntimezone: Mars/Olympus\n", "timezone: unknown timezone"),
        (
            "organization: acme\nmodels: [{name: gpt-4o, provider: nope, input_usd_per_mtok: '1', output_usd_per_mtok: '1'}]\n",
            "models[0].provider: unknown provider 'nope'",
        ),
        (
            "organization: acme\nmodels: [{name: 'gpt 4o', provider: p, input_usd_per_mtok: '1'}]\n",
            "models[0].name: 'gpt 4o' is not a valid model name",
        ),
        (
            "organization: acme\nproviders: [{name: p, kind: openia, base_url: 'http://x.test'}]\n",
            "providers[0].kind: 'openia' is not one of openai, azure, anthropic",
        ),
        (
            "organization: acme\nbudgets: [{period: day, limit_usd: '5', action: downgrade}]\n",
            "budgets[0].downgrade_to: required when the action is downgrade",
        ),
        (
            "organization: acme\nbudgets: [{period: day, limit_usd: '5'}, {period: day, limit_usd: '6'}]\n",
            "budgets[1].period: a day budget is already listed",
        ),
        (
            "organization: acme\nrouters: [{name: r, strong: a, weak: b, threshold: 2}]\n",
            "routers[0].threshold: must be between 0 and 1",
        ),
        (
            "organization: acme\ngroups: [{name: g, members: [ghost]}]\n",
            "groups[0].members[0].model: unknown model 'ghost'",
        ),
        (
            "organization: acme\nteams: [{name: t, budgets: [{period: day, limit_usd: '1', action: downgrade, downgrade_to: nope}]}]\n",
            "teams[0].budgets[0].downgrade_to: unknown model 'nope'",
        ),
        ("organization: acme\norganization: globex\n", "duplicate key 'organization'"),
        ("organization: [acme\n", "invalid YAML"),
        ("- just a list\n", "(file): expected a mapping"),
        (
            "organization: acme\nteams: [{name: x, budgets: [{period: month, limit_usd: '1.1234567'}]}]\n",
            "teams[0].budgets[0].limit_usd: at most 6 decimal places",
        ),
        (
            "organization: acme\nteams: [{name: x, rpm_limit: -1}]\n",
            "teams[0].rpm_limit: must be a positive integer",
        ),
        (
            "organization: acme\nteams: [{name: x, tpm_limit: 0}]\n",
            "teams[0].tpm_limit: must be a positive integer",
        ),
        (
            "organization: acme\nteams: [{name: x, max_parallel: '8'}]\n",
            "teams[0].max_parallel: must be a positive integer",
        ),
        (
            "organization: acme\nteams: [{name: x, rpm_limit: 2.5}]\n",
            "teams[0].rpm_limit: must be a positive integer",
        ),
        (
            "organization: acme\nteams: [{name: x, rpm_limit: true}]\n",
            "teams[0].rpm_limit: must be a positive integer",
        ),
        (
            "organization: acme\nteams: [{name: x, rpm_limit: 2147483648}]\n",
            "teams[0].rpm_limit: must be at most 2147483647",
        ),
        (
            "organization: acme\nbudgets: [{period: day, limit_usd: '5', fail_open: 'yes'}]\n",
            "budgets[0].fail_open: must be true or false",
        ),
        (
            "organization: acme\nbudgets: [{period: day, limit_usd: '5', fail_open: 1}]\n",
            "budgets[0].fail_open: must be true or false",
        ),
        (
            "organization: acme\nteams: [{name: x, budgets: [{period: day, limit_usd: '5', fail_open: maybe}]}]\n",
            "teams[0].budgets[0].fail_open: must be true or false",
        ),
        (
            "organization: acme\nteams: [{name: x, features: [{name: y, budgets: [{period: day, limit_usd: '5', fail_open: 0}]}]}]\n",
            "teams[0].features[0].budgets[0].fail_open: must be true or false",
        ),
    ]

    def test_bad_files_name_the_offending_path_and_change_nothing(self):
        f.make_org("acme")
        before = _counts()
        for text, expected in self.BAD_FILES:
            with self.subTest(expected=expected):
                message = self.apply_fails(text)
                self.assertIn(expected, message)
                self.assertIn("nothing changed", message)
                self.assertEqual(_counts(), before)

    def test_all_errors_are_reported_at_once(self):
        message = self.apply_fails(
            """
            organization: acme
            budgets: [{period: year, limit_usd: "x"}]
            teams: [{name: a, leads: ["not a user!"]}]
            """
        )
        self.assertIn("budgets[0].period", message)
        self.assertIn("budgets[0].limit_usd: not a decimal", message)
        self.assertIn("teams[0].leads[0]", message)
        self.assertIn("3 errors", message)

    @override_settings(FINOPS_PROVIDER_HOSTS=["api.openai.com"])
    def test_provider_base_url_is_bounded_by_the_allowed_hosts(self):
        message = self.apply_fails(
            "organization: acme\nproviders: [{name: p, kind: openai, base_url: 'http://169.254.169.254/v1'}]\n"
        )
        self.assertIn(
            "providers[0].base_url: host '169.254.169.254' is not in FINOPS_PROVIDER_HOSTS", message
        )
        self.assertFalse(Organization.objects.exists())

    def test_a_valid_part_is_not_applied_when_another_part_is_invalid(self):
        self.apply(ISSUE_EXAMPLE)
        before = _counts()
        broken = ISSUE_EXAMPLE.replace('limit_usd: "100.00"', 'limit_usd: "150.00"').replace(
            'limit_usd: "20.00"', "limit_usd: 20.0"
        )
        self.apply_fails(broken)
        self.assertEqual(_counts(), before)
        self.assertEqual(Budget.objects.get(period="month").limit_usd, Decimal("100"))

    def test_a_failure_while_applying_rolls_everything_back(self):
        org = f.make_org("acme")
        provider = f.make_provider(org, "sim")
        f.make_model(org, "gpt-4o-mini", provider=provider)
        ModelGroup.objects.create(org=org, name="taken")  # not in the file, so unknown to it
        before = _counts()
        with self.assertRaises(ConfigError) as ctx:
            config_apply(
                data=config_load(
                    text="""
organization: acme
teams: [{name: new-team}]
models:
  - {name: taken, provider: sim, input_usd_per_mtok: "1", output_usd_per_mtok: "1"}
"""
                )
            )
        self.assertIn("model taken", ctx.exception.errors[0])
        self.assertEqual(_counts(), before)
        self.assertFalse(Team.objects.filter(slug="new-team").exists())

    def test_unreadable_file_is_a_command_error(self):
        with self.assertRaises(CommandError) as ctx:
            call_command("apply_config", str(self.tmp / "missing.yaml"))
        self.assertIn("cannot read", str(ctx.exception))


CACHE_FILE = """
organization: acme
cache: {ttl_seconds: 600}
providers:
  - {name: sim, kind: openai, base_url: "http://127.0.0.1:9100/v1", api_key_env: SIM_KEY}
models:
  - {name: gpt-4o-mini, provider: sim, input_usd_per_mtok: "0.15", output_usd_per_mtok: "0.60",
     cache: {enabled: false}}
teams:
  - name: search
    cache: {ttl_seconds: 60, max_entry_bytes: 4096, tools: true}
    features: [plain, {name: summarize, cache: {enabled: false}}]
"""


class CacheConfigTests(ConfigTestCase):
    """``cache:`` at the top and on models, teams, features and keys."""

    def policies(self) -> dict[tuple, CachePolicy]:
        return {policy_ident(p): p for p in CachePolicy.objects.all()}

    def test_cache_policies_are_created_at_every_level_and_reapplying_changes_nothing(self):
        out = self.apply(CACHE_FILE)
        self.assertIn("create cache policy of org (enabled=True, ttl_seconds=600", out)
        policies = self.policies()
        self.assertEqual(policies[("org", None, None, None, "")].ttl_seconds, 600)
        self.assertFalse(policies[("model", None, None, None, "gpt-4o-mini")].enabled)
        team = policies[("team", "search", None, None, "")]
        self.assertEqual((team.ttl_seconds, team.max_entry_bytes, team.tools), (60, 4096, True))
        self.assertFalse(policies[("feature", "search", "summarize", None, "")].enabled)
        self.assertEqual(len(policies), 4)
        self.assertEqual(AuditEntry.objects.filter(action="cache_policy.created").count(), 4)
        self.assertEqual(self.apply(CACHE_FILE).strip(), "acme: no changes")

    def test_a_key_policy_names_a_minted_key_of_the_team(self):
        self.apply(CACHE_FILE)
        team = Team.objects.get(slug="search")
        f.make_key(team, "search-svc")
        with_key = CACHE_FILE + "    keys: [{name: search-svc, cache: {ttl_seconds: 30}}]\n"
        self.assertIn("create cache policy of key search/search-svc", self.apply(with_key))
        policy = CachePolicy.objects.get(scope="key")
        self.assertEqual((policy.key.name, policy.ttl_seconds), ("search-svc", 30))
        ghost = CACHE_FILE + "    keys: [{name: ghost, cache: {}}]\n"
        message = self.apply_fails(ghost)
        self.assertIn("teams[0].keys[0].cache: team 'search' has no key 'ghost'", message)

    def test_changed_settings_update_and_left_out_ones_go_back_to_their_defaults(self):
        self.apply(CACHE_FILE)
        changed = CACHE_FILE.replace("cache: {ttl_seconds: 600}", "cache: {ttl_seconds: 900}")
        changed = changed.replace("max_entry_bytes: 4096, tools: true", "tools: true")
        out = self.apply(changed, "--dry-run")
        self.assertIn("update cache policy of org: ttl_seconds: 600 -> 900", out)
        self.assertIn("update cache policy of team search: max_entry_bytes: 4096 -> 1048576", out)
        self.apply(changed)
        self.assertEqual(CachePolicy.objects.get(scope="org").ttl_seconds, 900)
        self.assertEqual(CachePolicy.objects.get(scope="team").max_entry_bytes, 1048576)
        entry = AuditEntry.objects.filter(action="cache_policy.updated").first()
        self.assertIsNotNone(entry)

    def test_prune_deletes_the_policies_the_file_no_longer_lists(self):
        self.apply(CACHE_FILE)
        key = f.make_key(Team.objects.get(slug="search"), "svc").key
        cache_policy_create(actor=None, org=key.org, scope="key", key=key)
        smaller = CACHE_FILE.replace("cache: {ttl_seconds: 600}\n", "").replace(
            ", cache: {enabled: false}}]", "}]"
        )
        self.assertIn("acme: ", self.apply(smaller))  # without --prune: kept
        self.assertEqual(CachePolicy.objects.count(), 5)
        dry = self.apply(smaller, "--prune", "--dry-run")
        for line in (
            "delete cache policy of org",
            "delete cache policy of feature search/summarize",
            "delete cache policy of key search/svc",
        ):
            self.assertIn(line, dry)
        self.apply(smaller, "--prune")
        self.assertEqual(
            set(self.policies()),
            {("model", None, None, None, "gpt-4o-mini"), ("team", "search", None, None, "")},
        )

    BAD_CACHES = [
        ("organization: acme\ncache: {ttl_seconds: 0}\n", "cache.ttl_seconds: must be between 1"),
        ("organization: acme\ncache: {ttl: 5}\n", "cache.ttl: unknown key"),
        ("organization: acme\ncache: true\n", "cache: expected a mapping"),
        (
            "organization: acme\nteams: [{name: s, cache: {max_entry_bytes: 10}}]\n",
            "teams[0].cache.max_entry_bytes: must be between 1024 and 16777216",
        ),
        (
            "organization: acme\nteams: [{name: s, features: [{name: f, cache: {tools: 'yes'}}]}]\n",
            "teams[0].features[0].cache.tools: must be true or false",
        ),
        (
            "organization: acme\nteams: [{name: s, keys: [{name: k}]}]\n",
            "teams[0].keys[0].cache: required",
        ),
        (
            "organization: acme\nteams: [{name: s, keys: [{name: k, cache: {}}, {name: k, cache: {}}]}]\n",
            "teams[0].keys[1].name: key 'k' is listed twice",
        ),
        (
            "organization: acme\nmodels: [{name: m, provider: p, input_usd_per_mtok: '1', output_usd_per_mtok: '1', cache: {enabled: 1}}]\n",
            "models[0].cache.enabled: must be true or false",
        ),
    ]

    def test_bad_cache_settings_name_their_path_and_change_nothing(self):
        f.make_org("acme")
        before = CachePolicy.objects.count()
        for text, expected in self.BAD_CACHES:
            with self.subTest(expected=expected):
                self.assertIn(expected, self.apply_fails(text))
                self.assertEqual(CachePolicy.objects.count(), before)
