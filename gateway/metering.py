"""Usage -> cost -> one ledger event per upstream attempt."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal

from gateway import billable, savings
from gateway.pricing import Cost, Usage, cost_of, price_at
from gateway.records import ModelRecord
from gateway.runtime import runtime
from gateway.tokens import count_text


def usage_columns(usage: Usage, cost: Cost) -> dict:
    """The ledger's token and cost columns of one attempt (the gateway's and the judge's)."""
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.output,
        "cached_tokens": usage.cached_input,
        "cache_write_tokens": usage.cache_write,
        "input_cost": cost.input,
        "cached_input_cost": cost.cached_input,
        "cache_write_cost": cost.cache_write,
        "output_cost": cost.output,
        "cost": cost.total,
        "estimated": usage.estimated,
    }


def estimate_usage(*, api: str, body: dict, model: ModelRecord, completion_text: str) -> Usage:
    """Counts for an upstream that reported none: the prompt's upper bound from
    ``gateway.billable`` (tiktoken where the family is known, UTF-8 bytes otherwise), the
    completion's text as it arrived. The event is marked estimated."""
    prompt = billable.prompt_tokens(api, body, model, bound=True)
    if api == "embeddings":
        return Usage(uncached_input=prompt, estimated=True)
    completion = (
        count_text(completion_text, model=model.upstream_model)[0] if completion_text else 0
    )
    return Usage(uncached_input=prompt, output=completion, estimated=True)


def price_usage(model: ModelRecord, usage: Usage, when: datetime) -> Cost:
    """Priced at the rate in force when the call started (a price change never rewrites history)."""
    return cost_of(usage, price_at(model.prices, when))


def exceeds_bound(call, model: ModelRecord | None, usage: Usage) -> bool:
    """Whether the upstream billed more than the request allowed.

    Against admission's bound (``call.plan.bounds``) when it was computed; otherwise the output
    alone (``n`` choices at the cap the gateway sent), which needs no token count on the hot
    path. The ledger keeps what was billed; the flag makes it visible and cools the deployment.
    """
    if model is None or usage.estimated:
        return False
    limit = call.plan.bounds.get(model.name)
    if limit is not None:
        return usage.prompt_tokens > limit.prompt or usage.output > limit.output
    if call.api == "embeddings":
        return False
    return usage.output > billable.output_cap(call.body, model) * billable.choices(call.body)


def event(
    call,
    *,
    model: ModelRecord | None,
    attempt: int,
    status: str,
    started: datetime,
    ended: datetime,
    latency_ms: int,
    http_status: int | None = None,
    error_code: str = "",
    usage: Usage | None = None,
    cost: Cost | None = None,
    first_byte: datetime | None = None,
    streamed: bool = False,
) -> dict:
    usage = usage or Usage()
    cost = cost or Cost()
    call.prompt_tokens += usage.prompt_tokens
    call.completion_tokens += usage.output
    record = call.record
    plan = call.plan
    # what a lever (router, downgrade, fallback) saved: on the successful attempt only
    saved, lever = (
        savings.saving(call, model, usage, cost, configs=runtime.configs)
        if status == "ok" and model is not None and not call.shadow
        else savings.NONE
    )
    return {
        "event_id": uuid.uuid4(),
        "request_id": call.request_id,
        "attempt": attempt,
        "started_at": started,
        "first_byte_at": first_byte,
        "ended_at": ended,
        "org_id": record.org_id,
        "team_id": record.team_id,
        "key_id": record.key_id,
        "feature": call.labels.feature,
        "endpoint": call.labels.endpoint,
        "end_user": call.labels.end_user,
        "api": call.client_api,
        "requested_model": call.requested[:200],
        "model": model.name if model else "",
        "upstream_model": model.upstream_model if model else "",
        "provider": model.provider.slug if model else "",
        "status": status,
        "http_status": http_status,
        "error_code": error_code,
        **usage_columns(usage, cost),
        "latency_ms": max(0, latency_ms),
        "streamed": streamed,
        "router": plan.router,
        "router_scorer": plan.router_scorer,
        "router_score": plan.router_score,
        "router_threshold": plan.router_threshold,
        "router_decision": plan.router_decision,
        "shadow": call.shadow,
        "usage_exceeded_bound": exceeds_bound(call, model, usage),
        "experiment": call.experiment,
        "experiment_arm": call.experiment_arm,
        "budget_action": call.budget_action,
        "translated": call.translated,
        "saved_usd": saved,
        "saving_lever": lever,
    }


ZERO = Decimal(0)
