"""``calibrate_router``: the threshold becomes the (1 - share) quantile of recent prompts'
scores; the share holds on held-out prompts from the same traffic; audited; the stored prompt
sample is capped per router."""

from __future__ import annotations

import io
import re
from datetime import UTC, datetime

import orjson
from django.core.management import CommandError, call_command
from django.test import TestCase, TransactionTestCase

from gateway.ledger import LedgerWriter
from gateway.models import Router, RouterPrompt
from gateway.routing.samples import prompt_mix
from gateway.routing.scorers import HeuristicScorer
from gateway.services.routing import threshold_for_share
from teams.models import AuditEntry
from tests import factories as f


def share_at(threshold: float, prompts) -> float:
    scorer = HeuristicScorer()
    return sum(scorer.score(p) >= threshold for p in prompts) / len(prompts)


class CalibrateRouterTests(TestCase):
    @classmethod
    def setUpTestData(cls):
        cls.org = f.make_org("acme")
        provider = f.make_provider(cls.org)
        strong = f.make_model(cls.org, "gpt-4o", provider=provider)
        weak = f.make_model(cls.org, "gpt-4o-mini", provider=provider)
        cls.router = Router.objects.create(org=cls.org, name="smart", strong=strong, weak=weak)

    def calibrate(self, *args: str) -> str:
        out = io.StringIO()
        call_command("calibrate_router", "smart", "--org", "acme", *args, stdout=out)
        return out.getvalue()

    def store(self, prompts) -> None:
        RouterPrompt.objects.bulk_create(
            RouterPrompt(router=self.router, messages=m, scorer="heuristic") for m in prompts
        )

    def test_calibration_hits_the_share_on_held_out_prompts(self):
        self.store([m for _, m in prompt_mix(1500, seed=21)])
        held_out = [m for _, m in prompt_mix(1500, seed=22)]
        for share in (0.1, 0.3, 0.5):
            out = self.calibrate("--strong-share", str(share), "--last", "1500")
            threshold = Router.objects.get(pk=self.router.pk).threshold
            achieved = float(re.search(r"achieved ([\d.]+)%", out).group(1)) / 100
            self.assertAlmostEqual(achieved, share, delta=0.02)  # ties at the threshold
            self.assertAlmostEqual(share_at(threshold, held_out), share, delta=0.05)

    def test_calibration_on_a_prompts_file_sets_threshold_audits_and_prints(self):
        path = f"{self.id()}.jsonl"
        rows = [{"messages": m} for _, m in prompt_mix(400, seed=5)]
        rows += [{"prompt": "hi"}, "what's 2+2"]
        from pathlib import Path

        file = Path("/tmp") / path
        file.write_bytes(b"\n".join(orjson.dumps(r) for r in rows))
        self.addCleanup(file.unlink)
        with self.captureOnCommitCallbacks(execute=True) as callbacks:
            out = self.calibrate("--strong-share", "0.25", "--prompts", str(file))
        self.assertTrue(callbacks)  # the config stamp bump: gateways reload the threshold
        router = Router.objects.get(pk=self.router.pk)
        self.assertNotEqual(router.threshold, 0.5)
        self.assertIn(f"-> {router.threshold:.6f}", out)
        self.assertIn("402 prompts", out)
        entry = AuditEntry.objects.get(action="router.calibrated")
        self.assertEqual(entry.before["threshold"], 0.5)
        self.assertEqual(entry.after["threshold"], router.threshold)
        self.assertEqual(entry.after["strong_share"], 0.25)

    def test_dry_run_changes_nothing(self):
        self.store([m for _, m in prompt_mix(200, seed=1)])
        out = self.calibrate("--strong-share", "0.2", "--dry-run")
        self.assertIn("would set", out)
        self.assertEqual(Router.objects.get(pk=self.router.pk).threshold, 0.5)
        self.assertFalse(AuditEntry.objects.filter(action="router.calibrated").exists())

    def test_last_takes_the_newest_prompts(self):
        self.store([[{"role": "user", "content": "hi"}]] * 50)
        self.store([m for _, m in prompt_mix(50, seed=3, weights={"math": 1})])
        self.calibrate("--strong-share", "0.5", "--last", "50")
        threshold = Router.objects.get(pk=self.router.pk).threshold
        self.assertGreater(threshold, 0.5)  # the median of hard prompts, not of "hi"s

    def test_errors_are_reported(self):
        with self.assertRaisesMessage(CommandError, "no prompts"):
            self.calibrate("--strong-share", "0.3")
        with self.assertRaisesMessage(CommandError, "between 0 and 1"):
            self.calibrate("--strong-share", "1.5")
        with self.assertRaisesMessage(CommandError, "no router"):
            call_command("calibrate_router", "nope", "--org", "acme", "--strong-share", "0.3")

    def test_quantile_edges(self):
        scores = [0.1, 0.2, 0.3, 0.4]
        self.assertEqual(threshold_for_share(scores, 0.5), 0.3)
        self.assertEqual(threshold_for_share(scores, 1.0), 0.1)
        self.assertGreater(threshold_for_share(scores, 0.0), 0.4)


class PromptSampleTests(TransactionTestCase):  # the writer manages its own connection
    def setUp(self):
        org = f.make_org("acme")
        provider = f.make_provider(org)
        strong = f.make_model(org, "gpt-4o", provider=provider)
        weak = f.make_model(org, "gpt-4o-mini", provider=provider)
        self.router = Router.objects.create(
            org=org, name="smart", strong=strong, weak=weak, prompt_retention=5
        )

    def test_the_writer_keeps_only_the_newest_prompts_clipped(self):
        writer = LedgerWriter(spool_dir=None)
        when = datetime.now(UTC)
        long = "x" * 50_000
        for i in range(8):
            item = ("prompt", self.router.pk, 5, [{"role": "user", "content": f"p{i} {long}"}])
            writer._take((*item, "heuristic", 0.4, when), [])
        writer._prompts_write()
        rows = list(RouterPrompt.objects.filter(router=self.router).order_by("id"))
        self.assertEqual(len(rows), 5)
        self.assertTrue(rows[0].messages[0]["content"].startswith("p3 "))
        self.assertLess(len(rows[0].messages[0]["content"]), 25_000)
        self.assertEqual((rows[0].scorer, rows[0].score), ("heuristic", 0.4))

    def test_busy_traffic_is_sampled_per_flush(self):
        writer = LedgerWriter(spool_dir=None)
        when = datetime.now(UTC)
        for i in range(80):
            item = ("prompt", self.router.pk, 5, [{"role": "user", "content": f"p{i}"}])
            writer._take((*item, "heuristic", 0.1, when), [])
        self.assertEqual(len(writer._prompts), 50)
        writer._prompts_write()
        self.assertEqual(RouterPrompt.objects.filter(router=self.router).count(), 5)
        writer._take(("prompt", self.router.pk, 5, "again", "heuristic", 0.1, when), [])
        self.assertEqual(len(writer._prompts), 1)  # the count starts again after a flush


class RouterConfigTests(TestCase):
    YAML = """
organization: cfg
providers:
  - {name: sim, kind: openai, base_url: "http://127.0.0.1:9100/v1"}
models:
  - {name: gpt-4o, provider: sim, input_usd_per_mtok: "2.5", output_usd_per_mtok: "10"}
  - {name: gpt-4o-mini, provider: sim, input_usd_per_mtok: "0.15", output_usd_per_mtok: "0.6"}
routers:
  - {name: smart, strong: gpt-4o, weak: gpt-4o-mini, scorer: learned%s}
teams:
  - name: search
    features: [{name: triage, default_model: "router:smart"}]
"""

    def apply(self, extra: str = "") -> str:
        import tempfile
        from pathlib import Path

        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "finops.yaml"
            path.write_text(self.YAML % extra)
            out = io.StringIO()
            call_command("apply_config", str(path), stdout=out)
            return out.getvalue()

    def test_yaml_sets_router_sample_settings_and_feature_default_and_keeps_calibration(self):
        from teams.models import Feature

        self.apply(", store_prompts: false, prompt_retention: 100")
        router = Router.objects.get(org__slug="cfg", name="smart")
        self.assertEqual(
            (router.scorer, router.threshold, router.store_prompts, router.prompt_retention),
            ("learned", 0.5, False, 100),
        )
        self.assertEqual(Feature.objects.get(slug="triage").default_model, "router:smart")
        Router.objects.filter(pk=router.pk).update(threshold=0.62)  # as calibrate_router would
        out = self.apply(", store_prompts: false, prompt_retention: 100")
        self.assertIn("no changes", out)
        self.assertEqual(Router.objects.get(pk=router.pk).threshold, 0.62)
        out = self.apply(", threshold: 0.7")
        self.assertIn("threshold: 0.62 -> 0.7", out)
