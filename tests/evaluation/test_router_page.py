"""The router page: who may open it (org-wide for admin/finance, one of their own teams for
leads and members, 404 for anyone else), production share by model, realised cost against the
all-strong counterfactual (exact Decimal), quality retained on labelled pairs with n and a
bootstrap interval, the quality curve, the what-if grid, evaluation spend apart; JSON and CSV."""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from decimal import Decimal

from django.test import override_settings
from django.urls import reverse
from django.utils import timezone

from evaluation.models import EvalPair
from evaluation.pages.router_report import quality_retained
from gateway.models import RouterModel
from tests import factories as f
from tests.base import TwoOrgsTestCase
from tests.reports.ledger import event

MSG = [{"role": "user", "content": "hello"}]


def pair(router, team, score, *, request_id, **labels):
    return EvalPair.objects.create(
        org_id=router.org_id,
        team_id=team.pk,
        router=router,
        request_id=request_id,
        expires_at=timezone.now() + timedelta(days=30),
        messages=MSG,
        router_score=score,
        served=labels.pop("served", "strong" if score >= router.threshold else "weak"),
        strong_model=router.strong.name,
        weak_model=router.weak.name,
        **labels,
    )


@override_settings(PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"])
class RouterPageTestCase(TwoOrgsTestCase):
    @classmethod
    def setUpTestData(cls):
        super().setUpTestData()
        strong = f.make_model(cls.org_a, "gpt-4o", input_per_mtok="2.50", output_per_mtok="10.00")
        weak = f.make_model(cls.org_a, "gpt-4o-mini", input_per_mtok="0.15", output_per_mtok="0.60")
        judge = f.make_model(cls.org_a, "judge-m", input_per_mtok="1", output_per_mtok="1")
        cls.router = f.make_router(cls.org_a, "smart", strong=strong, weak=weak, threshold=0.5)
        cls.router.judge_model = judge
        cls.router.save()
        strong_b = f.make_model(cls.org_b, "gpt-4o")
        cls.router_b = f.make_router(cls.org_b, "smart", strong=strong_b, weak=strong_b)

        now = timezone.now() - timedelta(minutes=1)
        cls.query = {
            "start": (timezone.now() - timedelta(days=2)).date().isoformat(),
            "end": (timezone.now() + timedelta(days=1)).date().isoformat(),
        }
        a, a2 = cls.team_a, cls.team_a2
        routed = dict(org=cls.org_a, router="smart", router_scorer="heuristic", started_at=now)
        # team A: one strong call, two weak ones (one with cached input)
        event(team=a, model="gpt-4o", router_decision="strong", router_score=0.8,
              prompt_tokens=1000, completion_tokens=200, input_cost="0.0025",
              output_cost="0.002", **routed)  # fmt: skip
        event(team=a, model="gpt-4o-mini", router_decision="weak", router_score=0.2,
              prompt_tokens=2000, cached_tokens=500, completion_tokens=400,
              input_cost="0.000225", cached_input_cost="0.000075", output_cost="0.00024",
              **routed)  # fmt: skip
        event(team=a, model="gpt-4o-mini", router_decision="weak", router_score=0.4,
              prompt_tokens=100, completion_tokens=50, input_cost="0.000015",
              output_cost="0.00003", **routed)  # fmt: skip
        # team A2: one big weak call
        event(team=a2, model="gpt-4o-mini", router_decision="weak", router_score=0.3,
              prompt_tokens=10000, completion_tokens=0, input_cost="0.0015", output_cost="0",
              **routed)  # fmt: skip
        # evaluation spend of team A: a shadow call and a judge call
        event(team=a, model="gpt-4o", shadow=True, input_cost="0.001", output_cost="0", **routed)
        event(team=a, model="judge-m", shadow=True, input_cost="0.0002", output_cost="0",
              feature="evaluation-judge", **{**routed, "router_decision": "judge"})  # fmt: skip
        # not this router's, or outside the range, or another org's
        event(org=cls.org_a, team=a, model="gpt-4o", input_cost="5", started_at=now)
        event(team=a, model="gpt-4o", router_decision="strong", router_score=0.9,
              input_cost="5", **{**routed, "started_at": now - timedelta(days=20)})  # fmt: skip
        event(org=cls.org_b, team=cls.team_b, model="gpt-4o", router="smart",
              router_decision="strong", router_score=0.9, input_cost="7",
              started_at=now)  # fmt: skip

        r = cls.router
        pair(r, a, 0.9, request_id="p1", judge_strong=1.0, judge_weak=0.2)
        pair(r, a, 0.1, request_id="p2", judge_strong=0.8, judge_weak=0.8)
        pair(r, a, 0.3, request_id="p3", review_needs_strong=True)
        pair(r, a, 0.7, request_id="p4", feedback_score=0.9, served="strong")
        pair(r, a, 0.6, request_id="p5")  # unlabelled
        pair(r, a2, 0.2, request_id="p6", judge_strong=1.0, judge_weak=0.0)

    def url(self, name="evaluation:router", router=None, **params):
        base = reverse(name, args=[(router or self.router).pk])
        query = {**self.query, **params}
        return base + "?" + "&".join(f"{k}={v}" for k, v in query.items())

    def get(self, user, **kwargs):
        self.client.force_login(user)
        return self.client.get(self.url(**kwargs))

    def data(self, user, **params):
        response = self.get(user, name="evaluation:router-data", **params)
        self.assertEqual(response.status_code, 200, response.content[:300])
        return response.json()

    # --- who may open it ---

    def test_org_admin_and_finance_see_the_whole_organisation(self):
        for user in (self.admin_a, self.finance_a, self.superuser):
            response = self.get(user)
            self.assertEqual(response.status_code, 200)
            self.assertContains(response, "whole organisation")
            self.assertEqual(response.context["data"]["traffic"]["calls"], 4)

    def test_lead_and_member_see_their_own_team_by_default(self):
        for user in (self.lead_a, self.member_a):
            response = self.get(user)
            self.assertEqual(response.status_code, 200)
            data = response.context["data"]
            self.assertEqual(data["scope"]["team"]["id"], self.team_a.pk)
            self.assertEqual(data["traffic"]["calls"], 3)
        self.assertEqual(self.data(self.lead_a2)["traffic"]["calls"], 1)

    def test_lead_asking_for_another_team_gets_404(self):
        self.assertEqual(self.get(self.lead_a, team=self.team_a2.pk).status_code, 404)
        self.assertEqual(self.get(self.lead_a, team="nope").status_code, 404)
        self.assertEqual(
            self.get(self.lead_a, name="evaluation:router-data", team=self.team_a2.pk).status_code,
            404,
        )

    def test_admin_may_pick_a_team_of_their_org_but_not_another_orgs(self):
        self.assertEqual(self.data(self.admin_a, team=self.team_a.pk)["traffic"]["calls"], 3)
        self.assertEqual(self.get(self.admin_a, team=self.team_b.pk).status_code, 404)

    def test_another_org_gets_404(self):
        for user in (self.admin_b, self.lead_b, self.outsider):
            self.assertEqual(self.get(user).status_code, 404)
            self.assertEqual(self.get(user, name="evaluation:router-data").status_code, 404)
        self.client.force_login(self.admin_a)
        self.assertEqual(self.client.get(self.url(router=self.router_b)).status_code, 404)

    def test_anonymous_is_sent_to_login(self):
        response = self.client.get(self.url())
        self.assertEqual(response.status_code, 302)

    # --- the numbers ---

    def test_share_by_decision_and_model(self):
        data = self.data(self.lead_a)
        rows = {(r["decision"], r["model"]): r for r in data["traffic"]["by_model"]}
        self.assertEqual(rows[("strong", "gpt-4o")]["calls"], 1)
        self.assertEqual(rows[("weak", "gpt-4o-mini")]["calls"], 2)
        self.assertEqual(rows[("weak", "gpt-4o-mini")]["share_pct"], "66.67")
        self.assertEqual(data["traffic"]["strong_share_pct"], "33.33")

    def test_counterfactual_cost_is_exact(self):
        cost = self.data(self.lead_a)["cost"]
        # weak calls re-priced at 2.50 / 10.00 per Mtok: 2000 in + 400 out, 100 in + 50 out
        self.assertEqual(Decimal(cost["realised"]), Decimal("0.005085"))
        self.assertEqual(Decimal(cost["all_strong"]), Decimal("0.0045") + Decimal("0.009")
                         + Decimal("0.00075"))  # fmt: skip
        self.assertEqual(Decimal(cost["savings"]), Decimal("0.009165"))
        self.assertEqual(cost["savings_pct"], "64.32")
        self.assertEqual(cost["realised"], "0.005085000000")  # fixed-point, 12 places
        org = self.data(self.admin_a)["cost"]
        self.assertEqual(Decimal(org["realised"]), Decimal("0.006585"))
        self.assertEqual(Decimal(org["all_strong"]), Decimal("0.03925"))

    def test_quality_retained_with_n_and_interval(self):
        q = self.data(self.lead_a)["quality"]
        # chosen (threshold 0.5): 1.0, 0.8, 0.0, 0.9 over strong 1.0, 0.8, 1.0, 0.9
        self.assertEqual(q["n"], 4)
        self.assertEqual(q["retained"], round(0.675 / 0.925, 4))
        self.assertLessEqual(q["low"], q["retained"])
        self.assertGreaterEqual(q["high"], q["retained"])
        self.assertEqual(q["strong_quality"], 0.925)
        self.assertEqual(self.data(self.admin_a)["quality"]["n"], 5)

    def test_bootstrap_is_seeded_and_exact_when_every_pair_agrees(self):
        a = quality_retained([0.5, 1.0, 0.2], [1.0, 1.0, 0.4])
        self.assertEqual(a, quality_retained([0.5, 1.0, 0.2], [1.0, 1.0, 0.4]))
        same = quality_retained([1.0] * 5, [1.0] * 5)
        self.assertEqual((same["retained"], same["low"], same["high"]), (1.0, 1.0, 1.0))
        self.assertIsNone(quality_retained([], [])["retained"])

    def test_curve_is_computed_live_without_a_trained_model(self):
        curve = self.data(self.lead_a)["curve"]
        self.assertEqual(curve["source"], "live")
        self.assertEqual(curve["n"], 4)
        self.assertEqual(curve["points"][0][0], 0.0)
        self.assertEqual(curve["points"][-1][:2], [1.0, 1.0])
        self.assertIsNotNone(curve["apgr"])
        self.assertIsNotNone(curve["random_apgr"])

    def test_curve_comes_from_the_active_models_stored_evaluation(self):
        side = {"scorer": "heuristic", "apgr": 0.71, "cpt80": 0.35, "cpt95": 0.6, "auc": 0.8,
                "curve": [[0.0, 0.0, 0.5], [0.5, 0.8, 0.8], [1.0, 1.0, 0.9]]}  # fmt: skip
        RouterModel.objects.create(
            router=self.router,
            weights=b"",
            active=True,
            evaluation={
                "test": 40,
                "current": side,
                "learned": {**side, "apgr": 0.9},
                "random": {"apgr": 0.5},
            },  # fmt: skip
        )
        curve = self.data(self.admin_a)["curve"]
        self.assertEqual((curve["source"], curve["apgr"], curve["cpt80"]), ("stored", 0.71, 0.35))
        self.assertEqual((curve["random_apgr"], curve["n"]), (0.5, 40))

    def test_whatif_grid_runs_from_all_strong_to_all_weak(self):
        whatif = self.data(self.lead_a)["whatif"]
        grid = whatif["grid"]
        self.assertEqual(whatif["scored_calls"], 3)
        self.assertEqual(len(grid), 51)
        first, last = grid[0], grid[-1]
        self.assertEqual((first["threshold"], first["strong_calls"]), (0.0, 3))
        self.assertEqual(first["strong_share_pct"], 100.0)
        self.assertEqual(Decimal(first["cost"]), Decimal("0.01425"))  # every call at strong
        self.assertEqual(first["retained"], 1.0)
        self.assertEqual((last["threshold"], last["strong_calls"]), (1.0, 0))
        self.assertEqual(last["strong_share_pct"], 0.0)
        # every call at 0.15 / 0.60: 1000 + 200, then the weak calls' own cost
        self.assertEqual(Decimal(last["cost"]), Decimal("0.00027") + Decimal("0.000585"))
        self.assertEqual(last["retained"], round(0.475 / 0.925, 4))
        at_half = grid[25]
        self.assertEqual((at_half["threshold"], at_half["strong_calls"]), (0.5, 1))
        self.assertEqual(Decimal(at_half["cost"]), Decimal("0.005085"))
        shares = [p["strong_share_pct"] for p in grid]
        self.assertEqual(shares, sorted(shares, reverse=True))

    def test_evaluation_spend_is_shown_apart(self):
        spend = self.data(self.lead_a)["evaluation_spend"]
        self.assertEqual(spend["calls"], 2)
        self.assertEqual(Decimal(spend["shadow_cost"]), Decimal("0.001"))
        self.assertEqual(Decimal(spend["judge_cost"]), Decimal("0.0002"))
        self.assertEqual(self.data(self.lead_a2)["evaluation_spend"]["calls"], 0)

    # --- the page itself ---

    def test_page_embeds_the_grid_and_a_slider_and_tables_without_js(self):
        response = self.get(self.lead_a)
        self.assertContains(response, 'id="router-data"')
        self.assertContains(response, 'type="range"')
        self.assertContains(response, "js/router_page.js")
        self.assertContains(response, "vendor/plotly/plotly.min.js")
        whatif = response.context["tables"]["whatif"]
        self.assertEqual([r["threshold"] for r in whatif.rows][:3], ["0.00", "0.10", "0.20"])
        self.assertEqual(len(whatif.rows), 11)
        self.assertContains(response, 'data-table="whatif"')
        self.assertContains(response, "0.009165")  # savings, USD at six places

    def test_csv_downloads(self):
        self.client.force_login(self.lead_a)
        for table in ("traffic", "savings", "quality", "curve", "whatif", "evaluation"):
            response = self.client.get(self.url(format="csv", table=table))
            self.assertEqual(response.status_code, 200, table)
            self.assertEqual(response["Content-Type"], "text/csv; charset=utf-8")
        response = self.client.get(self.url(format="csv", table="savings"))
        rows = list(csv.reader(io.StringIO(response.content.decode())))
        self.assertEqual(rows[0][:3], ["Realised (USD)", "All strong (USD)", "Savings (USD)"])
        self.assertEqual(rows[1][:4], ["0.005085", "0.014250", "0.009165", "64.32%"])
        self.assertEqual(self.client.get(self.url(format="csv", table="nope")).status_code, 404)
        self.client.force_login(self.lead_b)
        self.assertEqual(self.client.get(self.url(format="csv", table="savings")).status_code, 404)

    def test_overview_and_home_link_the_router(self):
        self.client.force_login(self.admin_a)
        link = reverse("evaluation:router", args=[self.router.pk])
        overview = self.client.get(reverse("reports:org-overview", args=[self.org_a.pk]))
        self.assertContains(overview, link)
        self.assertNotContains(overview, reverse("evaluation:router", args=[self.router_b.pk]))
        self.client.force_login(self.lead_a)
        self.assertContains(self.client.get(reverse("home")), link)
