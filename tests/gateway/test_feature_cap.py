"""The per-key cap on feature names created by traffic holds across gateway processes.

Each "process" here is what one gateway process has: its own key record (loaded the way the key
cache loads it, so each sees the key's whole allowance) and its own ledger writer thread with
its own database connection. They race on the real database (PostgreSQL when ``DATABASE_URL``
points at it, else SQLite).
"""

from __future__ import annotations

import tempfile
import threading
import uuid
from datetime import UTC, datetime
from pathlib import Path

from django.db import connection
from django.test import TransactionTestCase, override_settings

from gateway import attribution
from gateway.cache import key_record_load
from gateway.ledger import LedgerWriter
from gateway.models import UsageEvent
from teams.models import Feature
from tests import factories as f

CAP = 5


class _CountingLedger:
    def __init__(self) -> None:
        self.named: list[tuple] = []

    def feature_named(self, *args) -> None:
        self.named.append(args)


def _event(record, feature: str) -> dict:
    now = datetime.now(UTC)
    return {
        "request_id": uuid.uuid4().hex,
        "started_at": now,
        "ended_at": now,
        "org_id": record.org_id,
        "team_id": record.team_id,
        "key_id": record.key_id,
        "feature": feature,
        "status": "ok",
    }


@override_settings(FINOPS_NEW_FEATURES_PER_KEY=CAP)
class FeatureCapTests(TransactionTestCase):  # the writers hold connections of their own
    def setUp(self):
        self.team = f.make_team(f.make_org("capco"), "search")
        self.minted = f.make_key(self.team, "svc")

    def _race(self, tmp_path, *, processes: int, names: list[list[str]]) -> list[str]:
        """Every process attributes its names (one call each) at once, then drains its writer.
        Returns the labels the calls were given on the hot path."""
        records = [key_record_load(self.minted.secret) for _ in range(processes)]
        writers = [LedgerWriter(spool_dir=tmp_path / f"gw{i}") for i in range(processes)]
        for writer in writers:
            writer.start()
        start = threading.Barrier(processes)
        hot: list[str] = []

        def gateway(i: int) -> None:
            start.wait()
            for name in names[i]:
                body = {"metadata": {"feature": name}}
                labels = attribution.labels({"headers": []}, body, records[i], writers[i])
                hot.append(labels.feature)
                writers[i].submit(_event(records[i], labels.feature))

        threads = [threading.Thread(target=gateway, args=(i,)) for i in range(processes)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        for writer in writers:
            writer.stop()
        return hot

    def _assert_cap_held(self, *, calls: int) -> set[str]:
        created = set(
            Feature.objects.filter(created_by_key=self.minted.key).values_list("slug", flat=True)
        )
        self.assertEqual(len(created), CAP)
        self.assertTrue(
            Feature.objects.filter(slug__in=created, claimed=False, team=self.team).count() == CAP
        )
        labels = list(UsageEvent.objects.values_list("feature", flat=True))
        self.assertEqual(len(labels), calls)  # attribution never drops a call
        # every call carries a feature that exists, or _other: none names a refused feature
        self.assertLessEqual(set(labels), created | {attribution.OVERFLOW_FEATURE})
        self.assertEqual(set(labels) - {attribution.OVERFLOW_FEATURE}, created)
        return created

    def test_processes_racing_on_distinct_new_names_create_exactly_the_cap(self):
        processes = 4
        # each process sees the whole allowance and more names than it
        names = [[f"p{i}-n{j}" for j in range(CAP + 2)] for i in range(processes)]
        with tempfile.TemporaryDirectory() as tmp:
            hot = self._race(Path(tmp), processes=processes, names=names)
        # the hot path alone let each process through up to the cap: together far more
        self.assertEqual(hot.count(attribution.OVERFLOW_FEATURE), processes * 2)
        labels = list(UsageEvent.objects.values_list("feature", flat=True))
        self._assert_cap_held(calls=processes * (CAP + 2))
        self.assertEqual(labels.count(attribution.OVERFLOW_FEATURE), processes * (CAP + 2) - CAP)

    def test_one_name_created_by_two_processes_at_once_counts_once(self):
        processes = 3
        # "a-shared" sorts first, so every writer settles it before its own names
        names = [["a-shared", *(f"p{i}-n{j}" for j in range(CAP))] for i in range(processes)]
        with tempfile.TemporaryDirectory() as tmp:
            self._race(Path(tmp), processes=processes, names=names)
        created = self._assert_cap_held(calls=processes * (CAP + 1))
        self.assertIn("a-shared", created)
        self.assertEqual(Feature.objects.filter(team=self.team, slug="a-shared").count(), 1)
        self.assertEqual(UsageEvent.objects.filter(feature="a-shared").count(), processes)

    def test_many_processes_on_postgresql_create_exactly_the_cap(self):
        if connection.vendor != "postgresql":
            self.skipTest("PostgreSQL only: DATABASE_URL does not point at postgres")
        processes = 8
        names = [[f"p{i}-n{j}" for j in range(CAP)] for i in range(processes)]
        with tempfile.TemporaryDirectory() as tmp:
            self._race(Path(tmp), processes=processes, names=names)
        self._assert_cap_held(calls=processes * CAP)

    def test_a_refused_name_is_relabelled_even_when_its_event_comes_in_a_later_batch(self):
        for i in range(CAP):
            f.make_feature(self.team, f"old{i}")
        Feature.objects.filter(team=self.team).update(created_by_key=self.minted.key)
        record = key_record_load(self.minted.secret)
        record.new_features_left = 1  # a stale record: another process took the last place
        writer = LedgerWriter(spool_dir=None)
        labels = attribution.labels(
            {"headers": []}, {"metadata": {"feature": "late"}}, record, writer
        )
        self.assertEqual(labels.feature, "late")  # the hot path does not know yet
        writer._take(writer._queue.get_nowait(), [])
        writer._features_settle([])  # settled in one flush ...
        event = _event(record, labels.feature)
        writer._features_settle([event])  # ... its event written in a later one
        self.assertEqual(event["feature"], attribution.OVERFLOW_FEATURE)
        self.assertFalse(Feature.objects.filter(slug="late").exists())

    def test_a_deleted_feature_frees_its_place(self):
        record = key_record_load(self.minted.secret)
        writer = LedgerWriter(spool_dir=None)
        slugs = [f"n{i}" for i in range(CAP + 1)]
        refused = attribution.features_create(
            named=[(self.team.pk, s, self.minted.key.pk) for s in slugs], cap=CAP
        )
        self.assertEqual(refused, {(self.minted.key.pk, f"n{CAP}")})
        Feature.objects.filter(slug="n0").delete()
        writer._features_refused = refused
        writer._new_features = {(self.team.pk, f"n{CAP}", record.key_id)}
        event = _event(record, f"n{CAP}")
        writer._features_settle([event])
        self.assertEqual(event["feature"], f"n{CAP}")
        self.assertTrue(Feature.objects.filter(slug=f"n{CAP}").exists())

    def test_known_features_cost_the_hot_path_nothing(self):
        f.make_feature(self.team, "known")
        record = key_record_load(self.minted.secret)
        ledger = _CountingLedger()
        for _ in range(3):
            labels = attribution.labels(
                {"headers": [(b"x-finops-feature", b"known")]}, {}, record, ledger
            )
            self.assertEqual(labels.feature, "known")
        self.assertEqual(ledger.named, [])
        self.assertEqual(record.new_features_left, CAP)
