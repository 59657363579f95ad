"""Ledger rows for reporting tests: one explicit helper, sensible defaults, Decimal costs."""

from __future__ import annotations

import itertools
import random
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from django.db import connection
from django.utils import timezone

from gateway.models import UsageEvent

_seq = itertools.count(1)
MTOK = Decimal(1_000_000)


def event(
    *,
    org,
    team=None,
    key_id: int | None = None,
    feature: str = "",
    endpoint: str = "",
    end_user: str = "",
    model: str = "gpt-4o-mini",
    provider: str = "sim",
    status: str = "ok",
    started_at: datetime | None = None,
    prompt_tokens: int = 100,
    completion_tokens: int = 20,
    cached_tokens: int = 0,
    cache_write_tokens: int = 0,
    input_cost: str | Decimal = "0.000015",
    output_cost: str | Decimal = "0.000012",
    cached_input_cost: str | Decimal = "0",
    cache_write_cost: str | Decimal = "0",
    latency_ms: int = 120,
    shadow: bool = False,
    attempt: int = 1,
    request_id: str | None = None,
    inserted_at: datetime | None = None,
    save: bool = True,
    **extra,
) -> UsageEvent:
    """One ledger row; ``cost`` is the sum of its directions, as the gateway writes it.
    ``extra``: any other ``UsageEvent`` field (router, router_score, experiment, ...)."""
    started_at = started_at or timezone.now()
    costs = [
        Decimal(str(c)) for c in (input_cost, cached_input_cost, cache_write_cost, output_cost)
    ]
    row = UsageEvent(
        request_id=request_id or f"req-{next(_seq)}-{uuid.uuid4().hex[:8]}",
        attempt=attempt,
        started_at=started_at,
        ended_at=started_at + timedelta(milliseconds=latency_ms),
        org_id=org.pk,
        team_id=team.pk if team is not None else None,
        key_id=key_id,
        feature=feature,
        endpoint=endpoint,
        end_user=end_user,
        model=model,
        provider=provider,
        status=status,
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        cached_tokens=cached_tokens,
        cache_write_tokens=cache_write_tokens,
        input_cost=costs[0],
        cached_input_cost=costs[1],
        cache_write_cost=costs[2],
        output_cost=costs[3],
        cost=sum(costs),
        latency_ms=latency_ms,
        shadow=shadow,
        inserted_at=inserted_at or timezone.now(),
        **extra,
    )
    if save:
        row.save()
    return row


def random_events(
    rng: random.Random,
    n: int,
    *,
    orgs: list[tuple],
    start: datetime,
    span: timedelta,
) -> list[UsageEvent]:
    """``n`` unsaved rows spread over ``span`` from ``start``; ``orgs`` is a list of
    ``(org, [teams], [features], key_ids)``. Costs have 12 decimal places, like real prices."""
    rows = []
    for _ in range(n):
        org, teams, features, key_ids = rng.choice(orgs)
        team = rng.choice(teams)
        prompt, completion = rng.randint(1, 5000), rng.randint(0, 2000)
        price_in = Decimal(rng.choice(["0.15", "2.50", "3.00", "0.02"]))
        price_out = Decimal(rng.choice(["0.60", "10.00", "15.00", "0"]))
        status = rng.choices(["ok", "error", "client_abort"], weights=[90, 7, 3])[0]
        rows.append(
            event(
                org=org,
                team=team if rng.random() > 0.05 else None,
                key_id=rng.choice(key_ids) if key_ids else None,
                feature=rng.choice(features),
                endpoint=rng.choice(["", "/search", "/summary", "/chat"]),
                end_user=rng.choice(["", "alice", "bob", "carol"]),
                model=rng.choice(["gpt-4o", "gpt-4o-mini", "claude-sonnet"]),
                provider=rng.choice(["sim", "sim-claude"]),
                status=status,
                started_at=start + timedelta(seconds=rng.uniform(0, span.total_seconds())),
                prompt_tokens=prompt,
                completion_tokens=completion,
                input_cost=price_in * prompt / MTOK,
                output_cost=(price_out * completion / MTOK) if status == "ok" else Decimal(0),
                latency_ms=rng.choice([30, 80, 200, 450, 900, 2000, 4000, 9000, 90000]),
                shadow=rng.random() < 0.1,
                attempt=rng.choice([1, 1, 1, 2]),
                save=False,
            )
        )
    return rows


def save_all(rows: list[UsageEvent]) -> list[UsageEvent]:
    UsageEvent.objects.bulk_create(rows, batch_size=500)
    return rows


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


def is_postgres() -> bool:
    return connection.vendor == "postgresql"
