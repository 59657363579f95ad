"""Routing state and policy: how a group orders its members, which deployments are cooling down,
and how long to wait before a retry.

Every deployment (a configured model) has, per process and in memory:

- an in-flight count (``least_busy``), an EWMA of observed latency (``lowest_latency``: total
  time of a JSON answer, time to first byte of a stream; a timeout counts as its full length);
- its health: consecutive failures, and a cooldown. After ``FINOPS_COOLDOWN_FAILURES`` failures
  in a row it is taken out for ``FINOPS_COOLDOWN_SECONDS``; then it is half-open: one call may
  probe it (the others still skip it); a success closes it again, a failure starts a new
  cooldown.

With ``REDIS_URL`` set, every process works on the same picture without paying a Redis round
trip per request: failures and recoveries are written at once by fire-and-forget tasks (one Lua
call each, atomic); the only calls a request waits for are claiming a half-open probe (once per
cooldown) and reading a deployment's health the first time this process routes to it; and
a background task publishes this process's in-flight counts and latencies and reads everyone
else's, and the health of every deployment it knows, every ``FINOPS_ROUTING_SYNC_SECONDS`` (one
round trip). A Redis error never fails a call: the process carries on with its local state and
leaves Redis alone for a few seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import itertools
import logging
import random
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime

import orjson
from django.conf import settings

from gateway import metrics
from gateway.clock import now as clock_now
from gateway.pricing import price_at
from gateway.records import GroupRecord, ModelRecord

log = logging.getLogger("gateway.routing")

EWMA_ALPHA = 0.2  # weight of the newest latency sample
LATENCY_BUFFER = 0.10  # members within 10 % (+1 ms) of the fastest share its traffic
REDIS_BACKOFF_SECONDS = 5.0  # after a Redis error, local state only for this long
HEALTH_TTL_MS = 3_600_000  # an idle deployment's shared health is forgotten after an hour

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"
_ALIASES = {"lowest_latency": "latency", "lowest_cost": "cost", "simple_shuffle": "weighted"}


def setting(name: str, default):
    return getattr(settings, name, default)


def retries_per_deployment() -> int:
    return max(0, int(setting("FINOPS_RETRIES", 1)))


# --- health --------------------------------------------------------------------------------


@dataclass(slots=True)
class Health:
    """A deployment's circuit: closed, open (cooling down) or half-open (one probe allowed).

    Times are wall-clock seconds so that processes can share them.
    """

    fails: int = 0
    cool_until: float = 0.0
    probe_until: float = 0.0
    last_fail: float = 0.0

    def state(self, now: float) -> str:
        if not self.cool_until:
            return CLOSED
        if now < self.cool_until or now < self.probe_until:
            return OPEN
        return HALF_OPEN

    def failed(self, now: float, *, threshold: int, period: float) -> bool:
        """Count a failure; True when it starts a cooldown."""
        self.fails += 1
        self.last_fail = now
        if self.cool_until and now >= self.cool_until:  # half-open: the probe failed
            self.cool_until = now + period
            self.probe_until = 0.0
            return True
        if not self.cool_until and self.fails >= threshold:
            self.cool_until = now + period
            return True
        return False

    def succeeded(self) -> bool:
        """Close the circuit; True when that changed anything."""
        if not (self.fails or self.cool_until or self.probe_until):
            return False
        self.fails = 0
        self.cool_until = 0.0
        self.probe_until = 0.0
        return True

    def claim_probe(self, now: float, ttl: float) -> bool:
        if self.state(now) != HALF_OPEN:
            return False
        self.probe_until = now + ttl
        return True

    def load(self, values) -> None:
        """Take the shared values (fails, cool, probe, last; times in ms) from Redis."""
        fails, cool, probe, last = (int(v or 0) for v in values)
        self.fails = fails
        self.cool_until = cool / 1000
        self.probe_until = probe / 1000
        self.last_fail = last / 1000


@dataclass(slots=True, eq=False)
class Deployment:
    key: str
    name: str
    health: Health = field(default_factory=Health)
    inflight: int = 0
    ewma_ms: float | None = None
    samples: int = 0
    # what the other processes reported at the last sync
    remote_inflight: int = 0
    remote_ewma_ms: float | None = None
    remote_samples: int = 0
    loaded: bool = True  # False until its shared health was read (with Redis, once)

    def needs_admission(self) -> bool:
        """Whether ``Balancer.admit`` has anything to decide (the hot path skips it if not)."""
        return bool(self.health.cool_until) or not self.loaded

    def busy(self) -> int:
        return self.inflight + self.remote_inflight

    def latency_ms(self) -> float | None:
        if self.remote_ewma_ms is None:
            return self.ewma_ms
        if self.ewma_ms is None:
            return self.remote_ewma_ms
        mine, theirs = min(self.samples, 50), min(self.remote_samples, 50)
        total = mine + theirs
        if not total:
            return self.ewma_ms
        return (self.ewma_ms * mine + self.remote_ewma_ms * theirs) / total

    def observe(self, ms: float) -> None:
        self.ewma_ms = (
            ms if self.ewma_ms is None else self.ewma_ms + EWMA_ALPHA * (ms - self.ewma_ms)
        )
        self.samples += 1


def deployment_key(model: ModelRecord) -> str:
    # ``uid`` is the row's id and creation time: unique even across re-created databases that
    # share one Redis (tests), so no stale cooldown is ever inherited by a new deployment
    return model.uid or f"{model.provider.slug}/{model.name}"


# --- retries -------------------------------------------------------------------------------


def backoff_delay(retry: int, retry_after: float | None = None, *, rng=random) -> float | None:
    """Seconds to wait before retry number ``retry`` (1 for the first) of one deployment.

    Exponential (``FINOPS_RETRY_BACKOFF_SECONDS`` x 2^(retry-1), at most
    ``FINOPS_RETRY_BACKOFF_MAX_SECONDS``) with "equal jitter": half of it fixed, half random, so
    retries from many callers spread out. An upstream ``Retry-After`` is honoured as given; when
    it asks for more than ``FINOPS_RETRY_AFTER_MAX_SECONDS`` the answer is None: do not wait,
    move on to the next deployment.
    """
    if retry_after is not None:
        if retry_after > float(setting("FINOPS_RETRY_AFTER_MAX_SECONDS", 5.0)):
            return None
        return max(0.0, retry_after)
    base = float(setting("FINOPS_RETRY_BACKOFF_SECONDS", 0.1))
    cap = float(setting("FINOPS_RETRY_BACKOFF_MAX_SECONDS", 2.0))
    delay = min(cap, base * 2 ** max(0, retry - 1))
    return delay / 2 + rng.uniform(0, delay / 2)


def retry_after_seconds(headers) -> float | None:
    """An upstream's ``retry-after-ms`` (OpenAI) or ``Retry-After`` (seconds or HTTP date)."""
    if headers is None:
        return None
    raw = headers.get("retry-after-ms")
    if raw:
        try:
            return max(0.0, float(raw) / 1000)
        except ValueError:
            pass
    raw = headers.get("retry-after")
    if not raw:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


# --- shared state (Redis) ------------------------------------------------------------------

_PROCS = "finops:route:procs"
_HEALTH = "finops:route:h:"

# KEYS[1]: the process registry; ARGV: process id, now ms, ttl ms, this process's load (JSON),
# the deployment keys it knows (space-separated). Returns one JSON text (cheap to parse, unlike
# hundreds of RESP values): [[other processes' load...], {key: [fails, cool, probe, last]}].
_SYNC = """
local me, now, ttl = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
redis.call('SET', 'finops:route:p:' .. me, ARGV[4], 'PX', ttl)
redis.call('ZADD', KEYS[1], now, me)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - ttl)
redis.call('PEXPIRE', KEYS[1], ttl * 10)
local blobs = {}
for _, p in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  if p ~= me then
    local blob = redis.call('GET', 'finops:route:p:' .. p)
    if blob then blobs[#blobs + 1] = blob end
  end
end
local health, found = {}, false
for key in string.gmatch(ARGV[5], '[^ ]+') do
  local v = redis.call('HMGET', 'finops:route:h:' .. key, 'fails', 'cool', 'probe', 'last')
  if v[1] or v[2] then
    health[key] = {tonumber(v[1]) or 0, tonumber(v[2]) or 0, tonumber(v[3]) or 0,
                   tonumber(v[4]) or 0}
    found = true
  end
end
local encoded = found and cjson.encode(health) or '{}'
return '[[' .. table.concat(blobs, ',') .. '],' .. encoded .. ']'
"""

# KEYS[1]: health; ARGV: now ms, threshold, period ms, ttl ms -> fails, cool, probe, last, started
_FAIL = """
local k, now = KEYS[1], tonumber(ARGV[1])
local fails = redis.call('HINCRBY', k, 'fails', 1)
local cool = tonumber(redis.call('HGET', k, 'cool') or '0')
local probe = tonumber(redis.call('HGET', k, 'probe') or '0')
local started = 0
if cool > 0 and now >= cool then
  cool, probe, started = now + tonumber(ARGV[3]), 0, 1
elseif cool == 0 and fails >= tonumber(ARGV[2]) then
  cool, started = now + tonumber(ARGV[3]), 1
end
redis.call('HSET', k, 'cool', cool, 'probe', probe, 'last', now)
redis.call('PEXPIRE', k, ARGV[4])
return {fails, cool, probe, now, started}
"""

# KEYS[1]: health; ARGV: ttl ms
_OK = """
redis.call('HSET', KEYS[1], 'fails', 0, 'cool', 0, 'probe', 0)
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return 1
"""

# KEYS[1]: health; ARGV: now ms, probe ttl ms -> 1: go (probe claimed, or not cooling), 0: skip
_PROBE = """
local k, now = KEYS[1], tonumber(ARGV[1])
local cool = tonumber(redis.call('HGET', k, 'cool') or '0')
if cool == 0 then return 1 end
local probe = tonumber(redis.call('HGET', k, 'probe') or '0')
if now >= cool and now >= probe then
  redis.call('HSET', k, 'probe', now + tonumber(ARGV[2]))
  return 1
end
return 0
"""


class Balancer:
    """Per-process routing state; ``balancer`` below is the one the gateway uses."""

    def __init__(self, *, rng: random.Random | None = None, clock=clock_now) -> None:
        self.rng = rng or random.Random()  # noqa: S311 - load spreading, not crypto
        self.clock = clock  # wall-clock seconds, shared with the other processes via Redis
        self.deployments: dict[str, Deployment] = {}
        self._round_robin: dict[tuple[int, str], itertools.count] = {}
        self.proc = uuid.uuid4().hex[:16]
        self._redis = None
        self._scripts: dict[str, object] = {}
        self._redis_down_until = 0.0
        self._sync_task: asyncio.Task | None = None
        self._tasks: set[asyncio.Task] = set()

    # --- lifecycle -------------------------------------------------------------------------
    async def start(self, redis_url: str | None = None) -> None:
        if redis_url is None:
            redis_url = settings.REDIS_URL
        if not redis_url or self._redis is not None:
            return
        import redis.asyncio as aioredis

        timeout = float(setting("FINOPS_ROUTING_REDIS_TIMEOUT", 0.2))
        self._redis = aioredis.Redis.from_url(
            redis_url, socket_timeout=timeout, socket_connect_timeout=timeout
        )
        self._scripts = {
            name: self._redis.register_script(source)
            for name, source in (("sync", _SYNC), ("fail", _FAIL), ("ok", _OK), ("probe", _PROBE))
        }
        self._sync_task = asyncio.create_task(self._sync_loop(), name="gateway-routing-sync")

    async def stop(self) -> None:
        if self._sync_task is not None:
            self._sync_task.cancel()
            self._sync_task = None
        for task in list(self._tasks):
            task.cancel()
        if self._redis is not None:
            with contextlib.suppress(Exception):  # closing anyway
                await self._redis.aclose()
            self._redis = None

    # --- state -----------------------------------------------------------------------------
    def get(self, model: ModelRecord) -> Deployment:
        key = deployment_key(model)
        dep = self.deployments.get(key)
        if dep is None:
            dep = Deployment(key=key, name=model.name, loaded=self._redis is None)
            self.deployments[key] = dep
        return dep

    def state(self, model: ModelRecord, now: float | None = None) -> str:
        dep = self.deployments.get(deployment_key(model))
        if dep is None or not dep.health.cool_until:
            return CLOSED
        return dep.health.state(self.clock() if now is None else now)

    def usable(self, model: ModelRecord) -> bool:
        """Not cooling down (a half-open deployment counts as usable: it can be probed)."""
        return self.state(model) != OPEN

    async def admit(self, model: ModelRecord) -> bool:
        """May a call try this deployment now? Claims the probe of a half-open one."""
        dep = self.get(model)
        health = dep.health
        if not dep.loaded:
            # first sight of it in this process: another may be cooling it down already
            dep.loaded = True
            if self._redis_ok():
                try:
                    values = await self._redis.hmget(
                        _HEALTH + dep.key, "fails", "cool", "probe", "last"
                    )
                except Exception as exc:  # noqa: BLE001 - Redis trouble never fails a call
                    self._redis_failed(exc)
                else:
                    if any(v is not None for v in values):
                        health.load(values)
        if not health.cool_until:
            return True
        now = self.clock()
        state = health.state(now)
        if state == OPEN:
            return False
        if state == CLOSED:
            return True
        ttl = self._probe_ttl()
        if self._redis_ok():
            try:
                claimed = await self._scripts["probe"](
                    keys=[_HEALTH + dep.key], args=[int(now * 1000), int(ttl * 1000)]
                )
            except Exception as exc:  # noqa: BLE001 - Redis trouble never fails a call
                self._redis_failed(exc)
            else:
                if claimed:
                    health.probe_until = now + ttl
                    return True
                health.probe_until = max(health.probe_until, now + 1.0)  # someone else probes
                return False
        return health.claim_probe(now, ttl)

    def least_recently_failed(self, models: list[ModelRecord]) -> ModelRecord:
        return min(models, key=lambda m: self.get(m).health.last_fail)

    def begin(self, model: ModelRecord) -> Deployment:
        dep = self.get(model)
        dep.inflight += 1
        return dep

    def end(self, dep: Deployment) -> None:
        dep.inflight = max(0, dep.inflight - 1)

    def succeeded(self, dep: Deployment, seconds: float | None = None) -> None:
        if seconds is not None:
            dep.observe(seconds * 1000)
        if dep.health.succeeded():
            log.info("deployment %s is healthy again", dep.name)
            if self._redis_ok():
                self._spawn(self._write_ok(dep))

    def failed(self, dep: Deployment, seconds: float | None = None) -> None:
        if seconds is not None:
            dep.observe(seconds * 1000)
        now = self.clock()
        threshold = max(1, int(setting("FINOPS_COOLDOWN_FAILURES", 3)))
        period = float(setting("FINOPS_COOLDOWN_SECONDS", 30.0))
        started = dep.health.failed(now, threshold=threshold, period=period)
        if self._redis_ok():
            self._spawn(self._write_fail(dep, now, threshold, period, started))
        elif started:
            self._cooldown_started(dep)

    def misbehaved(self, dep: Deployment) -> None:
        """A deployment that billed past the request's bound cools down at once (no threshold)."""
        now = self.clock()
        period = float(setting("FINOPS_COOLDOWN_SECONDS", 30.0))
        started = dep.health.failed(now, threshold=1, period=period)
        if self._redis_ok():
            self._spawn(self._write_fail(dep, now, 1, period, started))
        elif started:
            self._cooldown_started(dep)

    def _cooldown_started(self, dep: Deployment) -> None:
        metrics.COOLDOWNS.labels(dep.name).inc()
        log.warning(
            "deployment %s cooling down for %.0fs after %d failures in a row",
            dep.name,
            dep.health.cool_until - self.clock(),
            dep.health.fails,
        )

    @staticmethod
    def _probe_ttl() -> float:
        # long enough for the probe's answer to arrive; a lost probe frees itself after this
        return min(float(setting("FINOPS_UPSTREAM_TIMEOUT", 600.0)), 60.0) + 1.0

    # --- strategies ------------------------------------------------------------------------
    def group_order(self, org_id: int, group: GroupRecord) -> list[ModelRecord]:
        """The group's members in the order its strategy prefers, then its fallbacks."""
        ordered = self._members_order(org_id, group) if group.members else []
        seen = {id(m) for m in ordered}
        return ordered + [m for m in group.fallbacks if id(m) not in seen]

    def _members_order(self, org_id: int, group: GroupRecord) -> list[ModelRecord]:
        strategy = _ALIASES.get(group.strategy, group.strategy)
        members = group.members
        if len(members) == 1:
            return [members[0][0]]
        if strategy == "round_robin":
            counter = self._round_robin.setdefault((org_id, group.name), itertools.count())
            start = next(counter) % len(members)
            rotated = members[start:] + members[:start]
            return [m for m, _ in rotated]
        rng = self.rng.random
        # a weighted random order (Efraimidis-Spirakis keys): the first pick follows the
        # weights, and breaks ties between equally good members for the other strategies
        tie = {id(m): -(rng() ** (1.0 / w)) for m, w in members}
        if strategy == "least_busy":
            return [
                m for m, _ in sorted(members, key=lambda p: (self.get(p[0]).busy(), tie[id(p[0])]))
            ]
        if strategy == "latency":
            latencies = {id(m): self.get(m).latency_ms() for m, _ in members}
            known = [v for v in latencies.values() if v is not None]
            # unmeasured members go first (so they get measured), then the fastest
            fastest = min(known) if known else 0.0
            near = fastest * (1 + LATENCY_BUFFER) + 1.0

            def latency_key(pair):
                value = latencies[id(pair[0])]
                if value is None:
                    return (0, 0.0, tie[id(pair[0])])
                return (1, 0.0 if value <= near else value, tie[id(pair[0])])

            return [m for m, _ in sorted(members, key=latency_key)]
        if strategy == "cost":
            now = datetime.now(UTC)

            def cost_key(pair):
                price = price_at(pair[0].prices, now)
                unit = (price.input + price.output) if price is not None else 0
                return (unit, tie[id(pair[0])])

            return [m for m, _ in sorted(members, key=cost_key)]
        return [m for m, _ in sorted(members, key=lambda p: tie[id(p[0])])]  # weighted

    # --- Redis -----------------------------------------------------------------------------
    def _redis_ok(self) -> bool:
        return self._redis is not None and time.monotonic() >= self._redis_down_until

    def _redis_failed(self, exc: BaseException) -> None:
        if time.monotonic() >= self._redis_down_until:
            log.warning(
                "routing state: Redis unavailable (%s); local state for %.0fs",
                type(exc).__name__,
                REDIS_BACKOFF_SECONDS,
            )
        self._redis_down_until = time.monotonic() + REDIS_BACKOFF_SECONDS

    def _spawn(self, coro) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _write_fail(
        self, dep: Deployment, now: float, threshold: int, period: float, started_here: bool
    ) -> None:
        try:
            fails, cool, probe, last, started = await self._scripts["fail"](
                keys=[_HEALTH + dep.key],
                args=[int(now * 1000), threshold, int(period * 1000), HEALTH_TTL_MS],
            )
        except Exception as exc:  # noqa: BLE001 - the local state already counted it
            self._redis_failed(exc)
            if started_here:
                self._cooldown_started(dep)
            return
        dep.health.load((fails, cool, probe, last))
        if started:
            self._cooldown_started(dep)

    async def _write_ok(self, dep: Deployment) -> None:
        try:
            await self._scripts["ok"](keys=[_HEALTH + dep.key], args=[HEALTH_TTL_MS])
        except Exception as exc:  # noqa: BLE001
            self._redis_failed(exc)

    def _snapshot(self) -> bytes:
        return orjson.dumps(
            {
                key: [d.inflight, d.ewma_ms, d.samples]
                for key, d in self.deployments.items()
                if d.inflight or d.samples
            }
        )

    async def sync(self) -> None:
        """Publish this process's load, read everyone else's and the shared health (1 trip)."""
        if not self._redis_ok():
            return
        interval = float(setting("FINOPS_ROUTING_SYNC_SECONDS", 0.5))
        ttl_ms = int(max(interval * 4, 2.0) * 1000)
        known = list(self.deployments)
        try:
            reply = await self._scripts["sync"](
                keys=[_PROCS],
                args=[
                    self.proc,
                    int(self.clock() * 1000),
                    ttl_ms,
                    self._snapshot(),
                    " ".join(known),
                ],
            )
            loads, healths = orjson.loads(reply)
        except Exception as exc:  # noqa: BLE001 - carry on with local state
            self._redis_failed(exc)
            return
        totals: dict[str, list] = {}
        for stats in loads:
            for key, (inflight, ewma, samples) in stats.items():
                entry = totals.setdefault(key, [0, 0.0, 0])
                entry[0] += int(inflight or 0)
                if ewma is not None and samples:
                    weight = min(int(samples), 50)
                    entry[1] += float(ewma) * weight
                    entry[2] += weight
        for key in known:
            dep = self.deployments[key]
            inflight, weighted, weight = totals.get(key, (0, 0.0, 0))
            dep.remote_inflight = inflight
            dep.remote_ewma_ms = weighted / weight if weight else None
            dep.remote_samples = weight
            dep.loaded = True
            values = healths.get(key)
            if values is not None:
                dep.health.load(values)
            elif dep.health.cool_until or dep.health.fails:
                dep.health.succeeded()  # expired, or reset by another process

    async def _sync_loop(self) -> None:
        interval = float(setting("FINOPS_ROUTING_SYNC_SECONDS", 0.5))
        while True:
            await asyncio.sleep(interval)
            try:
                await self.sync()
            except Exception:  # noqa: BLE001 - never let the loop die
                log.exception("routing state sync failed")


balancer = Balancer()


@metrics.scrape_source
def _cooling_gauge():
    """Deployments in cooldown as this process sees them (with Redis-shared routing state,
    every process sees the same ones)."""
    from prometheus_client.core import GaugeMetricFamily

    cooling = GaugeMetricFamily(
        "finops_gateway_models_cooling",
        "Deployments in cooldown (1) as this process sees them.",
        labels=["model"],
    )
    now = balancer.clock()
    for name in sorted(
        {d.name for d in list(balancer.deployments.values()) if d.health.state(now) != CLOSED}
    ):
        cooling.add_metric([name], 1.0)
    yield cooling
