"""Shared admission counters: budget spend and leases, rate-limit windows, in-flight counts.

One check-and-take step covers every budget and limit of a call: all fit, or nothing is taken.
With ``REDIS_URL`` it is one Lua script (one round trip, atomic across every gateway process);
without Redis an in-process table does the same for the single process the embedded mode
allows. Money is integer nano-USD (Lua numbers are doubles; 2^53 nano-USD is 9 million USD per
window, far above any budget).

Entries (one per budget window or limit):
- ``budget``: hash {spent, reserved, l:<lease>=amount} + zset of lease expiries. Reservations
  are leases: an expired lease (a crashed process) is released by the next call that looks.
  A cold window is seeded from the ledger (``seed``) so a restart never forgets spend.
- ``rate``: two fixed one-minute buckets weighted into a sliding window (requests or tokens),
  rounded up so that the limit is never exceeded at a minute boundary.
- ``parallel``: a zset of in-flight leases with expiries.
"""

from __future__ import annotations

import math
import time
import uuid
from dataclasses import dataclass, field

import orjson

NANO = 1_000_000_000


@dataclass(slots=True)
class Entry:
    kind: str  # budget | rate | parallel
    key: str
    limit: int  # nano-USD, requests, tokens or calls
    amount: int = 0  # what this call takes (cost estimate, 1 request, prompt tokens)
    blocking: bool = True
    expire_at: int = 0  # unix seconds after which the keys may go
    seed: int | None = None  # budget: spent so far per the ledger, used only if the window is cold
    frac: float = 0.0  # rate: elapsed fraction of the current minute
    ref: object = None  # the caller's object (budget record, limit name)


@dataclass(slots=True)
class Verdict:
    ok: bool
    failed: int = -1  # index of the first entry that did not fit
    # per entry: (used, reserved) as seen at the check (budget: spent/reserved; rate: count)
    seen: list[tuple[int, int]] = field(default_factory=list)


ADMIT_LUA = """
local now = tonumber(ARGV[1])
local lease = ARGV[2]
local lease_exp = tonumber(ARGV[3])
local n = tonumber(ARGV[4])
local marker = KEYS[2 * n + 1]
local done = redis.call('GET', marker)
if done then
  local again = {}
  for v in string.gmatch(done, '[^,]+') do again[#again + 1] = tonumber(v) end
  return again
end
local seen = {}
for i = 1, n do
  local a = 4 + (i - 1) * 7
  local kind = ARGV[a + 1]
  local amount = tonumber(ARGV[a + 2])
  local limit = tonumber(ARGV[a + 3])
  local blocking = ARGV[a + 4] == '1'
  local k1 = KEYS[2 * i - 1]
  local k2 = KEYS[2 * i]
  local used, held = 0, 0
  if kind == 'budget' then
    if ARGV[a + 6] ~= '' and redis.call('EXISTS', k1) == 0 then
      redis.call('HSET', k1, 'spent', ARGV[a + 6], 'reserved', 0)
    end
    local expired = redis.call('ZRANGEBYSCORE', k2, '-inf', now)
    for _, l in ipairs(expired) do
      local amt = tonumber(redis.call('HGET', k1, 'l:' .. l) or '0')
      redis.call('HINCRBY', k1, 'reserved', -amt)
      redis.call('HDEL', k1, 'l:' .. l)
      redis.call('ZREM', k2, l)
    end
    used = tonumber(redis.call('HGET', k1, 'spent') or '0')
    held = tonumber(redis.call('HGET', k1, 'reserved') or '0')
    if blocking and used + held + amount > limit then return {0, i, used, held} end
  elseif kind == 'rate' then
    local frac = tonumber(ARGV[a + 7])
    local prev = tonumber(redis.call('GET', k1) or '0')
    local curr = tonumber(redis.call('GET', k2) or '0')
    used = math.ceil(prev * (1 - frac) + curr)
    if used + amount > limit then return {0, i, used, 0} end
  else
    redis.call('ZREMRANGEBYSCORE', k1, '-inf', now)
    used = redis.call('ZCARD', k1)
    if used + 1 > limit then return {0, i, used, 0} end
  end
  seen[2 * i - 1] = used
  seen[2 * i] = held
end
for i = 1, n do
  local a = 4 + (i - 1) * 7
  local kind = ARGV[a + 1]
  local amount = tonumber(ARGV[a + 2])
  local expire_at = tonumber(ARGV[a + 5])
  local k1 = KEYS[2 * i - 1]
  local k2 = KEYS[2 * i]
  if kind == 'budget' then
    redis.call('HINCRBY', k1, 'reserved', amount)
    redis.call('HSET', k1, 'l:' .. lease, amount)
    redis.call('ZADD', k2, lease_exp, lease)
    redis.call('EXPIREAT', k1, expire_at)
    redis.call('EXPIREAT', k2, expire_at)
  elseif kind == 'rate' then
    redis.call('INCRBY', k2, amount)
    redis.call('EXPIRE', k2, 130)
  else
    redis.call('ZADD', k1, lease_exp, lease)
    redis.call('EXPIRE', k1, 3600)
  end
end
local out = {1, 0}
for i = 1, 2 * n do out[#out + 1] = seen[i] end
local kept = {}
for i = 1, #out do kept[i] = string.format('%.0f', out[i]) end
redis.call('SET', marker, table.concat(kept, ','), 'EX', math.ceil(lease_exp - now) + 1)
local draft = ARGV[4 + 7 * n + 1]
if draft ~= '' then redis.call('HSET', KEYS[2 * n + 2], lease, draft) end
return out
"""

SETTLE_LUA = """
local lease = ARGV[1]
local n = tonumber(ARGV[2])
local marker = KEYS[2 * n + 1]
if redis.call('GET', marker) == 'settled' then return 0 end
redis.call('SET', marker, 'settled', 'EX', 120)
redis.call('HDEL', KEYS[2 * n + 2], lease)
for i = 1, n do
  local a = 2 + (i - 1) * 2
  local kind = ARGV[a + 1]
  local amount = tonumber(ARGV[a + 2])
  local k1 = KEYS[2 * i - 1]
  local k2 = KEYS[2 * i]
  if kind == 'budget' then
    local held = redis.call('HGET', k1, 'l:' .. lease)
    if held then
      redis.call('HINCRBY', k1, 'reserved', -tonumber(held))
      redis.call('HDEL', k1, 'l:' .. lease)
      redis.call('ZREM', k2, lease)
    end
    if amount ~= 0 and redis.call('EXISTS', k1) == 1 then
      redis.call('HINCRBY', k1, 'spent', amount)
    end
  elseif kind == 'rate' then
    if amount ~= 0 then
      redis.call('INCRBY', k2, amount)
      redis.call('EXPIRE', k2, 130)
    end
  else
    redis.call('ZREM', k1, lease)
  end
end
return 1
"""


def rate_keys(key: str, now: float) -> tuple[str, str, float]:
    minute = int(now // 60)
    return f"{key}:{minute - 1}", f"{key}:{minute}", (now % 60) / 60


class RedisCounters:
    """Atomic across processes: one EVALSHA per admission, one per settlement.

    A fail-closed budget refuses every call while Redis cannot answer, so a blip must not look
    like an outage: each step is tried twice (an admission is idempotent per lease, its result
    kept under ``finops:admit:<lease>`` until the lease expires, which its settlement marks
    settled so that a second settlement is a no-op), within ``FINOPS_COUNTERS_TIMEOUT`` seconds
    per try.
    """

    def __init__(self, url: str, *, timeout: float | None = None) -> None:
        import redis.asyncio as aioredis
        from redis.exceptions import ConnectionError as RedisConnectionError
        from redis.exceptions import TimeoutError as RedisTimeoutError

        if timeout is None:
            from django.conf import settings

            timeout = settings.FINOPS_COUNTERS_TIMEOUT
        # A blocking pool: redis-py's default pool raises MaxConnectionsError at once past 100
        # commands in flight (a burst after the loop stalls), which would refuse calls with
        # budget_unavailable while Redis is fine; here a burst waits for a free connection.
        pool = aioredis.BlockingConnectionPool.from_url(
            url,
            max_connections=256,
            timeout=timeout,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
        )
        self.client = aioredis.Redis.from_pool(pool)
        self._transient = (RedisConnectionError, RedisTimeoutError, OSError)
        self.process = uuid.uuid4().hex  # this gateway process, for its calls in flight
        self.inflight_key = f"finops:inflight:{self.process}"
        self._admit = self.client.register_script(ADMIT_LUA)
        self._settle = self.client.register_script(SETTLE_LUA)

    @staticmethod
    def _keys(entry: Entry, now: float) -> tuple[str, str]:
        if entry.kind == "budget":
            return entry.key, entry.key + ":leases"
        if entry.kind == "rate":
            prev, curr, _ = rate_keys(entry.key, now)
            return prev, curr
        return entry.key, entry.key

    async def admit(
        self, entries: list[Entry], *, lease: str, lease_ttl: float, draft: dict | None = None
    ) -> Verdict:
        """Check and take every entry; with a ``draft`` (the row a lost call would leave, see
        ``gateway.leases``) the call is also recorded in flight for this process."""
        now = time.time()
        keys: list[str] = []
        args: list = [now, lease, now + lease_ttl, len(entries)]
        held: list[list] = []
        for e in entries:
            pair = self._keys(e, now)
            keys.extend(pair)
            frac = rate_keys(e.key, now)[2] if e.kind == "rate" else 0
            seed = "" if e.seed is None else e.seed
            args += [e.kind, e.amount, e.limit, int(e.blocking), e.expire_at, seed, frac]
            if e.kind != "rate":
                held.append([e.kind, *pair, str(e.amount)])
        keys += [f"finops:admit:{lease}", self.inflight_key]
        args.append(b"" if draft is None else orjson.dumps({**draft, "held": held}))
        out = await self._twice(self._admit, keys, args)
        if out[0] == 1:
            seen = [(int(out[2 + 2 * i]), int(out[3 + 2 * i])) for i in range(len(entries))]
            return Verdict(ok=True, seen=seen)
        return Verdict(ok=False, failed=int(out[1]) - 1, seen=[(int(out[2]), int(out[3]))])

    async def settle(self, entries: list[Entry], amounts: list[int], *, lease: str) -> None:
        now = time.time()
        keys: list[str] = []
        args: list = [lease, len(entries)]
        for e, amount in zip(entries, amounts, strict=True):
            keys.extend(self._keys(e, now))
            args += [e.kind, amount]
        keys += [f"finops:admit:{lease}", self.inflight_key]
        await self._twice(self._settle, keys, args)

    async def _twice(self, script, keys: list[str], args: list):
        try:
            return await script(keys=keys, args=args)
        except self._transient:
            return await script(keys=keys, args=args)

    async def spent(self, key: str) -> int | None:
        value = await self.client.hget(key, "spent")
        return None if value is None else int(value)

    async def adjust(self, key: str, delta: int) -> None:
        if await self.client.exists(key):
            await self.client.hincrby(key, "spent", delta)

    async def close(self) -> None:
        await self.client.aclose()


@dataclass
class _Window:
    spent: int = 0
    reserved: int = 0
    leases: dict[str, tuple[int, float]] = field(default_factory=dict)  # lease -> (amount, expiry)


class LocalCounters:
    """The same semantics in process, for the embedded single-process mode. The event loop runs
    one admission at a time, so check-and-take needs no further lock."""

    def __init__(self) -> None:
        self.windows: dict[str, _Window] = {}
        self.buckets: dict[str, int] = {}
        self.inflight: dict[str, dict[str, float]] = {}

    def _window(self, entry: Entry, now: float) -> _Window:
        window = self.windows.get(entry.key)
        if window is None:
            window = self.windows[entry.key] = _Window(spent=entry.seed or 0)
        for lease, (amount, expiry) in list(window.leases.items()):
            if expiry <= now:
                window.reserved -= amount
                del window.leases[lease]
        return window

    async def admit(
        self, entries: list[Entry], *, lease: str, lease_ttl: float, draft: dict | None = None
    ) -> Verdict:
        now = time.time()
        seen: list[tuple[int, int]] = []
        for i, e in enumerate(entries):
            if e.kind == "budget":
                w = self._window(e, now)
                used, held = w.spent, w.reserved
                if e.blocking and used + held + e.amount > e.limit:
                    return Verdict(ok=False, failed=i, seen=[(used, held)])
            elif e.kind == "rate":
                prev, curr, frac = rate_keys(e.key, now)
                used, held = (
                    math.ceil(self.buckets.get(prev, 0) * (1 - frac) + self.buckets.get(curr, 0)),
                    0,
                )
                if used + e.amount > e.limit:
                    return Verdict(ok=False, failed=i, seen=[(used, 0)])
            else:
                flights = self.inflight.setdefault(e.key, {})
                for lease_id, expiry in list(flights.items()):
                    if expiry <= now:
                        del flights[lease_id]
                used, held = len(flights), 0
                if used + 1 > e.limit:
                    return Verdict(ok=False, failed=i, seen=[(used, 0)])
            seen.append((used, held))
        for e in entries:
            if e.kind == "budget":
                w = self.windows[e.key]
                w.reserved += e.amount
                w.leases[lease] = (e.amount, now + lease_ttl)
            elif e.kind == "rate":
                _, curr, _ = rate_keys(e.key, now)
                self.buckets[curr] = self.buckets.get(curr, 0) + e.amount
            else:
                self.inflight[e.key][lease] = now + lease_ttl
        self._trim(now)
        return Verdict(ok=True, seen=seen)

    async def settle(self, entries: list[Entry], amounts: list[int], *, lease: str) -> None:
        now = time.time()
        for e, amount in zip(entries, amounts, strict=True):
            if e.kind == "budget":
                w = self.windows.get(e.key)
                if w is None:
                    continue
                held = w.leases.pop(lease, None)
                if held is not None:
                    w.reserved -= held[0]
                w.spent += amount
            elif e.kind == "rate":
                if amount:
                    _, curr, _ = rate_keys(e.key, now)
                    self.buckets[curr] = self.buckets.get(curr, 0) + amount
            else:
                self.inflight.get(e.key, {}).pop(lease, None)

    async def spent(self, key: str) -> int | None:
        window = self.windows.get(key)
        return None if window is None else window.spent

    async def adjust(self, key: str, delta: int) -> None:
        if key in self.windows:
            self.windows[key].spent += delta

    def _trim(self, now: float) -> None:
        if len(self.buckets) > 10_000:
            oldest = int(now // 60) - 2
            for name in [k for k in self.buckets if int(k.rsplit(":", 1)[1]) < oldest]:
                del self.buckets[name]

    async def close(self) -> None:
        return None
