"""Where the response cache keeps its answers: Redis when ``REDIS_URL`` is set, else this
process's memory (the embedded mode runs one gateway process, so nothing is lost by that).

Both are bounded by bytes and evict the least recently used answer first:

- **Redis**: per organisation, a byte budget (``FINOPS_RESPONSE_CACHE_ORG_BYTES``, default
  64 MiB). An answer is ``finops:rc:{<org id>.<created µs>}:e:<sha256>`` (``SET … PX ttl``);
  beside it a sorted set of its answers by last use, a hash of their sizes and the total, all
  updated by one Lua script that evicts from the least recently used end until the total fits
  (the braces put an org's keys in one Redis Cluster slot; the creation time keeps an org of a
  recreated database, whose id repeats, from meeting an old one's answers). An answer that
  expired by its TTL keeps counting until eviction reaches it (it is never read, so it drifts
  to that end): the budget may be under-used, never exceeded. A lookup is one round trip
  (``GET`` and a ``ZADD XX`` touch). Every call is bounded by ``FINOPS_RESPONSE_CACHE_TIMEOUT``
  (default 0.25 s); an error or a timeout is a miss (or a store not made), never an error for
  the client, and for a second afterwards the cache is not tried at all, so an unreachable
  Redis costs no call its timeout.
- **In process**: one LRU over all organisations, ``FINOPS_RESPONSE_CACHE_LOCAL_BYTES``
  (default 64 MiB), with each answer's expiry checked on read.

The settings are read with their defaults here (``getattr``), so none is needed to run.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable

from django.conf import settings

log = logging.getLogger("gateway.response_cache")

MIB = 1024 * 1024
BREAKER_SECONDS = 1.0  # after a Redis error, how long the cache is not tried
INDEX_SLACK_MS = 3_600_000  # the index outlives its newest answer by an hour

STORE_LUA = """
local entry, lru, sizes, total = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local member, value = ARGV[1], ARGV[2]
local ttl, now, budget = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local prefix, keep = ARGV[6], tonumber(ARGV[7])
local size = string.len(value)
if size > budget then return -1 end
local old = tonumber(redis.call('HGET', sizes, member) or '0')
redis.call('SET', entry, value, 'PX', ttl)
redis.call('HSET', sizes, member, size)
redis.call('ZADD', lru, now, member)
local used = redis.call('INCRBY', total, size - old)
local evicted = 0
while used > budget do
  local oldest = redis.call('ZPOPMIN', lru)
  if #oldest == 0 then break end
  local gone = oldest[1]
  local freed = tonumber(redis.call('HGET', sizes, gone) or '0')
  redis.call('HDEL', sizes, gone)
  redis.call('DEL', prefix .. gone)
  used = redis.call('DECRBY', total, freed)
  evicted = evicted + 1
end
for _, k in ipairs({lru, sizes, total}) do
  if redis.call('PTTL', k) < keep then redis.call('PEXPIRE', k, keep) end
end
return evicted
"""


def _setting(name: str, default):
    return getattr(settings, name, default)


class LocalStore:
    """Answers in this process: an LRU bounded by bytes; ``clock`` (seconds) is injectable."""

    def __init__(self, *, max_bytes: int | None = None, clock: Callable[[], float] = time.time):
        self.max_bytes = max_bytes or _setting("FINOPS_RESPONSE_CACHE_LOCAL_BYTES", 64 * MIB)
        self.clock = clock
        self.bytes = 0
        self._entries: OrderedDict[tuple[str, str], tuple[bytes, float]] = OrderedDict()

    async def get(self, space: str, digest: str) -> bytes | None:
        key = (space, digest)
        found = self._entries.get(key)
        if found is None:
            return None
        data, expires = found
        if expires <= self.clock():
            self._drop(key)
            return None
        self._entries.move_to_end(key)
        return data

    async def put(self, space: str, digest: str, data: bytes, ttl_seconds: int) -> bool:
        if len(data) > self.max_bytes:
            return False
        key = (space, digest)
        self._drop(key)
        self._entries[key] = (data, self.clock() + ttl_seconds)
        self.bytes += len(data)
        while self.bytes > self.max_bytes:
            self._drop(next(iter(self._entries)))
        return True

    def _drop(self, key) -> None:
        found = self._entries.pop(key, None)
        if found is not None:
            self.bytes -= len(found[0])

    def __len__(self) -> int:
        return len(self._entries)


class RedisStore:
    """Answers in Redis, per organisation within a byte budget (see the module docstring)."""

    def __init__(
        self,
        url: str,
        *,
        org_bytes: int | None = None,
        timeout: float | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.url = url
        self.org_bytes = org_bytes or _setting("FINOPS_RESPONSE_CACHE_ORG_BYTES", 64 * MIB)
        self.timeout = timeout or _setting("FINOPS_RESPONSE_CACHE_TIMEOUT", 0.25)
        self.clock = clock
        self._client = None
        self._script = None
        self._loop = None
        self._down_until = 0.0
        self._warned = 0.0

    @staticmethod
    def keys(space: str, digest: str) -> tuple[str, str, str, str, str]:
        """(entry, lru index, sizes, total, entry prefix) of one org's answer."""
        base = f"finops:rc:{{{space}}}:"
        return f"{base}e:{digest}", f"{base}lru", f"{base}sizes", f"{base}bytes", f"{base}e:"

    def _redis(self):
        """The client of the running event loop (a redis.asyncio connection is bound to the
        loop it was made on)."""
        loop = asyncio.get_running_loop()
        if self._client is None or self._loop is not loop:
            import redis.asyncio as aioredis

            self._client = aioredis.Redis.from_url(
                self.url, socket_timeout=self.timeout, socket_connect_timeout=self.timeout
            )
            self._script = self._client.register_script(STORE_LUA)
            self._loop = loop
        return self._client

    def _usable(self) -> bool:
        return time.monotonic() >= self._down_until

    def _failed(self, exc: BaseException, what: str) -> None:
        self._down_until = time.monotonic() + BREAKER_SECONDS
        if time.monotonic() - self._warned > 60:  # one line a minute, not one per call
            self._warned = time.monotonic()
            log.warning("response cache %s failed (%s): served as a miss", what, type(exc).__name__)

    async def get(self, space: str, digest: str) -> bytes | None:
        if not self._usable():
            raise CacheUnavailable
        entry, lru, *_ = self.keys(space, digest)
        try:
            async with asyncio.timeout(self.timeout):
                pipe = self._redis().pipeline(transaction=False)
                pipe.get(entry)
                pipe.zadd(lru, {digest: int(self.clock() * 1000)}, xx=True)
                data, _ = await pipe.execute()
        except Exception as exc:  # noqa: BLE001 - Redis down or slow: a miss, never an error
            self._failed(exc, "lookup")
            raise CacheUnavailable from exc
        return data

    async def put(self, space: str, digest: str, data: bytes, ttl_seconds: int) -> bool:
        if not self._usable():
            return False
        entry, lru, sizes, total, prefix = self.keys(space, digest)
        ttl_ms = ttl_seconds * 1000
        try:
            async with asyncio.timeout(self.timeout):
                self._redis()
                evicted = await self._script(
                    keys=[entry, lru, sizes, total],
                    args=[
                        digest,
                        data,
                        ttl_ms,
                        int(self.clock() * 1000),
                        self.org_bytes,
                        prefix,
                        ttl_ms + INDEX_SLACK_MS,
                    ],
                )
        except Exception as exc:  # noqa: BLE001 - the answer is simply not kept
            self._failed(exc, "store")
            return False
        return int(evicted) >= 0


class CacheUnavailable(Exception):  # noqa: N818 - a state, not a programming error
    """The store could not be asked (Redis down or slow): the call goes upstream."""


_store: LocalStore | RedisStore | None = None


def store() -> LocalStore | RedisStore:
    """This process's store, made on first use."""
    global _store
    if _store is None:
        url = settings.REDIS_URL
        _store = RedisStore(url) if url else LocalStore()
    return _store


def store_use(replacement: LocalStore | RedisStore | None) -> None:
    """Replace this process's store (tests and benchmarks; ``None``: made again on next use)."""
    global _store
    _store = replacement
