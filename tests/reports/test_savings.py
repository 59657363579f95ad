"""The savings statement: each lever's saving computed at metering time (exact Decimal), and a
fixture month of ledger rows with every lever whose savings the rollups, the savings API (every
grouping, scoped), the overview and team pages, the chargeback statement (HTML and CSV) and its
email all show equal to the ledger's ``saved_usd``, to the cent."""

from __future__ import annotations

import csv
import io
import zoneinfo
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.core import mail
from django.db import connection
from django.db.models import Q, Sum
from django.test import override_settings
from django.test.client import Client

from finops.money import money, usd, usd_display
from gateway import metering
from gateway.attribution import Labels
from gateway.models import UsageEvent
from gateway.pricing import Cost, Price, Usage, cost_of, price_at
from gateway.proxy import Call
from gateway.records import GroupRecord, KeyRecord, OrgConfig, RouterRecord
from gateway.resolve import Plan
from gateway.runtime import runtime
from gateway.savings import LEVERS
from reports.models import (
    AlertKind,
    BudgetAlert,
    DailyDimensionSpend,
    DailySpend,
    HourlySpend,
    RollupState,
)
from reports.services import budget_alerts_evaluate, spend_reconcile, usage_rollup
from tests.records import model_record, price
from tests.reports.ledger import event, utc
from tests.teams.api_case import APITestCase

# --- metering: each lever's arithmetic ---------------------------------------------------------

ORG = 990_001  # an org id no database row has: the configs below are this test's own
STRONG = model_record("strong", prices=[price("10", "30")])
WEAK = model_record("weak", prices=[price("1", "2")])
MID = model_record("mid", prices=[price("3", "15")])
DEAR = model_record("dear", prices=[price("20", "60")])
USAGE = Usage(uncached_input=1000, output=500)
STARTED = datetime(2026, 3, 5, 12, tzinfo=UTC)
ROUTER = RouterRecord(name="smart", strong=STRONG, weak=WEAK, scorer="length", threshold=0.5)


def _cost(model) -> Cost:
    return cost_of(USAGE, price_at(model.prices, STARTED))


def _call(plan: Plan, *, requested: str = "router:smart", action: str = "", shadow=False) -> Call:
    record = KeyRecord(
        key_id=1, name="k", org_id=ORG, org_slug="o", org_tz=zoneinfo.ZoneInfo("UTC"), team_id=1,
        team_slug="t", default_feature="", allowed_models=frozenset(), fallbacks=(),
        rpm_limit=None, tpm_limit=None, max_parallel=None, valid_until=None, revoked=False,
    )  # fmt: skip
    call = Call(
        request_id="r1",
        api="chat.completions",
        record=record,
        labels=Labels(feature="", endpoint="", end_user=""),
        body={"model": requested, "messages": [{"role": "user", "content": "hi"}]},
        requested=requested,
        plan=plan,
        started=STARTED,
        t0=0.0,
        shadow=shadow,
    )
    call.budget_action = action
    return call


def _meter(call: Call, model, *, status: str = "ok", usage: Usage = USAGE) -> tuple:
    row = metering.event(
        call,
        model=model,
        attempt=1,
        status=status,
        started=STARTED,
        ended=STARTED,
        latency_ms=10,
        usage=usage,
        cost=cost_of(usage, price_at(model.prices, STARTED)),
    )
    return row["saved_usd"], row["saving_lever"]


@pytest.fixture
def config():
    found = OrgConfig(
        org_id=ORG,
        models={m.name: m for m in (STRONG, WEAK, MID, DEAR)},
        groups={
            "pool": GroupRecord(
                name="pool", strategy="weighted", members=[(STRONG, 1), (MID, 1)], fallbacks=[]
            )
        },
        routers={"smart": ROUTER},
    )
    runtime.configs[ORG] = found
    yield found
    runtime.configs.pop(ORG, None)


def _routed(decision: str, *deployments) -> Plan:
    return Plan(deployments=list(deployments), router="smart", router_decision=decision)


def test_router_saves_the_strong_price_of_the_same_tokens_less_the_weak_cost(config):
    # strong: 1000 x 10/M + 500 x 30/M = 0.025; weak: 0.001 + 0.001 = 0.002
    saved, lever = _meter(_call(_routed("weak", WEAK, STRONG)), WEAK)
    assert (saved, lever) == (Decimal("0.023"), "router")
    assert saved == _cost(STRONG).total - _cost(WEAK).total


def test_a_strong_decision_and_a_weak_call_answered_by_the_strong_model_save_nothing(config):
    assert _meter(_call(_routed("strong", STRONG, WEAK)), STRONG) == (0, "")
    assert _meter(_call(_routed("weak", WEAK, STRONG)), STRONG) == (0, "")


def test_failed_attempts_shadow_calls_and_unpriced_rows_save_nothing(config):
    assert _meter(_call(_routed("weak", WEAK, STRONG)), WEAK, status="error") == (0, "")
    assert _meter(_call(_routed("weak", WEAK, STRONG)), WEAK, status="client_abort") == (0, "")
    assert _meter(_call(_routed("weak", WEAK, STRONG), shadow=True), WEAK) == (0, "")
    plain = _call(Plan(deployments=[WEAK]), requested="weak")
    assert _meter(plain, WEAK) == (0, "")


def test_the_router_price_is_the_one_in_force_when_the_call_started(config):
    old = Price.per_mtok(
        effective_from=datetime(2026, 1, 1, tzinfo=UTC),
        input_usd_per_mtok=Decimal("10"),
        output_usd_per_mtok=Decimal("30"),
        cached_input_usd_per_mtok=None,
        cache_write_usd_per_mtok=None,
    )
    new = Price.per_mtok(
        effective_from=datetime(2026, 4, 1, tzinfo=UTC),
        input_usd_per_mtok=Decimal("5"),
        output_usd_per_mtok=Decimal("15"),
        cached_input_usd_per_mtok=None,
        cache_write_usd_per_mtok=None,
    )
    strong = model_record("strong", prices=[new, old])  # newest first
    config.routers["smart"] = RouterRecord(
        name="smart", strong=strong, weak=WEAK, scorer="length", threshold=0.5
    )
    assert _meter(_call(_routed("weak", WEAK, strong)), WEAK) == (Decimal("0.023"), "router")


def test_a_downgrade_saves_the_requested_model_price_less_the_cheaper_one(config):
    call = _call(Plan(deployments=[WEAK]), requested="strong", action="downgrade")
    assert _meter(call, WEAK) == (Decimal("0.023"), "downgrade")
    # a group: its cheapest member for these tokens (mid: 0.003 + 0.0075 = 0.0105)
    call = _call(Plan(deployments=[WEAK]), requested="pool", action="downgrade")
    assert _meter(call, WEAK) == (Decimal("0.0085"), "downgrade")
    # a router that chose strong, then downgraded: against the strong model
    call = _call(_routed("strong", WEAK), requested="router:smart", action="downgrade")
    assert _meter(call, WEAK) == (Decimal("0.023"), "downgrade")


def test_a_downgrade_onto_a_dearer_model_records_the_loss(config):
    call = _call(Plan(deployments=[DEAR]), requested="mid", action="downgrade")
    dear = _cost(DEAR).total  # 0.02 + 0.03 = 0.05
    assert _meter(call, DEAR) == (Decimal("0.0105") - dear, "downgrade")
    assert _meter(call, DEAR)[0] == Decimal("-0.0395")


def test_a_cheaper_fallback_saves_the_first_choice_price_a_dearer_one_nothing(config):
    assert _meter(_call(Plan(deployments=[STRONG, WEAK]), requested="x"), WEAK) == (
        Decimal("0.023"),
        "fallback",
    )
    assert _meter(_call(Plan(deployments=[WEAK, STRONG]), requested="x"), STRONG) == (0, "")
    # a strong decision whose strong model failed: the weak fallback is a fallback saving
    assert _meter(_call(_routed("strong", STRONG, WEAK)), WEAK) == (Decimal("0.023"), "fallback")


def test_the_fallback_needs_no_config_the_router_and_downgrade_do():
    runtime.configs.pop(ORG, None)
    assert _meter(_call(Plan(deployments=[STRONG, WEAK]), requested="x"), WEAK)[1] == "fallback"
    assert _meter(_call(_routed("weak", WEAK, STRONG)), WEAK) == (0, "")


def test_router_comes_before_downgrade_before_fallback(config):
    # the router chose weak, then a budget downgraded the call to mid: all of it is the router's
    call = _call(_routed("weak", MID), action="downgrade")
    assert _meter(call, MID) == (Decimal("0.0145"), "router")
    # a downgraded call whose plan has one deployment has no fallback; a downgrade with a
    # later deployment answering is still the downgrade's
    call = _call(Plan(deployments=[MID, WEAK]), requested="strong", action="downgrade")
    assert _meter(call, WEAK) == (Decimal("0.023"), "downgrade")


def test_metering_a_plain_call_allocates_no_saving():
    call = _call(Plan(deployments=[WEAK]), requested="weak")
    row = metering.event(
        call, model=WEAK, attempt=1, status="ok", started=STARTED, ended=STARTED, latency_ms=1
    )
    assert row["saved_usd"] is metering.savings.NONE[0] and row["saving_lever"] == ""


# --- the fixture month -------------------------------------------------------------------------

MARCH = {"start": "2026-03-01", "end": "2026-03-31"}
NANO = Decimal("1e-9")  # SQLite keeps the rollups' decimals as doubles
CENT = Decimal("0.01")


def ledger(org, *, team=None, levers=LEVERS, **filters) -> dict[str, Decimal]:
    """The ledger's March figures (UTC orgs): production cost, saved per lever and in all,
    evaluation, judge."""
    rows = UsageEvent.objects.filter(
        org_id=org.pk, started_at__gte=utc(2026, 3, 1), started_at__lt=utc(2026, 4, 1), **filters
    )
    if team is not None:
        rows = rows.filter(team_id=team.pk)
    prod = Q(shadow=False)
    measures = {
        "cost": Sum("cost", filter=prod),
        "saved": Sum("saved_usd", filter=prod),
        "eval": Sum("cost", filter=Q(shadow=True)),
        "judge": Sum("cost", filter=Q(shadow=True, router_decision="judge")),
        **{lv: Sum("saved_usd", filter=prod & Q(saving_lever=lv)) for lv in levers},
        **{f"spend_{lv}": Sum("cost", filter=prod & Q(saving_lever=lv)) for lv in levers},
    }
    # prefixed: an aggregate named like a field would shadow it for the others
    sums = rows.aggregate(**{f"x_{name}": agg for name, agg in measures.items()})
    return {name.removeprefix("x_"): Decimal(value or 0) for name, value in sums.items()}


@override_settings(PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"])
class SavingsMonthTestCase(APITestCase):
    @classmethod
    def setUpTestData(cls):
        super().setUpTestData()
        RollupState.objects.all().delete()
        ka, ka2 = cls.minted_a.key.pk, cls.minted_a2.key.pk
        rows = [
            # the router sent it weak
            dict(team=cls.team_a, key_id=ka, feature="summarize", model="gpt-4o-mini",
                 input_cost="0.000100000001", output_cost="0.0002", router="smart",
                 router_decision="weak", saved_usd="1.234567890123", saving_lever="router",
                 started_at=utc(2026, 3, 5, 10)),
            # a strong decision: no saving
            dict(team=cls.team_a, key_id=ka, feature="summarize", model="gpt-4o",
                 input_cost="0.01", output_cost="0.02", router="smart", router_decision="strong",
                 started_at=utc(2026, 3, 5, 11)),
            # a cache hit: no upstream cost
            dict(team=cls.team_a, key_id=ka, feature="chat", model="gpt-4o", input_cost="0",
                 output_cost="0", cache_hit=True, saved_usd="0.5", saving_lever="cache",
                 started_at=utc(2026, 3, 6, 10)),
            dict(team=cls.team_a, key_id=ka, feature="chat", model="gpt-4o", input_cost="0.125",
                 output_cost="0.125", batch_id="batch_1", saved_usd="0.25", saving_lever="batch",
                 started_at=utc(2026, 3, 7, 10)),
            dict(team=cls.team_a, key_id=ka, feature="chat", model="gpt-4o-mini",
                 budget_action="downgrade", saved_usd="0.033333333333", saving_lever="downgrade",
                 started_at=utc(2026, 3, 8, 10)),
            # a downgrade onto a dearer model: the loss
            dict(team=cls.team_a, key_id=ka, feature="chat", model="claude-sonnet",
                 budget_action="downgrade", saved_usd="-0.010000000001", saving_lever="downgrade",
                 started_at=utc(2026, 3, 9, 10)),
            # a failed first attempt, then a cheaper fallback
            dict(team=cls.team_a, key_id=ka, feature="summarize", model="gpt-4o", status="error",
                 input_cost="0.001", output_cost="0", request_id="r-fb",
                 started_at=utc(2026, 3, 10, 10)),
            dict(team=cls.team_a, key_id=ka, feature="summarize", model="gpt-4o-mini", attempt=2,
                 request_id="r-fb", saved_usd="0.0421", saving_lever="fallback",
                 started_at=utc(2026, 3, 10, 10, 0, 2)),
            # what the levers cost: a shadow mirror and a judge call
            dict(team=cls.team_a, key_id=ka, feature="summarize", model="gpt-4o", shadow=True,
                 router="smart", router_decision="shadow", input_cost="0.4", output_cost="0",
                 started_at=utc(2026, 3, 11, 10)),
            dict(team=cls.team_a, key_id=ka, feature="evaluation-judge", model="gpt-4o",
                 shadow=True, router="smart", router_decision="judge", input_cost="0.05",
                 output_cost="0", started_at=utc(2026, 3, 11, 11)),
            # a correction row (invoice reconciliation): money, no lever
            dict(team=cls.team_a, feature="summarize", model="gpt-4o", attempt=0,
                 status="correction", prompt_tokens=0, completion_tokens=0, input_cost="0.02",
                 output_cost="0", started_at=utc(2026, 3, 12, 10)),
            # April: not March
            dict(team=cls.team_a, feature="summarize", model="gpt-4o-mini", saved_usd="100",
                 saving_lever="router", started_at=utc(2026, 4, 1, 0, 0, 1)),
            dict(team=cls.team_a2, key_id=ka2, feature="ads-copy", model="gpt-4o-mini",
                 saved_usd="2", saving_lever="router", started_at=utc(2026, 3, 14, 10)),
            dict(team=cls.team_a2, key_id=ka2, feature="ads-copy", model="gpt-4o",
                 input_cost="0", output_cost="0", cache_hit=True, saved_usd="0.75",
                 saving_lever="cache", started_at=utc(2026, 3, 15, 10)),
            # org-level spend (no team)
            dict(model="gpt-4o-mini", saved_usd="0.3", saving_lever="fallback",
                 started_at=utc(2026, 3, 16, 10)),
            dict(org=cls.org_b, team=cls.team_b, key_id=cls.minted_b.key.pk, feature="summarize",
                 model="gpt-4o-mini", saved_usd="9.99", saving_lever="router",
                 started_at=utc(2026, 3, 5, 10)),
        ]  # fmt: skip
        for row in rows:
            row.setdefault("org", cls.org_a)
            if "saved_usd" in row:
                row["saved_usd"] = Decimal(row["saved_usd"])
            event(**row)
        usage_rollup()
        cls.overview = f"/reports/orgs/{cls.org_a.pk}/"
        cls.team_page = f"/reports/teams/{cls.team_a.pk}/"
        cls.statement = f"/reports/teams/{cls.team_a.pk}/statements/2026-03/"

    def page(self, user, path: str, **params):
        client = Client()
        client.force_login(user)
        return client.get(path, {**MARCH, **params})

    def savings(self, user, **params) -> dict:
        response = self.get(user, "/savings/", **{**MARCH, **params})
        self.assertEqual(response.status_code, 200, response.content)
        return response.json()


class RollupTests(SavingsMonthTestCase):
    def test_the_fixture_has_every_lever(self):
        found = ledger(self.org_a)
        for lever in LEVERS:
            self.assertNotEqual(found[lever], 0, lever)
        self.assertEqual(found["saved"], Decimal("5.100001223455"))

    def test_rollups_reconcile_with_the_ledger_per_lever(self):
        report = spend_reconcile(start=utc(2026, 3, 1).date(), end=utc(2026, 3, 31).date())
        self.assertTrue(report)
        for rec in report:
            self.assertTrue(rec.ok, rec)
        rec = next(r for r in report if r.org_id == self.org_a.pk)
        found = ledger(self.org_a)
        for lever in LEVERS:
            self.assertEqual(
                rec.daily[f"saved_{lever}"].quantize(CENT), found[lever].quantize(CENT)
            )
        self.assertEqual(rec.daily["judge_cost"], Decimal("0.05").quantize(Decimal("1e-9")))
        self.assertEqual(rec.daily["saved"].quantize(CENT), found["saved"].quantize(CENT))

    def test_every_rollup_table_holds_the_savings(self):
        found = ledger(self.org_a)
        march = dict(day__gte=utc(2026, 3, 1).date(), day__lte=utc(2026, 3, 31).date())
        daily = DailySpend.objects.filter(org_id=self.org_a.pk, **march)
        teams = DailyDimensionSpend.objects.filter(org_id=self.org_a.pk, dimension="team", **march)
        hourly = HourlySpend.objects.filter(
            org_id=self.org_a.pk, hour__gte=utc(2026, 3, 1), hour__lt=utc(2026, 4, 1)
        )
        for rows in (daily, teams, hourly):
            sums = rows.aggregate(**{lv: Sum(f"saved_{lv}") for lv in LEVERS})
            for lever in LEVERS:
                self.assertEqual(_nine(sums[lever]), _nine(found[lever]), lever)

    def test_correction_rows_count_as_spend_with_no_lever_and_no_request(self):
        row = DailySpend.objects.get(org_id=self.org_a.pk, day="2026-03-12")
        self.assertEqual((row.requests, row.attempts), (0, 0))
        self.assertEqual(Decimal(row.cost), Decimal("0.02"))
        self.assertEqual(sum(Decimal(getattr(row, f"spend_{lv}")) for lv in LEVERS), 0)


class SavingsAPITests(SavingsMonthTestCase):
    def assert_equal_to_ledger(self, body: dict, found: dict) -> None:
        rows = body["rows"]
        self.assertEqual(sum(Decimal(r["saved_usd"]) for r in rows), found["saved"])
        self.assertEqual(sum(Decimal(r["cost_usd"]) for r in rows), found["cost"])
        for lever in LEVERS:
            self.assertEqual(
                sum(Decimal(r["saved_usd"]) for r in rows if r["lever"] == lever), found[lever]
            )
        totals = body["totals"]
        self.assertEqual(Decimal(totals["saved_usd"]), found["saved"])
        self.assertEqual(Decimal(totals["cost_usd"]), found["cost"])
        self.assertEqual(Decimal(totals["judge_cost_usd"]), found["judge"])
        self.assertEqual(Decimal(totals["shadow_cost_usd"]), found["eval"] - found["judge"])
        self.assertEqual(
            {t["lever"]: Decimal(t["saved_usd"]) for t in totals["levers"]},
            {lever: found[lever] for lever in LEVERS},
        )

    def test_by_lever_equals_the_ledger_to_the_cent_and_beyond(self):
        body = self.savings(self.admin_a, group_by="lever")
        self.assert_equal_to_ledger(body, ledger(self.org_a))
        by_lever = {r["lever"]: r for r in body["rows"]}
        self.assertEqual(set(by_lever), {*LEVERS, None})
        self.assertEqual(by_lever["router"]["saved_usd"], "3.234567890123")
        self.assertEqual(by_lever["downgrade"]["saved_usd"], "0.023333333332")
        self.assertEqual(by_lever[None]["saved_usd"], "0.000000000000")
        self.assertEqual(body["totals"]["judge_cost_usd"], "0.050000000000")
        self.assertTrue(all(t["method"] for t in body["totals"]["levers"]))

    def test_every_grouping(self):
        found = ledger(self.org_a)
        for group_by in (
            "team",
            "feature",
            "model",
            "lever",
            "day",
            "team,feature,model,lever,day",
        ):
            with self.subTest(group_by=group_by):
                body = self.savings(self.admin_a, group_by=group_by)
                self.assert_equal_to_ledger(body, found)
                dims = set(group_by.split(",")) - {"lever"}
                for row in body["rows"]:
                    self.assertEqual(row["org"], "acme")
                    self.assertIn("lever", row)
                    self.assertTrue(dims <= set(row), row)
        by_team = self.savings(self.admin_a, group_by="team")["rows"]
        self.assertEqual(
            sum(Decimal(r["saved_usd"]) for r in by_team if r["team"] == "ads"), Decimal("2.75")
        )
        self.assertEqual(
            sum(Decimal(r["saved_usd"]) for r in by_team if r["team"] is None), Decimal("0.3")
        )
        days = {r["day"] for r in self.savings(self.admin_a, group_by="day")["rows"]}
        self.assertIn("2026-03-05", days)
        self.assertNotIn("2026-04-01", days)

    def test_another_orgs_admin_sees_none_of_it(self):
        body = self.savings(self.admin_b, group_by="team,lever")
        self.assertEqual({r["org"] for r in body["rows"]}, {"globex"})
        self.assert_equal_to_ledger(body, ledger(self.org_b))
        self.assertEqual(self.savings(self.admin_b, org="acme")["rows"], [])
        self.assertEqual(self.savings(self.admin_b, org="acme")["totals"]["saved_usd"], money(0))
        self.assertEqual(self.savings(self.outsider)["rows"], [])

    def test_a_lead_sees_only_its_teams(self):
        body = self.savings(self.lead_a, group_by="team")
        self.assertEqual({r["team"] for r in body["rows"]}, {"search"})
        self.assert_equal_to_ledger(body, ledger(self.org_a, team=self.team_a))
        self.assertEqual(self.savings(self.lead_a, team="ads")["rows"], [])
        body = self.savings(self.finance_a, team="ads")
        self.assert_equal_to_ledger(body, ledger(self.org_a, team=self.team_a2))

    def test_bad_parameters_are_400(self):
        for params in ({"group_by": "provider"}, {"start": "2026-03-31", "end": "2026-03-01"}):
            self.assertEqual(self.get(self.admin_a, "/savings/", **params).status_code, 400)
        self.assertIn(self.client.get("/api/v1/savings/").status_code, (401, 403))


def _nine(value) -> Decimal:
    """Exact on PostgreSQL; to a billionth on SQLite, which sums decimals as doubles."""
    value = Decimal(value or 0)
    return value if connection.vendor == "postgresql" else value.quantize(Decimal("1e-9"))


class PageTests(SavingsMonthTestCase):
    def csv_table(self, user, path: str, table: str) -> list[dict]:
        response = self.page(user, path, format="csv", table=table)
        self.assertEqual(response.status_code, 200)
        return list(csv.DictReader(io.StringIO(response.content.decode())))

    def test_overview_shows_savings_by_lever_and_team_equal_to_the_ledger(self):
        found = ledger(self.org_a)
        response = self.page(self.admin_a, self.overview)
        savings = response.context["data"]["savings"]
        self.assertEqual(Decimal(savings["saved"]), found["saved"])
        self.assertEqual(Decimal(savings["cost"]), found["cost"])
        self.assertEqual(
            {lv["lever"]: Decimal(lv["saved"]) for lv in savings["levers"]},
            {lever: found[lever] for lever in LEVERS},
        )
        self.assertEqual(Decimal(savings["lever_cost"]), found["eval"])
        html = response.content.decode()
        self.assertIn('id="savings"', html)
        for name in ("savings_summary", "savings", "lever_costs", "savings_teams"):
            self.assertIn(f'data-table="{name}"', html)
        self.assertIn(usd_display(found["saved"]), html)
        rows = self.csv_table(self.admin_a, self.overview, "savings")
        self.assertEqual(
            sum(Decimal(r["Saved (USD)"]) for r in rows).quantize(CENT),
            found["saved"].quantize(CENT),
        )
        for r in rows:
            self.assertIn(r["Method"], html)
        teams = {r["Team"]: r for r in self.csv_table(self.admin_a, self.overview, "savings_teams")}
        self.assertEqual(Decimal(teams["ads"]["Saved (USD)"]), Decimal("2.75"))
        self.assertEqual(
            Decimal(teams["search"]["Saved (USD)"]).quantize(NANO),
            ledger(self.org_a, team=self.team_a)["saved"].quantize(NANO),
        )

    def test_team_page_shows_its_own_savings(self):
        found = ledger(self.org_a, team=self.team_a)
        response = self.page(self.lead_a, self.team_page)
        savings = response.context["data"]["savings"]
        self.assertEqual(Decimal(savings["saved"]), found["saved"])
        self.assertEqual(
            {lv["lever"]: Decimal(lv["saved"]) for lv in savings["levers"]},
            {lever: found[lever] for lever in LEVERS},
        )
        costs = {c["name"]: Decimal(c["cost"]) for c in savings["lever_costs"]}
        self.assertEqual(costs, {"shadow": Decimal("0.4"), "judge": Decimal("0.05")})
        html = response.content.decode()
        self.assertIn(usd_display(found["saved"]), html)
        self.assertNotIn('data-table="savings_teams"', html)
        summary = {
            r["Measure"]: r["Value"]
            for r in self.csv_table(self.lead_a, self.team_page, "savings_summary")
        }
        self.assertEqual(
            Decimal(summary["Saved by the levers (USD)"]).quantize(NANO),
            found["saved"].quantize(NANO),
        )
        self.assertEqual(
            Decimal(summary["Spend (USD)"]).quantize(NANO), found["cost"].quantize(NANO)
        )
        json = self.page(self.lead_a, self.team_page + "data.json").json()
        self.assertEqual(json["savings"]["saved"], money(found["saved"]))
        self.assertEqual(self.page(self.lead_a2, self.team_page).status_code, 404)


class StatementTests(SavingsMonthTestCase):
    def test_statement_page_and_csv_equal_the_ledger(self):
        found = ledger(self.org_a, team=self.team_a)
        response = self.page(self.lead_a, self.statement)
        self.assertEqual(response.status_code, 200)
        statement = response.context["statement"]
        levers = {r["lever"]: r for r in statement.table("savings").rows}
        for lever in LEVERS:
            self.assertEqual(Decimal(levers[lever]["saved"]), found[lever])
            self.assertEqual(Decimal(levers[lever]["spend"]), found[f"spend_{lever}"])
        self.assertEqual(Decimal(statement.savings["saved"]), found["saved"])
        html = response.content.decode()
        self.assertIn(usd_display(found["saved"]), html)
        self.assertIn(usd_display(found["router"]), html)
        rows = list(
            csv.DictReader(
                io.StringIO(self.page(self.lead_a, self.statement, format="csv").content.decode())
            )
        )
        saving = [r for r in rows if r["section"] == "saving"]
        self.assertEqual([r["name"] for r in saving], list(LEVERS))
        self.assertEqual(sum(Decimal(r["saved_usd"]) for r in saving), found["saved"])
        total = next(r for r in rows if r["section"] == "total" and r["name"] == "production")
        self.assertEqual(Decimal(total["saved_usd"]), found["saved"])
        self.assertEqual(Decimal(total["cost_usd"]), found["cost"])
        costs = {r["name"]: Decimal(r["cost_usd"]) for r in rows if r["section"] == "lever_cost"}
        self.assertEqual(costs, {"shadow": Decimal("0.4"), "judge": Decimal("0.05")})

    @override_settings(SITE_URL="https://finops.example.test")
    def test_chargeback_email_carries_the_savings(self):
        found = ledger(self.org_a, team=self.team_a)
        mail.outbox = []
        budget_alerts_evaluate(now=utc(2026, 4, 1, 12))
        alert = BudgetAlert.objects.get(kind=AlertKind.CHARGEBACK, team=self.team_a)
        savings = alert.details["savings"]
        self.assertEqual(Decimal(savings["saved"]), found["saved"])
        self.assertEqual(
            {lv["lever"]: Decimal(lv["saved"]) for lv in savings["levers"]},
            {lever: found[lever] for lever in LEVERS},
        )
        message = next(
            m for m in mail.outbox if m.extra_headers["X-FinOps-Alert"] == alert.dedupe_key
        )
        [(html, _)] = message.alternatives
        for body in (message.body, html):
            self.assertIn(f"saved {usd(found['saved'])} USD", body.replace("<strong>", ""))
            for lever in LEVERS:
                self.assertIn(usd(found[lever]), body)
        self.assertIn("Cost router", message.body)
        self.assertIn(usd(found["judge"]), message.body)
