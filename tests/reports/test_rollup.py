"""Rollups: buckets per UTC hour and per local day, every dimension, idempotent and incremental,
and equal to the ledger after randomized traffic, late events, a replay and a repeated run."""

from __future__ import annotations

import random
import threading
from datetime import date, timedelta
from decimal import Decimal
from io import StringIO
from unittest import skipUnless

from django.core.management import call_command
from django.db import connection
from django.db.models import Sum
from django.test import TestCase, TransactionTestCase, override_settings
from django.utils import timezone

from gateway.ledger import _insert
from gateway.models import UsageEvent
from reports.models import (
    COST_FIELDS,
    LATENCY_FIELDS,
    MEASURE_FIELDS,
    DailyDimensionSpend,
    DailySpend,
    Dimension,
    HourlySpend,
    RollupState,
)
from reports.selectors import latency_quantile
from reports.services import spend_reconcile, usage_rollup
from tests import factories as f
from tests.base import TwoOrgsTestCase
from tests.reports.ledger import event, is_postgres, random_events, save_all, utc


def _sums(queryset, *columns: str) -> dict[tuple, tuple]:
    """Every measure summed by ``columns`` (money to a billionth on SQLite's doubles)."""
    exact = connection.vendor == "postgresql"
    out = {}
    for g in queryset.values(*columns).annotate(**{f"s_{m}": Sum(m) for m in MEASURE_FIELDS}):
        measures = []
        for m in MEASURE_FIELDS:
            value = g[f"s_{m}"] or 0
            if m in COST_FIELDS:
                value = Decimal(value) if exact else Decimal(value).quantize(Decimal("1e-9"))
            measures.append(value)
        out[tuple(str(g[c]) for c in columns)] = tuple(measures)
    return out


def assert_marginals_equal_the_day_rollups(test) -> None:
    """Each dimension's ``DailyDimensionSpend`` rows are ``DailySpend`` summed by org, day, team
    and the dimension's value: the same groups, one row each, the same sums of every measure."""
    by = {
        Dimension.TEAM: None,
        Dimension.FEATURE: "feature",
        Dimension.ENDPOINT: "endpoint",
        Dimension.MODEL: "model",
        Dimension.KEY: "key_id",
    }
    test.assertGreater(DailySpend.objects.count(), 0)
    for dimension, column in by.items():
        rows = DailyDimensionSpend.objects.filter(dimension=dimension)
        expected = _sums(
            DailySpend.objects.all(), "org_id", "day", "team_id", *filter(None, [column])
        )
        if column is None:
            test.assertEqual(set(rows.values_list("value", flat=True)), {""})
            actual = _sums(rows, "org_id", "day", "team_id")
        else:
            actual = _sums(rows, "org_id", "day", "team_id", "value")
        test.assertEqual(rows.count(), len(expected), dimension)
        test.assertEqual(actual, expected, dimension)


class RollupBucketTests(TwoOrgsTestCase):
    def setUp(self):
        RollupState.objects.all().delete()

    def test_hour_and_day_buckets_sum_every_measure_per_dimension(self):
        t = utc(2026, 3, 10, 9, 15)
        common = dict(org=self.org_a, team=self.team_a, feature="summarize", endpoint="/s")
        event(**common, started_at=t, input_cost="0.000100000001", output_cost="0.000200000002")
        event(**common, started_at=t + timedelta(minutes=30), attempt=2, request_id="r-x")
        event(**common, started_at=t + timedelta(minutes=31), status="error", output_cost="0")
        event(**common, started_at=t + timedelta(minutes=5), shadow=True, input_cost="0.5")
        event(**common, started_at=t + timedelta(hours=1))  # the next hour, same day
        result = usage_rollup()
        self.assertEqual(result.events, 5)

        hours = HourlySpend.objects.filter(org_id=self.org_a.pk).order_by("hour")
        self.assertEqual([h.hour for h in hours], [utc(2026, 3, 10, 9), utc(2026, 3, 10, 10)])
        first = hours[0]
        self.assertEqual(
            (first.requests, first.attempts, first.successes, first.failures),
            (2, 3, 2, 1),
        )
        self.assertEqual((first.eval_requests, first.eval_attempts), (1, 1))
        self.assertEqual(first.eval_cost, Decimal("0.500012"))
        self.assertEqual(first.prompt_tokens, 300)
        self.assertEqual(first.input_cost, Decimal("0.000130000001"))
        self.assertEqual(first.failed_cost, Decimal("0.000015"))
        self.assertEqual(
            first.cost, Decimal("0.000100000001") + Decimal("0.000200000002") + Decimal("0.000042")
        )
        self.assertEqual(
            (first.team_id, first.feature, first.endpoint), (self.team_a.pk, "summarize", "/s")
        )
        self.assertEqual((first.latency_count, first.latency_sum_ms), (2, 240))

        [day] = DailySpend.objects.filter(org_id=self.org_a.pk)
        self.assertEqual(day.day, date(2026, 3, 10))
        self.assertEqual(day.attempts, 4)
        self.assertEqual(day.cost, hours.aggregate(s=Sum("cost"))["s"])

    def test_missing_dimensions_are_stored_as_sentinels(self):
        event(org=self.org_a, started_at=utc(2026, 3, 10, 9), model="", provider="")
        usage_rollup()
        row = DailySpend.objects.get(org_id=self.org_a.pk)
        self.assertEqual(
            (row.team_id, row.key_id, row.feature, row.endpoint, row.end_user, row.model),
            (0, 0, "", "", "", ""),
        )

    def test_each_dimension_splits_rows(self):
        t = utc(2026, 3, 10, 9)
        base = dict(
            org=self.org_a,
            team=self.team_a,
            key_id=self.minted_a.key.pk,
            feature="f",
            endpoint="/e",
            end_user="u",
            model="m",
            provider="p",
            started_at=t,
        )
        event(**base)
        variations = [
            ("team", self.team_a2),
            ("key_id", self.minted_a2.key.pk),
            ("feature", "g"),
            ("endpoint", "/other"),
            ("end_user", "v"),
            ("model", "m2"),
            ("provider", "p2"),
        ]
        for name, value in variations:
            event(**{**base, name: value})
        usage_rollup()
        self.assertEqual(HourlySpend.objects.filter(org_id=self.org_a.pk).count(), 8)
        self.assertEqual(DailySpend.objects.filter(org_id=self.org_a.pk).count(), 8)

    def test_days_follow_the_org_timezone_even_on_half_hour_offsets(self):
        org = f.make_org("mumbai", timezone="Asia/Kolkata")  # UTC+05:30
        # 18:29 UTC is 23:59 local on the 10th; 18:31 UTC is 00:01 local on the 11th: the same
        # UTC hour, two local days.
        event(org=org, started_at=utc(2026, 3, 10, 18, 29), input_cost="1")
        event(org=org, started_at=utc(2026, 3, 10, 18, 31), input_cost="2")
        usage_rollup()
        [hour] = HourlySpend.objects.filter(org_id=org.pk)
        self.assertEqual(hour.hour, utc(2026, 3, 10, 18))
        days = dict(DailySpend.objects.filter(org_id=org.pk).values_list("day", "input_cost"))
        self.assertEqual(days, {date(2026, 3, 10): Decimal("1"), date(2026, 3, 11): Decimal("2")})

    def test_latency_histogram_gives_quantiles(self):
        for ms in [10] * 50 + [300] * 45 + [3000] * 5:
            event(org=self.org_a, started_at=utc(2026, 3, 10, 9), latency_ms=ms)
        usage_rollup()
        row = HourlySpend.objects.get(org_id=self.org_a.pk)
        counts = [getattr(row, name) for name in LATENCY_FIELDS]
        self.assertEqual(sum(counts), 100)
        self.assertEqual((counts[0], counts[3], counts[6]), (50, 45, 5))
        self.assertLessEqual(latency_quantile(counts, 0.5), 50)
        p95 = latency_quantile(counts, 0.95)
        self.assertTrue(250 < p95 <= 500, p95)
        self.assertTrue(2500 < latency_quantile(counts, 0.99) <= 5000)


class RollupIncrementalTests(TwoOrgsTestCase):
    def setUp(self):
        RollupState.objects.all().delete()

    def total(self, model=DailySpend) -> Decimal:
        return model.objects.filter(org_id=self.org_a.pk).aggregate(s=Sum("cost"))["s"]

    def test_second_run_without_new_events_changes_nothing(self):
        event(org=self.org_a, team=self.team_a, started_at=utc(2026, 3, 10, 9))
        first = usage_rollup()
        before = list(HourlySpend.objects.values())
        second = usage_rollup()
        self.assertEqual((second.events, second.hours, second.days), (0, 0, 0))
        self.assertEqual(second.watermark, first.watermark)
        self.assertEqual(list(HourlySpend.objects.values()), before)

    def test_late_event_recomputes_its_old_bucket_without_double_counting(self):
        event(org=self.org_a, team=self.team_a, started_at=utc(2026, 3, 1, 9), input_cost="1")
        event(org=self.org_a, team=self.team_a, started_at=utc(2026, 3, 10, 9), input_cost="2")
        usage_rollup()
        # a spool replay: an event that started on the 1st arrives now, with a new id
        event(org=self.org_a, team=self.team_a, started_at=utc(2026, 3, 1, 9, 30), input_cost="4")
        result = usage_rollup()
        self.assertEqual((result.events, result.hours, result.days), (1, 1, 1))
        day1 = DailySpend.objects.get(org_id=self.org_a.pk, day=date(2026, 3, 1))
        self.assertEqual(day1.input_cost, Decimal("5"))
        self.assertEqual(self.total(), Decimal("7.000036"))

    def test_replayed_event_ids_are_ignored_by_the_ledger_and_the_rollup(self):
        row = event(org=self.org_a, team=self.team_a, started_at=utc(2026, 3, 10, 9), save=False)
        fields = {
            f.attname: getattr(row, f.attname)
            for f in UsageEvent._meta.concrete_fields
            if not f.primary_key
        }
        _insert([fields])
        usage_rollup()
        _insert([fields])  # the spool replays the same batch
        usage_rollup()
        self.assertEqual(UsageEvent.objects.filter(org_id=self.org_a.pk).count(), 1)
        self.assertEqual(self.total(), row.cost)

    def test_a_rerun_from_a_reset_watermark_does_not_double_count(self):
        for i in range(5):
            event(org=self.org_a, team=self.team_a, started_at=utc(2026, 3, 10, i))
        usage_rollup()
        expected = self.total()
        RollupState.objects.update(last_event_id=0)  # as if the run was repeated
        usage_rollup()
        self.assertEqual(self.total(), expected)
        self.assertEqual(self.total(HourlySpend), expected)

    @override_settings(ROLLUP_SAFETY_LAG_SECONDS=60)
    def test_periodic_run_leaves_rows_younger_than_the_safety_lag(self):
        now = timezone.now()
        old = event(org=self.org_a, started_at=now, inserted_at=now - timedelta(minutes=5))
        event(org=self.org_a, started_at=now, inserted_at=now)
        periodic = usage_rollup(periodic=True)
        self.assertEqual((periodic.events, periodic.watermark), (1, old.pk))
        by_hand = usage_rollup()
        self.assertEqual(by_hand.events, 1)
        self.assertEqual(
            HourlySpend.objects.filter(org_id=self.org_a.pk).aggregate(s=Sum("attempts"))["s"], 2
        )

    def test_since_rebuilds_buckets_that_were_lost(self):
        for day in (1, 2, 3):
            event(org=self.org_a, team=self.team_a, started_at=utc(2026, 3, day, 12))
        usage_rollup()
        expected = self.total()
        DailySpend.objects.filter(day__gte=date(2026, 3, 2)).delete()
        HourlySpend.objects.filter(hour__gte=utc(2026, 3, 2)).delete()
        result = usage_rollup(since=date(2026, 3, 2))
        self.assertEqual(result.events, 0)
        self.assertEqual(self.total(), expected)
        self.assertEqual(self.total(HourlySpend), expected)

    def test_since_repairs_days_after_a_timezone_change(self):
        event(org=self.org_a, started_at=utc(2026, 3, 10, 23, 30), input_cost="1")
        usage_rollup()
        self.org_a.timezone = "Europe/Berlin"
        self.org_a.save()
        DailySpend.objects.filter(org_id=self.org_a.pk).delete()
        usage_rollup(since=date(2026, 3, 10))
        self.assertEqual(
            list(DailySpend.objects.filter(org_id=self.org_a.pk).values_list("day", flat=True)),
            [date(2026, 3, 11)],
        )

    def test_rollup_command_reports_progress_and_results(self):
        event(org=self.org_a, started_at=utc(2026, 3, 10, 9))
        out, err = StringIO(), StringIO()
        call_command("rollup", stdout=out, stderr=err)
        self.assertIn("1 new events", out.getvalue())
        call_command("rollup", "--since", "2026-03-01", "--check", stdout=out, stderr=err)
        self.assertIn("reconciled", out.getvalue())


class ReconciliationTests(TestCase):
    """Randomized traffic over three orgs (one at +05:30), late events, a replay and a repeated
    run: the rollups equal the ledger, exactly on PostgreSQL."""

    def test_rollups_equal_the_ledger_after_random_traffic_late_events_and_replays(self):
        RollupState.objects.all().delete()
        rng = random.Random(20261128)
        orgs = []
        for slug, tz in (("r-utc", "UTC"), ("r-ist", "Asia/Kolkata"), ("r-ny", "America/New_York")):
            org = f.make_org(slug, timezone=tz)
            teams = [f.make_team(org, f"t{i}") for i in range(3)]
            keys = [f.make_key(teams[0], f"k{i}").key.pk for i in range(2)]
            orgs.append((org, teams, ["", "summarize", "chat"], keys))
        start = utc(2026, 3, 1, 0, 0)
        save_all(random_events(rng, 600, orgs=orgs, start=start, span=timedelta(days=6)))
        usage_rollup()
        save_all(random_events(rng, 300, orgs=orgs, start=start, span=timedelta(days=9)))
        usage_rollup(periodic=True)  # lag: leaves some, the next run takes them
        # late events: started days ago, inserted now
        save_all(random_events(rng, 100, orgs=orgs, start=start, span=timedelta(days=2)))
        usage_rollup()
        usage_rollup()  # repeated
        RollupState.objects.update(last_event_id=0)  # replayed from scratch
        usage_rollup()

        report = spend_reconcile(start=date(2026, 2, 28), end=date(2026, 3, 11))
        self.assertEqual(len(report), 3)
        for rec in report:
            self.assertTrue(rec.ok, rec)
            self.assertGreater(rec.ledger_days["cost"], 0)
        total = UsageEvent.objects.filter(shadow=False).aggregate(s=Sum("cost"))["s"]
        rolled = DailySpend.objects.aggregate(s=Sum("cost"))["s"]
        if self._pg():
            self.assertEqual(rolled, total)
        else:
            self.assertAlmostEqual(rolled, total, places=9)

    def test_dimension_marginals_equal_the_day_rollups_after_late_events_and_rebuilds(self):
        RollupState.objects.all().delete()
        rng = random.Random(20261129)
        orgs = []
        for slug, tz in (("m-utc", "UTC"), ("m-ist", "Asia/Kolkata"), ("m-ny", "America/New_York")):
            org = f.make_org(slug, timezone=tz)
            teams = [f.make_team(org, f"t{i}") for i in range(3)]
            keys = [f.make_key(teams[0], f"k{i}").key.pk for i in range(2)]
            orgs.append((org, teams, ["", "summarize", "chat"], keys))
        start = utc(2026, 3, 1, 0, 0)
        save_all(random_events(rng, 500, orgs=orgs, start=start, span=timedelta(days=8)))
        usage_rollup()
        assert_marginals_equal_the_day_rollups(self)

        # late events land in old days: those days' marginals are rebuilt, not added to
        save_all(random_events(rng, 150, orgs=orgs, start=start, span=timedelta(days=2)))
        usage_rollup()
        assert_marginals_equal_the_day_rollups(self)

        # lost or stale marginals are rebuilt by `rollup --since`, the rest left as they were
        DailyDimensionSpend.objects.filter(day__gte=date(2026, 3, 4)).delete()
        DailyDimensionSpend.objects.filter(day=date(2026, 3, 3)).update(cost=Decimal(999))
        call_command("rollup", "--since", "2026-03-03", "--no-progress", stdout=StringIO())
        assert_marginals_equal_the_day_rollups(self)
        self.assertEqual(DailyDimensionSpend.objects.filter(cost=Decimal(999)).count(), 0)

    @staticmethod
    def _pg() -> bool:
        from django.db import connection

        return connection.vendor == "postgresql"


@skipUnless(is_postgres(), "row locks and parallel connections need PostgreSQL")
class ConcurrentRollupTests(TransactionTestCase):
    """Committed data, real connections: two rollups at once never double count, and a large
    run recomputes its buckets on parallel connections with the same result."""

    def setUp(self):
        self.org = f.make_org("conc", timezone="Asia/Kolkata")
        self.team = f.make_team(self.org, "t")
        rng = random.Random(7)
        orgs = [(self.org, [self.team], ["", "a", "b"], [])]
        save_all(random_events(rng, 400, orgs=orgs, start=utc(2026, 3, 1), span=timedelta(days=5)))

    def totals(self) -> tuple:
        return (
            DailySpend.objects.aggregate(s=Sum("cost"))["s"],
            HourlySpend.objects.aggregate(s=Sum("cost"))["s"],
            UsageEvent.objects.filter(shadow=False).aggregate(s=Sum("cost"))["s"],
        )

    def test_two_rollups_at_once_never_double_count(self):
        results, errors = [], []
        barrier = threading.Barrier(3)

        def run(periodic: bool) -> None:
            try:
                barrier.wait(5)
                results.append(usage_rollup(periodic=periodic))
            except Exception as exc:  # pragma: no cover - reported below
                errors.append(exc)
            finally:
                connection.close()

        with override_settings(ROLLUP_SAFETY_LAG_SECONDS=0):
            threads = [threading.Thread(target=run, args=(p,)) for p in (False, True, True)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(30)
        self.assertEqual(errors, [])
        self.assertEqual(sum(r.events for r in results), 400)  # each row taken exactly once
        daily, hourly, ledger = self.totals()
        self.assertEqual(daily, ledger)
        self.assertEqual(hourly, ledger)

    @override_settings(FINOPS_ROLLUP_PARALLEL_MIN_ROWS=1, FINOPS_ROLLUP_WORKERS=3)
    def test_parallel_recompute_matches_the_ledger(self):
        result = usage_rollup(since=date(2026, 2, 28))
        self.assertEqual(result.events, 400)
        daily, hourly, ledger = self.totals()
        self.assertEqual(daily, ledger)
        self.assertEqual(hourly, ledger)
        self.assertTrue(
            all(r.ok for r in spend_reconcile(start=date(2026, 2, 28), end=date(2026, 3, 7)))
        )
        assert_marginals_equal_the_day_rollups(self)
