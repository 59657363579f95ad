"""The A/B page: who may open it (whole-org readers; leads and members of the experiment's key's
or feature's team; 404 for anyone else), per-arm calls, cost, cost per call, latency p50/p95,
error rate and feedback quality with n and interval; JSON and CSV."""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from decimal import Decimal

from django.test import override_settings
from django.urls import reverse
from django.utils import timezone

from evaluation.models import Experiment, Feedback
from tests import factories as f
from tests.base import TwoOrgsTestCase
from tests.reports.ledger import event


@override_settings(PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"])
class ExperimentPageTestCase(TwoOrgsTestCase):
    @classmethod
    def setUpTestData(cls):
        super().setUpTestData()
        f.make_model(cls.org_a, "gpt-4o", input_per_mtok="2.50", output_per_mtok="10.00")
        mini = f.make_model(cls.org_a, "gpt-4o-mini")
        key_a = cls.minted_a.key
        created = timezone.now() - timedelta(days=1)
        cls.experiment = Experiment.objects.create(
            org=cls.org_a, name="cheaper", route="gpt-4o", candidate=mini, share=0.3,
            key=key_a, created_at=created,
        )  # fmt: skip
        cls.by_feature = Experiment.objects.create(
            org=cls.org_a, name="ads-test", route="gpt-4o", candidate=mini,
            feature=f.make_feature(cls.team_a2, "ads-copy"), created_at=created,
        )  # fmt: skip
        mini_b = f.make_model(cls.org_b, "gpt-4o-mini")
        cls.experiment_b = Experiment.objects.create(
            org=cls.org_b, name="cheaper", route="gpt-4o", candidate=mini_b,
            key=cls.minted_b.key,
        )  # fmt: skip

        now = timezone.now() - timedelta(minutes=1)
        base = dict(org=cls.org_a, team=cls.team_a, key_id=key_a.pk, experiment="cheaper",
                    started_at=now)  # fmt: skip
        for i, latency in enumerate((100, 200, 300, 400)):
            event(model="gpt-4o", experiment_arm="control", latency_ms=latency,
                  input_cost="0.006", output_cost="0.004", request_id=f"c{i}",
                  status="error" if i == 3 else "ok", **base)  # fmt: skip
        for i, latency in enumerate((50, 150)):
            event(model="gpt-4o-mini", experiment_arm="candidate", latency_ms=latency,
                  input_cost="0.0006", output_cost="0.0004", request_id=f"k{i}",
                  **base)  # fmt: skip
        # evaluation traffic and another org's experiment of the same name are not counted
        event(model="gpt-4o", experiment_arm="control", shadow=True, input_cost="1", **base)
        event(org=cls.org_b, team=cls.team_b, model="gpt-4o", experiment="cheaper",
              experiment_arm="control", input_cost="9", started_at=now,
              request_id="c0")  # fmt: skip
        for request_id, score in (("c0", 0.8), ("c1", 0.6), ("k0", 0.9)):
            Feedback.objects.create(
                org_id=cls.org_a.pk, key_id=key_a.pk, request_id=request_id, score=score
            )
        Feedback.objects.create(
            org_id=cls.org_b.pk, key_id=cls.minted_b.key.pk, request_id="c0", score=0.0
        )

    def get(self, user, experiment=None, name="evaluation:experiment", **params):
        self.client.force_login(user)
        url = reverse(name, args=[(experiment or self.experiment).pk])
        return self.client.get(url, params)

    def data(self, user, **kwargs):
        response = self.get(user, name="evaluation:experiment-data", **kwargs)
        self.assertEqual(response.status_code, 200)
        return {a["arm"]: a for a in response.json()["arms"]}

    def test_whole_org_readers_and_the_keys_team_may_open_it(self):
        for user in (self.admin_a, self.finance_a, self.lead_a, self.member_a, self.superuser):
            self.assertEqual(self.get(user).status_code, 200, user)

    def test_other_teams_and_other_orgs_get_404(self):
        for user in (self.lead_a2, self.admin_b, self.lead_b, self.outsider):
            self.assertEqual(self.get(user).status_code, 404, user)
            self.assertEqual(self.get(user, name="evaluation:experiment-data").status_code, 404)
        self.assertEqual(self.get(self.admin_a, experiment=self.experiment_b).status_code, 404)

    def test_a_feature_experiment_belongs_to_the_features_team(self):
        self.assertEqual(self.get(self.lead_a2, experiment=self.by_feature).status_code, 200)
        self.assertEqual(self.get(self.lead_a, experiment=self.by_feature).status_code, 404)

    def test_per_arm_numbers(self):
        arms = self.data(self.lead_a)
        control, candidate = arms["control"], arms["candidate"]
        self.assertEqual((control["calls"], candidate["calls"]), (4, 2))
        self.assertEqual(Decimal(control["cost"]), Decimal("0.04"))
        self.assertEqual(control["cost"], "0.040000000000")
        self.assertEqual(Decimal(control["cost_per_call"]), Decimal("0.01"))
        self.assertEqual(Decimal(candidate["cost_per_call"]), Decimal("0.001"))
        self.assertEqual((control["latency_ms_p50"], control["latency_ms_p95"]), (250.0, 385.0))
        self.assertEqual((candidate["latency_ms_p50"], candidate["latency_ms_p95"]), (100.0, 145.0))
        self.assertEqual(
            (control["error_rate_pct"], candidate["error_rate_pct"]), ("25.00", "0.00")
        )

    def test_feedback_quality_per_arm_with_n_and_interval(self):
        arms = self.data(self.admin_a)
        control, candidate = arms["control"]["quality"], arms["candidate"]["quality"]
        self.assertEqual((control["n"], control["mean"]), (2, 0.7))
        self.assertLess(control["low"], 0.7)
        self.assertGreater(control["high"], 0.7)
        self.assertEqual(candidate, {"n": 1, "mean": 0.9, "low": 0.9, "high": 0.9})

    def test_range_outside_the_rows_is_empty(self):
        arms = self.data(self.admin_a, start="2020-01-01", end="2020-01-31")
        self.assertEqual(arms["control"]["calls"], 0)
        self.assertIsNone(arms["control"]["cost_per_call"])
        self.assertIsNone(arms["control"]["quality"]["mean"])
        self.assertEqual(self.get(self.admin_a, start="x").status_code, 200)
        self.assertEqual(self.get(self.admin_a, name="evaluation:experiment-data",
                                  start="x").status_code, 400)  # fmt: skip

    def test_page_has_tables_charts_and_csv(self):
        response = self.get(self.lead_a)
        self.assertContains(response, 'data-table="arms"')
        self.assertContains(response, 'id="chart-latency"')
        self.assertContains(response, "js/experiment_page.js")
        response = self.get(self.lead_a, format="csv", table="arms")
        self.assertEqual(response.status_code, 200)
        rows = list(csv.reader(io.StringIO(response.content.decode())))
        self.assertEqual(rows[0][:5], ["Arm", "Calls", "Requests", "Cost (USD)",
                                       "Cost per call (USD)"])  # fmt: skip
        self.assertEqual(rows[1][:8], ["control", "4", "4", "0.040000", "0.010000", "250.0",
                                       "385.0", "25.00%"])  # fmt: skip
        self.assertEqual(self.get(self.lead_a, format="csv", table="models").status_code, 200)
        self.assertEqual(self.get(self.lead_a2, format="csv", table="arms").status_code, 404)
