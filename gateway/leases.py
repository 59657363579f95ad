"""Calls in flight outlive the process that made them: short leases, renewed while alive, claimed
by any live gateway when their process dies.

A gateway killed with SIGKILL (an OOM kill, a container evicted with its disk) leaves calls it
had sent upstream that the provider will bill but the ledger never hears of, and reservations
that keep holding budget. With Redis, every admitted call is recorded in its process's in-flight
hash (``finops:inflight:<process>``, written by the admission script itself: no extra round
trip) with the row it would leave if lost; the settlement removes it. Each process:

- heartbeats into ``finops:gateways:<cluster>`` (a zset: process -> last beat) and renews the
  expiry of its own leases every ``FINOPS_LEASE_RENEW_SECONDS``, so a lease can be short
  (``FINOPS_LEASE_SECONDS``) and a dead process's reservations stop holding budget soon;
- claims, atomically, the in-flight calls of any process whose heartbeat is older than
  ``FINOPS_GATEWAY_DEAD_SECONDS``: their reservations are released, their upper bound is added to
  each budget's spend, and each becomes a ledger row with status ``lost``, cost = that upper
  bound, marked estimated (the provider's invoice, reconciled later, says what it really was).

A call that had already answered its client when its process died (its row written, the
settlement not yet) is not claimed again: calls with an ``ok`` or ``client_abort`` row in the
ledger are skipped (``completed_requests``).

No Celery worker is needed: the promise holds with gateways alone, and a fresh process started
after every other died claims the dead ones at start. A process frozen longer than the dead
threshold is treated as dead; its calls that finish afterwards are metered as well (the ledger
then holds both the estimate and the actual row, an overstatement by design, never an omission).
"""

from __future__ import annotations

import hashlib
import logging
import time
import uuid
from datetime import UTC, datetime
from decimal import Decimal

import orjson
from django.conf import settings

log = logging.getLogger(__name__)


def gateways_key() -> str:
    """The peers' heartbeat zset: gateways that share one ledger (``FINOPS_GATEWAY_CLUSTER``, by
    default the database's identity), so a gateway never meters calls into another ledger."""
    cluster = settings.FINOPS_GATEWAY_CLUSTER
    if not cluster:
        db = settings.DATABASES["default"]
        identity = f"{db.get('HOST') or ''}:{db.get('PORT') or ''}/{db.get('NAME')}"
        cluster = hashlib.sha256(identity.encode()).hexdigest()[:16]
    return f"finops:gateways:{cluster}"


LOST_NAMESPACE = uuid.UUID("0f7f9d3e-5b0c-4c7e-9a59-6c1b1f3c2a10")

RENEW_LUA = """
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
local all = redis.call('HGETALL', KEYS[2])
for i = 1, #all, 2 do
  local held = cjson.decode(all[i + 1]).held
  for _, e in ipairs(held) do
    if e[1] == 'budget' then
      redis.call('ZADD', e[3], 'XX', ARGV[3], all[i])
    else
      redis.call('ZADD', e[2], 'XX', ARGV[3], all[i])
    end
  end
end
return #all / 2
"""

CLAIM_LUA = """
local beat = redis.call('ZSCORE', KEYS[1], ARGV[1])
if beat and tonumber(beat) > tonumber(ARGV[2]) then return {} end
local all = redis.call('HGETALL', KEYS[2])
redis.call('DEL', KEYS[2])
redis.call('ZREM', KEYS[1], ARGV[1])
for i = 1, #all, 2 do
  local lease = all[i]
  for _, e in ipairs(cjson.decode(all[i + 1]).held) do
    if e[1] == 'budget' then
      local held = redis.call('HGET', e[2], 'l:' .. lease)
      if held then
        redis.call('HINCRBY', e[2], 'reserved', -tonumber(held))
        redis.call('HDEL', e[2], 'l:' .. lease)
      end
      redis.call('ZREM', e[3], lease)
      if redis.call('EXISTS', e[2]) == 1 then redis.call('HINCRBY', e[2], 'spent', e[4]) end
    else
      redis.call('ZREM', e[2], lease)
    end
  end
end
return all
"""


def lost_draft(call) -> dict:
    """The ledger row ``call`` leaves if its process dies before it ends (cost and prompt tokens
    are the admission's upper bound, added by the admitter)."""
    record, labels = call.record, call.labels
    first = call.plan.deployments[0] if call.plan.deployments else None
    return {
        "request_id": call.request_id,
        "started_at": call.started.isoformat(),
        "org_id": record.org_id,
        "team_id": record.team_id,
        "key_id": record.key_id,
        "feature": labels.feature,
        "endpoint": labels.endpoint,
        "end_user": labels.end_user,
        "api": call.client_api,
        "requested_model": call.requested[:200],
        "model": first.name if first else "",
        "upstream_model": first.upstream_model if first else "",
        "provider": first.provider.slug if first else "",
        "streamed": bool(call.body.get("stream")),
    }


_DRAFT_FIELDS = (
    "request_id",
    "org_id",
    "team_id",
    "key_id",
    "feature",
    "endpoint",
    "end_user",
    "api",
    "requested_model",
    "model",
    "upstream_model",
    "provider",
    "streamed",
)


def lost_event(lease: str, draft: dict, now: datetime) -> dict:
    """The ledger row of a call whose process died: one per request, its id derived from the
    lease so that two claims (or a replay) can never count it twice."""
    started = datetime.fromisoformat(draft["started_at"])
    cost = Decimal(draft.get("cost") or "0")
    return {
        **{name: draft.get(name) for name in _DRAFT_FIELDS},
        "event_id": uuid.uuid5(LOST_NAMESPACE, lease),
        "attempt": 1,
        "started_at": started,
        "first_byte_at": None,
        "ended_at": now,
        "status": "lost",
        "http_status": None,
        "error_code": "gateway_lost",
        "prompt_tokens": int(draft.get("prompt") or 0),
        "completion_tokens": 0,
        "cached_tokens": 0,
        "cache_write_tokens": 0,
        "input_cost": Decimal(0),
        "cached_input_cost": Decimal(0),
        "cache_write_cost": Decimal(0),
        "output_cost": Decimal(0),
        "cost": cost,
        "latency_ms": max(0, int((now - started).total_seconds() * 1000)),
        "estimated": True,
        "router": "",
        "router_scorer": "",
        "router_score": None,
        "router_threshold": None,
        "router_decision": "",
        "shadow": False,
        "usage_exceeded_bound": False,
        "experiment": "",
        "experiment_arm": "",
        "budget_action": "",
        "translated": False,
    }


class LeaseKeeper:
    """One gateway process's side of the promise (see the module docstring)."""

    def __init__(self, counters) -> None:
        self.counters = counters
        client = counters.client
        self._renew = client.register_script(RENEW_LUA)
        self._claim = client.register_script(CLAIM_LUA)
        self.gateways = gateways_key()

    async def renew(self) -> int:
        """Heartbeat, and push this process's leases out by ``FINOPS_LEASE_SECONDS``."""
        now = time.time()
        keys = [self.gateways, self.counters.inflight_key]
        args = [self.counters.process, now, now + settings.FINOPS_LEASE_SECONDS]
        return int(await self._renew(keys=keys, args=args))

    async def claim_dead(self) -> list[dict]:
        """The ledger rows of every dead process's calls in flight (claimed once, atomically)."""
        cutoff = time.time() - settings.FINOPS_GATEWAY_DEAD_SECONDS
        client = self.counters.client
        dead = await client.zrangebyscore(self.gateways, "-inf", cutoff)
        events: list[dict] = []
        now = datetime.now(UTC)
        for raw in dead:
            process = raw.decode() if isinstance(raw, bytes) else raw
            if process == self.counters.process:
                continue
            keys = [self.gateways, f"finops:inflight:{process}"]
            flat = await self._claim(keys=keys, args=[process, cutoff])
            claimed = [
                lost_event(_text(flat[i]), orjson.loads(flat[i + 1]), now)
                for i in range(0, len(flat), 2)
            ]
            if claimed:
                log.warning(
                    "gateway process %s stopped beating: %d calls in flight recorded as lost",
                    process[:12],
                    len(claimed),
                )
            events += claimed
        return events

    async def retire(self) -> None:
        """A clean stop: leave the peers' list, unless calls are still in flight (a shutdown
        that timed out): those stay to be claimed as lost once the heartbeat is old."""
        client = self.counters.client
        if not await client.hlen(self.counters.inflight_key):
            await client.zrem(self.gateways, self.counters.process)


def completed_requests(request_ids: list[str]) -> set[str]:
    """Blocking: which of these requests already have a final row in the ledger."""
    from django.db import close_old_connections

    from gateway.models import UsageEvent

    close_old_connections()
    rows = UsageEvent.objects.filter(
        request_id__in=request_ids, status__in=("ok", "client_abort")
    ).values_list("request_id", flat=True)
    return set(rows)


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else value
