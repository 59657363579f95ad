"""The exact response cache: an answer given once is given again, for nothing, to the same
organisation's identical request.

**Policy.** Opt-in per organisation, team, feature, key or model name (``teams.CachePolicy``,
loaded into ``OrgConfig.cache_policies``). A call takes its most specific policy — key, then
feature, then team, then model (the name the call asked for: model, group or router), then
organisation — and only that one: an ``enabled: false`` policy turns the cache off under a
broader one. No policy, no cost: an org without one pays a dict lookup.

**Which requests qualify.** Chat (in every inbound format) with ``temperature`` 0, or with
the client's ``x-finops-cache: use`` whatever its temperature; embeddings always (they are
deterministic). Never a request that offers tools unless the policy says ``tools``, nor one
whose parameters the chat translation would refuse. ``n`` > 1 is cached like the rest (the key
holds ``n``; the answer all its choices). ``x-finops-cache: skip`` leaves the cache alone;
``Cache-Control: no-cache`` does not read it (the fresh answer is stored), ``no-store`` does not
write it. The response says ``x-finops-cache: hit``, ``miss`` (looked up, not there) or
``bypass`` (a policy applies but the cache was not read).

**The key.** sha256 of the organisation id, the API, the upstream wire (chat, or the client's
format when the first deployment serves it natively, with the client's pass-through headers),
the route as resolved (a model and its upstream name; a group and its members; a router's or
an experiment's chosen model) and the canonical JSON (sorted keys) of the request less what
does not change the answer (``IGNORED``: streaming, the end user, metadata and attribution,
storage flags). So no entry is ever shared across organisations, a stream and a JSON request
share theirs, and a changed upstream model is a new key. Only the route's own model may fill
an entry: an answer from a fallback, or from a budget downgrade, is not stored.

**A hit** answers in the client's format (``gateway.response_cache_replay``) with
``x-finops-cache: hit``, ``x-finops-cost: 0``, ``x-finops-attempts: 0``, ``x-finops-model``,
``x-finops-cache-age`` and ``x-request-id``; nothing goes upstream. It counts against the key's
and team's requests-per-minute (a hit is still a request) but takes no tokens-per-minute, no
parallel slot and no budget reservation (it costs nothing; an exhausted budget still gets its
cached answers). Its ledger row has cost 0, ``cache_hit``, ``saving_lever = "cache"`` and
``saved_usd`` = the stored usage priced at the model's price in force now (exact ``Decimal``),
and **zero tokens**: the ledger's token columns are what a provider billed (invoice
reconciliation and FOCUS compare them with the providers' own figures); the body still carries
the usage the upstream reported.

**Storage**: ``gateway.response_cache_store`` (Redis, or in process; Redis down is a miss).
"""

from __future__ import annotations

import contextlib
import hashlib
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from decimal import Decimal

import orjson

from gateway import metering, metrics
from gateway.http import JSON_HEADERS, SSE_HEADERS, header, send_bytes
from gateway.pricing import Usage
from gateway.providers.base import CHAT, EMBEDDINGS
from gateway.records import CachePolicyRecord, OrgConfig, TeamLimits
from gateway.resolve import Plan
from gateway.response_cache_assemble import ASSEMBLERS, Tap
from gateway.response_cache_replay import (
    entry_usage,
    render_json,
    render_stream,
    renderable,
    usage_vector,
)
from gateway.response_cache_store import CacheUnavailable, store
from gateway.runtime import runtime

# request fields that do not change the answer (attribution, streaming, storage, routing hints)
IGNORED = frozenset(
    {
        "model",
        "stream",
        "stream_options",
        "user",
        "metadata",
        "store",
        "safety_identifier",
        "prompt_cache_key",
        "previous_response_id",
        "service_tier",
    }
)
ENTRY_VERSION = 1
ZERO = Decimal(0)
HIT, MISS, BYPASS = b"hit", b"miss", b"bypass"


@dataclass(slots=True)
class Lookup:
    """What the cache decided for one call (``None`` from ``lookup``: no policy applies)."""

    policy: CachePolicyRecord
    space: str = ""  # the organisation's namespace in the store (OrgConfig.cache_space)
    status: bytes = BYPASS
    read: bool = False
    write: bool = False
    digest: str = ""
    models: frozenset = frozenset()  # the models whose answer may fill this entry
    entry: dict | None = None  # the stored answer, on a hit


def policy_for(config: OrgConfig, call) -> CachePolicyRecord | None:
    """The call's most specific policy (key, feature, team, model, org), when it is enabled."""
    policies = config.cache_policies
    record = call.record
    for target in (
        ("key", record.key_id),
        ("feature", record.team_id, call.labels.feature),
        ("team", record.team_id),
        ("model", call.requested.strip().removeprefix("router:")),
        ("org",),
    ):
        policy = policies.get(target)
        if policy is not None:
            return policy if policy.enabled else None
    return None


def directives(scope) -> tuple[bytes, bool, bool]:
    """(``x-finops-cache``: use | skip | b"", Cache-Control no-cache, no-store)."""
    mode = (header(scope, b"x-finops-cache") or b"").strip().lower()
    control = header(scope, b"cache-control")
    if not control:
        return mode, False, False
    tokens = {part.split(b"=", 1)[0].strip() for part in control.lower().split(b",")}
    return mode, b"no-cache" in tokens, b"no-store" in tokens


def qualifies(call, policy: CachePolicyRecord, *, use: bool) -> bool:
    """Whether the answer is deterministic enough to serve again (see the module docstring)."""
    if call.api == EMBEDDINGS:
        return True
    if call.api != CHAT:
        return False
    body = call.body
    tools = body.get("tools") or body.get("functions") or (call.inbound or {}).get("tools")
    if tools and not policy.tools:
        return False
    if use:
        return True
    temperature = body.get("temperature")
    return (
        isinstance(temperature, int | float)
        and not isinstance(temperature, bool)
        and temperature == 0
    )


def route_of(call, config: OrgConfig) -> tuple[str, frozenset]:
    """(the route as resolved, the models whose answers may fill its entries)."""
    group = config.groups.get(call.requested.strip())
    if group is not None and call.experiment_arm != "candidate":
        members = sorted((m.name, m.upstream_model) for m, _weight in group.members)
        ident = "group:" + group.name + "=" + ",".join(f"{n}/{u}" for n, u in members)
        return ident, frozenset(name for name, _ in members)
    first = call.plan.deployments[0]
    return f"model:{first.name}={first.upstream_model}", frozenset({first.name})


def wire_of(call) -> str:
    """The format the answer comes back in from the first deployment: chat (or embeddings),
    or the client's own when that deployment serves it natively."""
    dialect = call.dialect
    if dialect is not None and call.plan.deployments and dialect.native(call.plan.deployments[0]):
        return dialect.api
    return call.api


def cache_key(call, route: str, wire: str) -> str:
    native = wire not in (CHAT, EMBEDDINGS)
    source = call.inbound if native else call.body
    material = {k: v for k, v in source.items() if k not in IGNORED}
    head = [str(call.record.org_id), call.api, wire, route]
    if native and call.passthrough:
        head.append(orjson.dumps(call.passthrough, option=orjson.OPT_SORT_KEYS).decode())
    digest = hashlib.sha256("\n".join(head).encode() + b"\n")
    digest.update(orjson.dumps(material, option=orjson.OPT_SORT_KEYS))
    return digest.hexdigest()


async def lookup(scope, call, config: OrgConfig) -> Lookup | None:
    """Decide for this call and, when it qualifies, look its answer up."""
    if not config.cache_policies:
        return None
    policy = policy_for(config, call)
    if policy is None:
        return None
    found = Lookup(policy, space=config.cache_space or str(config.org_id))
    mode, no_cache, no_store = directives(scope)
    wire = wire_of(call)
    if mode == b"skip" or not qualifies(call, policy, use=mode == b"use"):
        return found
    if call.unsupported and wire == call.api:
        return found  # the chat translation would refuse the call: nothing to serve for it
    found.read, found.write = not no_cache, not no_store
    route, found.models = route_of(call, config)
    found.digest = cache_key(call, route, wire)
    if not found.read:
        return found
    org = call.record.org_slug
    try:
        data = await store().get(found.space, found.digest)
    except CacheUnavailable:
        metrics.CACHE_LOOKUPS.labels(org, "error").inc()
        data = None
    else:
        entry = _decode(data) if data else None
        if entry is not None and renderable(entry, call):
            found.status, found.entry = HIT, entry
            metrics.CACHE_LOOKUPS.labels(org, "hit").inc()
            return found
        metrics.CACHE_LOOKUPS.labels(org, "miss").inc()
    found.status = MISS
    return found


def _decode(data: bytes) -> dict | None:
    try:
        entry = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(entry, dict) or entry.get("v") != ENTRY_VERSION:
        return None
    return entry


# --- a miss: the answer, kept on its way to the client ----------------------------------------


class Fill:
    """``Call.cache`` while a cacheable call goes upstream: the proxy hands it the answer
    (``json_answer``), or a stream's events through ``tap`` and then ``stream_done``."""

    __slots__ = ("head", "answer", "raw", "_assembler", "_api")

    def __init__(self) -> None:
        self.head: dict | None = None
        self.answer: dict | None = None
        self.raw: bytes | None = None
        self._assembler = None
        self._api = ""

    def _meta(self, api: str, usage: Usage, model) -> dict:
        return {
            "v": ENTRY_VERSION,
            "f": api,
            "u": usage_vector(usage),
            "m": model.name,
            "t": round(time.time(), 3),
        }

    def json_answer(self, api: str, body: bytes, usage: Usage, model) -> None:
        """A 200 JSON answer, as the upstream's format (``body`` is already valid JSON)."""
        if b'"finish_reason":"error"' in body:
            return
        self.head, self.raw = self._meta(api, usage, model), body

    def tap(self, parser, api: str):
        assembler = ASSEMBLERS.get(api)
        if assembler is None:
            return parser
        self._api, self._assembler = api, assembler()
        return Tap(parser, self._assembler)

    def stream_done(self, usage: Usage, model) -> None:
        """The stream ended well (its client stayed); its answer, if it is whole."""
        if self._assembler is not None:
            self.answer = self._assembler.answer()
            if self.answer is not None:
                self.head = self._meta(self._api, usage, model)

    def encoded(self) -> bytes | None:
        if self.head is None:
            return None
        if self.raw is not None:  # spliced, not parsed and dumped again
            return orjson.dumps(self.head)[:-1] + b',"a":' + self.raw + b"}"
        return orjson.dumps({**self.head, "a": self.answer})


def attach(call, found: Lookup | None) -> None:
    """A call that goes upstream: say what the cache did, and collect the answer to store."""
    if found is None:
        return
    call.extra_headers = [*call.extra_headers, (b"x-finops-cache", found.status)]
    if found.write:
        call.cache = Fill()


async def keep(call, found: Lookup | None) -> None:
    """Store the call's answer once the client has it (a successful answer of the route's own
    model, within the policy's size limit)."""
    fill = call.cache
    if fill is None or found is None or not found.write:
        return
    served = call.served
    if served is None or served.name not in found.models or call.budget_action:
        return
    data = fill.encoded()
    if data is None:
        return
    org = call.record.org_slug
    if len(data) > found.policy.max_entry_bytes:
        metrics.CACHE_STORES.labels(org, "too_large").inc()
        return
    stored = await store().put(found.space, found.digest, data, found.policy.ttl_seconds)
    metrics.CACHE_STORES.labels(org, "stored" if stored else "error").inc()
    if stored:
        metrics.CACHE_STORED_BYTES.labels(org).inc(len(data))


# --- a hit ------------------------------------------------------------------------------------


async def _requests_counted(call, config: OrgConfig) -> list:
    """Count a hit against the key's and the team's requests per minute (nothing else): the
    limit's 429 if it is reached, else its ``x-ratelimit-*`` headers."""
    record = call.record
    team = config.team_limits.get(record.team_id)
    team_rpm = team.rpm_limit if team is not None else None
    if not record.rpm_limit and not team_rpm:
        return []
    admission = await runtime.admitter.admit(
        api=call.api,
        body=call.body,
        record=replace(record, tpm_limit=None, max_parallel=None),
        config=replace(
            config,
            budgets=[],
            team_limits={record.team_id: TeamLimits(team_rpm, None, None)} if team_rpm else {},
        ),
        feature=call.labels.feature,
        plan=Plan(deployments=[]),
        started=call.started,
    )
    return admission.headers if admission is not None else []


async def answered(call, found: Lookup | None, send, config: OrgConfig) -> bool:
    """Answer from the cache when it holds the answer (True), in the client's format, metered
    at 0 with what it saved."""
    if found is None or found.entry is None:
        return False
    await _answer(call, found, send, config)
    return True


async def _answer(call, found: Lookup, send, config: OrgConfig) -> None:
    limits = await _requests_counted(call, config)
    entry = found.entry
    now = datetime.now(UTC)
    model = config.models.get(entry["m"])
    saved = metering.price_usage(model, entry_usage(entry), now).total if model else ZERO
    age = max(0, int(time.time() - float(entry.get("t") or 0)))
    headers = [
        (b"x-request-id", call.request_id.encode()),
        (b"x-finops-cache", HIT),
        (b"x-finops-cache-age", str(age).encode()),
        (b"x-finops-cost", b"0"),
        (b"x-finops-attempts", b"0"),
        (b"x-finops-model", str(entry["m"]).encode()),
        *limits,
    ]
    stream = call.api == CHAT and call.body.get("stream") is True
    if stream:
        body, replayed = render_stream(entry, call)
    else:
        body = replayed = render_json(entry, call)
    if call.on_answer is not None and replayed is not None:
        await call.on_answer(replayed)  # before the client has it (a quick follow-up needs it)
    with contextlib.suppress(OSError):  # a client gone already: the hit is metered all the same
        if stream:
            start = {
                "type": "http.response.start",
                "status": 200,
                "headers": [*SSE_HEADERS, *headers],
            }
            await send(start)
            await send({"type": "http.response.body", "body": body, "more_body": False})
        else:
            await send_bytes(send, 200, body, [*JSON_HEADERS, *headers])
    ended = datetime.now(UTC)
    runtime.ledger.key_used(call.record.key_id, call.started)
    event = metering.event(
        call,
        model=model,
        attempt=1,
        status="ok",
        started=call.started,
        ended=ended,
        latency_ms=int((time.perf_counter() - call.t0) * 1000),
        http_status=200,
        first_byte=ended if stream else None,
        streamed=stream,
    )
    event.update(cache_hit=True, saved_usd=saved, saving_lever="cache")
    runtime.ledger.submit(event)
    if saved:
        metrics.CACHE_SAVED_USD.labels(call.record.org_slug).inc(float(saved))
