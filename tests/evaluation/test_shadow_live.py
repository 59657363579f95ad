"""Shadow traffic over real HTTP: a router with ``shadow_rate=1`` mirrors each call, after the
client has its answer, to the model it did not choose. The mirror never changes or delays the
client's response (a 3 s upstream, a failing upstream), is metered as ``shadow`` rows with the
request id ``<id>-s``, shows as evaluation spend in ``/api/v1/spend/``, and stores a redacted
prompt/answer pair when sampled."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from rest_framework.test import APIClient

from evaluation.models import EvalPair
from gateway.models import UsageEvent
from reports.services.rollup import usage_rollup
from teams.models import Role
from tests import factories as f
from tests.evaluation.live_eval import HARD, client, farm_model, rows_settled, shadow_router

pytestmark = pytest.mark.live


def test_a_slow_shadow_never_delays_the_client(live):
    slow = farm_model(live, "slow")  # 3 s upstream latency (the live gateway times out at 1.0)
    model = shadow_router(live, strong="gpt-4o-mini", weak=slow.name)
    raw = client(live).chat.completions.with_raw_response.create(
        model=model, messages=HARD, max_tokens=8
    )
    answered = datetime.now(UTC)
    assert raw.headers["x-finops-model"] == "gpt-4o-mini"
    assert raw.headers["x-finops-router-decision"] == "strong"
    assert raw.parse().choices[0].message.content
    request_id = raw.headers["x-request-id"]
    [row] = live.events(request_id)
    assert (row.shadow, row.status, row.model) == (False, "ok", "gpt-4o-mini")
    shadows = rows_settled(live, f"{request_id}-s")
    assert shadows, "the shadow call left no ledger row"
    assert all(s.shadow and s.model == slow.name for s in shadows)
    assert all(s.router_decision == "shadow" and s.router == row.router for s in shadows)
    assert all((s.key_id, s.team_id, s.feature) == (row.key_id, row.team_id, row.feature)
               for s in shadows)  # fmt: skip
    # it started only once the client had its answer, and ended after the client's row
    assert min(s.started_at for s in shadows) >= row.ended_at
    assert min(s.ended_at for s in shadows) > answered
    assert row.ended_at < answered


def test_a_failing_shadow_leaves_the_clients_answer_intact(live):
    failing = farm_model(live, "failing")  # every answer 503
    model = shadow_router(live, strong="gpt-4o-mini", weak=failing.name)
    for stream in (False, True):
        if stream:
            with client(live).chat.completions.with_streaming_response.create(
                model=model, messages=HARD, max_tokens=8, stream=True
            ) as response:
                assert response.headers["x-finops-model"] == "gpt-4o-mini"
                text = "".join(
                    c.choices[0].delta.content or "" for c in response.parse() if c.choices
                )
                request_id = response.headers["x-request-id"]
        else:
            raw = client(live).chat.completions.with_raw_response.create(
                model=model, messages=HARD, max_tokens=8
            )
            assert raw.status_code == 200
            text = raw.parse().choices[0].message.content
            request_id = raw.headers["x-request-id"]
        assert text
        shadows = rows_settled(live, f"{request_id}-s")
        assert shadows and all(s.shadow and s.status == "error" for s in shadows)
        assert all(not s.streamed and s.http_status == 503 for s in shadows)
        [row] = live.events(request_id)
        assert (row.status, row.shadow, row.streamed) == ("ok", False, stream)


def test_shadow_cost_is_evaluation_spend_not_production(live):
    model = shadow_router(live, strong="gpt-4o", weak="gpt-4o-mini")
    suffix = uuid.uuid4().hex[:8]
    feature = f"shadow-spend-{suffix}"
    with live.blocker.unblock():
        minted = f.make_key(live.team, f"shadow-spend-{suffix}")
        admin = f.make_user()
        f.make_member(admin, live.org, Role.ADMIN)
    ids = []
    for _ in range(3):
        raw = client(live, minted.secret).chat.completions.with_raw_response.create(
            model=model, messages=HARD, max_tokens=8, extra_headers={"x-finops-feature": feature}
        )
        assert raw.headers["x-finops-model"] == "gpt-4o"
        ids.append(raw.headers["x-request-id"])
    shadows = [r for rid in ids for r in rows_settled(live, f"{rid}-s")]
    served = [r for rid in ids for r in live.events(rid)]
    assert len(shadows) == 3 and {s.model for s in shadows} == {"gpt-4o-mini"}
    eval_cost = sum((s.cost for s in shadows), Decimal(0))
    prod_cost = sum((r.cost for r in served), Decimal(0))
    assert eval_cost > 0 and prod_cost > 0
    with live.blocker.unblock():
        usage_rollup()
        api = APIClient()
        api.force_authenticate(admin)

        def spend(**params) -> dict:
            response = api.get("/api/v1/spend/", {"group_by": "feature", **params})
            assert response.status_code == 200, response.content
            [row] = [r for r in response.json()["rows"] if r["feature"] == feature]
            return row

        plain = spend()
        with_eval = spend(include_evaluation=1)
    assert Decimal(plain["cost"]) == prod_cost
    assert Decimal(plain["evaluation_cost"]) == eval_cost
    assert plain["requests"] == 3
    assert Decimal(with_eval["cost"]) == prod_cost + eval_cost


def test_sampled_shadowed_calls_store_redacted_pairs(live):
    model = shadow_router(
        live, strong="gpt-4o", weak="gpt-4o-mini", pair_sample_rate=1.0, pair_retention_days=3
    )
    secret = "mail carol@example.com"
    messages = [{"role": "user", "content": f"{HARD[0]['content']} Then {secret}."}]
    ids = {}
    raw = client(live).chat.completions.with_raw_response.create(
        model=model, messages=messages, max_tokens=8
    )
    ids[raw.headers["x-request-id"]] = raw.parse().choices[0].message.content
    with client(live).chat.completions.with_streaming_response.create(
        model=model, messages=messages, max_tokens=8, stream=True
    ) as response:
        text = "".join(c.choices[0].delta.content or "" for c in response.parse() if c.choices)
        ids[response.headers["x-request-id"]] = text
    for request_id, answer in ids.items():
        [strong_row] = live.events(request_id)
        [weak_row] = rows_settled(live, f"{request_id}-s")
        deadline = time.monotonic() + 10  # pairs are written with the ledger's side effects
        with live.blocker.unblock():
            pairs = EvalPair.objects.select_related("router").filter(request_id=request_id)
            while (pair := pairs.first()) is None:
                assert time.monotonic() < deadline, "no pair was stored"
                time.sleep(0.2)
        assert (pair.served, pair.strong_model, pair.weak_model) == (
            "strong",
            "gpt-4o",
            "gpt-4o-mini",
        )
        assert pair.strong_answer == answer and pair.weak_answer
        assert (pair.strong_cost, pair.weak_cost) == (strong_row.cost, weak_row.cost)
        assert pair.router.name == model.removeprefix("router:")
        assert pair.router_score == strong_row.router_score
        assert "carol@example.com" not in str(pair.messages) and "[REDACTED]" in str(pair.messages)
        assert pair.key_id == live.key.pk and pair.team_id == live.team.pk
        assert 2.9 < (pair.expires_at - pair.created_at).days + 0.5 < 3.6


def test_shadow_is_not_drawn_at_rate_zero(live):
    model = shadow_router(live, strong="gpt-4o", weak="gpt-4o-mini", shadow_rate=0.0)
    raw = client(live).chat.completions.with_raw_response.create(
        model=model, messages=HARD, max_tokens=8
    )
    request_id = raw.headers["x-request-id"]
    live.events(request_id)
    time.sleep(1.5)  # two ledger flushes: a shadow would have landed by now
    with live.blocker.unblock():
        assert not UsageEvent.objects.filter(request_id=f"{request_id}-s").exists()
