"""Shadow traffic: a share of a router's calls is sent again, in the background, to the model the
router did not choose, so that its answer and its cost can be compared with the served one.

- Decided per call with probability ``Router.shadow_rate`` before the call runs (so the served
  answer is kept when a pair is to be stored), started only after the client's call has completed
  and its response was sent in full: the client never waits for a shadow and never sees one fail.
- The mirror is the same body with streaming off, to the other model only (no fallback), through
  the normal attempt machinery (retries, cooldowns). Its ledger rows are ``shadow=True`` with the
  request id ``<client request id>-s`` (attempt numbers never collide), the same key, team and
  feature, the router's fields and ``router_decision="shadow"``.
- Shadow calls are evaluation spend: they are not admitted against the key's or team's budgets
  and rate limits (the router's ``shadow_rate`` bounds them) and reports show them apart.
- At most ``FINOPS_SHADOW_CONCURRENCY`` run at once per process; beyond that a shadow is skipped
  and counted (``finops_gateway_shadow_skipped_total``). Stopping the runtime waits a bounded
  time for those in flight, so their rows reach the ledger.
- With probability ``Router.pair_sample_rate`` a shadowed call's prompt, both answers, both costs,
  the served side and the router's score are stored as an ``evaluation.EvalPair`` (redacted,
  clipped) by the ledger thread, off the event loop.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from django.conf import settings

from gateway import metrics
from gateway.errors import GatewayError
from gateway.providers.base import CHAT
from gateway.proxy import Call, proxy_json
from gateway.records import ModelRecord, OrgConfig, RouterRecord
from gateway.resolve import Plan
from gateway.runtime import runtime

log = logging.getLogger("gateway.shadow")
_rng = random.Random()  # noqa: S311 - sampling, not security


@dataclass(slots=True)
class ShadowTicket:
    router: RouterRecord
    pair: bool  # store the prompt and both answers


def shadow_decide(config: OrgConfig, call: Call) -> ShadowTicket | None:
    """Whether this call is to be shadowed (drawn before it runs); asks it to keep its answer
    when a pair is to be stored."""
    plan = call.plan
    if not plan.router or call.api != CHAT or runtime.stopping:
        return None
    router = config.routers.get(plan.router)
    if router is None or router.shadow_rate <= 0 or _rng.random() >= router.shadow_rate:
        return None
    pair = router.pair_sample_rate > 0 and _rng.random() < router.pair_sample_rate
    call.capture = pair
    return ShadowTicket(router=router, pair=pair)


def _other(router: RouterRecord, served: ModelRecord | None) -> ModelRecord | None:
    """The router's model that did not answer (None when neither did, e.g. a budget downgrade)."""
    if served is None:
        return None
    if served.name == router.strong.name:
        return router.weak
    if served.name == router.weak.name:
        return router.strong
    return None


def shadow_start(call: Call, ticket: ShadowTicket) -> asyncio.Task | None:
    """Start the mirror of a completed call in the background; never raises."""
    try:
        target = _other(ticket.router, call.served)
        if target is None or runtime.stopping:
            return None
        if len(runtime.shadows) >= settings.FINOPS_SHADOW_CONCURRENCY:
            metrics.SHADOW_SKIPPED.inc()
            return None
        body = dict(call.body)
        body.pop("stream", None)
        body.pop("stream_options", None)
        plan = call.plan
        mirror = Call(
            request_id=f"{call.request_id}-s",
            api=call.api,
            record=call.record,
            labels=call.labels,
            body=body,
            requested=call.requested,
            plan=Plan(
                deployments=[target],
                router=plan.router,
                router_scorer=plan.router_scorer,
                router_threshold=plan.router_threshold,
                router_score=plan.router_score,
                router_decision="shadow",
            ),
            started=datetime.now(UTC),
            t0=time.perf_counter(),
            shadow=True,
            capture=ticket.pair,
        )
        task = asyncio.create_task(_run(call, mirror, ticket), name=f"shadow-{call.request_id}")
    except Exception:  # noqa: BLE001 - a shadow must never fail the client's call
        log.warning("could not start a shadow call for %s", call.request_id, exc_info=True)
        return None
    runtime.shadows.add(task)
    task.add_done_callback(runtime.shadows.discard)
    return task


async def _discard(message) -> None:
    """The shadow's "client": its answer is read from the Call, never sent anywhere."""


async def _run(client: Call, mirror: Call, ticket: ShadowTicket) -> None:
    target = mirror.plan.deployments[0].name
    try:
        await proxy_json(mirror, _discard)
    except GatewayError as exc:
        # the message may quote the upstream; the code says enough
        log.warning("shadow call %s to %s failed (%s)", mirror.request_id, target, exc.code)
        return
    except Exception as exc:  # noqa: BLE001 - logged without the request or its secrets
        log.warning(
            "shadow call %s to %s failed (%s)", mirror.request_id, target, type(exc).__name__
        )
        return
    if ticket.pair and mirror.served is not None and client.served is not None:
        _pair_keep(client, mirror, ticket.router)


def _pair_keep(client: Call, mirror: Call, router: RouterRecord) -> None:
    served = "strong" if client.served.name == router.strong.name else "weak"
    strong, weak = (client, mirror) if served == "strong" else (mirror, client)
    record = client.record
    runtime.ledger.eval_pair(
        {
            "org_id": record.org_id,
            "team_id": record.team_id,
            "key_id": record.key_id,
            "router_id": router.id or None,
            "request_id": client.request_id,
            "messages": client.body.get("messages") or [],
            "router_score": client.plan.router_score,
            "served": served,
            "strong_model": router.strong.name,
            "weak_model": router.weak.name,
            "strong_answer": strong.answer,
            "weak_answer": weak.answer,
            "strong_cost": strong.spent,
            "weak_cost": weak.spent,
            "retention_days": router.pair_retention_days,
            "now": datetime.now(UTC),
        }
    )
