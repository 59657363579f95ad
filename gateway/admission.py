"""Admission: rate limits and budgets, checked and taken in one atomic step before forwarding.

A call reserves its *maximum* cost (prompt tokens x the highest input-side price + max output
tokens x the output price, over every deployment it may reach) against every budget that applies
— key, feature, team, org — in the window of its start time. Afterwards it settles: the lease is
released and the actual cost added. So concurrent calls can never overspend a ``block`` budget.

``alert`` budgets count but never refuse; an exhausted ``downgrade`` budget sends the call to its
cheaper model, re-estimated against all budgets. The counters live in Redis when ``REDIS_URL``
is set (``gateway.counters``) and in process otherwise.
"""

from __future__ import annotations

import logging
import math
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import ROUND_CEILING, ROUND_HALF_UP, Decimal

from django.conf import settings

from gateway import billable
from gateway.counters import NANO, Entry, Verdict
from gateway.errors import GatewayError
from gateway.pricing import decimal_str
from gateway.records import BudgetRecord, KeyRecord, OrgConfig
from gateway.resolve import Plan

log = logging.getLogger("gateway.admission")

LEASE_TTL_MARGIN = 60.0  # seconds beyond the upstream timeout


def window_of(period: str, when: datetime, tz) -> tuple[str, datetime, datetime]:
    """(label, start, end) of the calendar window containing ``when``, in the org's timezone."""
    local = when.astimezone(tz).date()
    if period == "day":
        start, end = local, local + timedelta(days=1)
    elif period == "week":
        start = local - timedelta(days=local.weekday())
        end = start + timedelta(days=7)
    elif period == "month":
        start = local.replace(day=1)
        end = date(start.year + (start.month == 12), start.month % 12 + 1, 1)
    elif period == "quarter":
        month = 3 * ((local.month - 1) // 3) + 1
        start = date(local.year, month, 1)
        end = date(start.year + (month == 10), (month + 2) % 12 + 1, 1)
    else:
        raise ValueError(f"unknown period {period!r}")
    start_at = datetime(start.year, start.month, start.day, tzinfo=tz)
    end_at = datetime(end.year, end.month, end.day, tzinfo=tz)
    return f"{period}:{start.isoformat()}", start_at, end_at


def budget_key(budget: BudgetRecord, window: str) -> str:
    """The counters' key of one budget window (ids repeat when a database is recreated; the
    creation time keeps a new budget from inheriting an old counter in a long-lived Redis)."""
    return f"finops:budget:{budget.id}.{budget.created}:{window}"


def budgets_for(config: OrgConfig, record: KeyRecord, feature: str) -> list[BudgetRecord]:
    """Budgets that apply to a call, most specific first (key, feature, team, org)."""
    out = []
    for b in config.budgets:
        if (
            (b.scope == "org")
            or (b.scope == "team" and b.team_id == record.team_id)
            or (b.scope == "feature" and b.team_id == record.team_id and b.feature == feature)
            or (b.scope == "key" and b.key_id == record.key_id)
        ):
            out.append(b)
    return out


def to_nano(value: Decimal, rounding=ROUND_HALF_UP) -> int:
    return int((value * NANO).to_integral_value(rounding=rounding))


def estimate(api: str, body: dict, plan: Plan) -> tuple[Decimal, int]:
    """(upper bound of the call's cost over every deployment it may reach, prompt tokens).

    The bound is ``gateway.billable``'s: everything the provider may bill (messages, tools,
    schemas, images, audio, files; ``n`` choices at the output cap the gateway enforces)."""
    worst = Decimal(0)
    tokens = 0
    for model in plan.deployments:
        limit = plan.bounds[model.name] = billable.bound(api, body, model)
        tokens = max(tokens, limit.prompt)
        if model.prices:
            worst = max(worst, limit.cost(model.prices[0]))
    return worst, tokens


@dataclass
class Admission:
    entries: list[Entry]
    lease: str
    prompt_estimate: int
    plan: Plan
    downgraded: bool = False
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    counted: bool = True  # False when the counters were unreachable and the call went through
    # the tightest blocking budget: (room left before this call, this call's reservation), nano
    headroom: tuple[int, int] | None = None

    def remaining_header(self, cost: Decimal | None) -> list[tuple[bytes, bytes]]:
        """``x-finops-budget-remaining`` after this call: the room before it less what it cost
        (a stream's headers leave before the cost is known: less its reservation, then)."""
        if self.headroom is None:
            return []
        room, reserved = self.headroom
        spent = reserved if cost is None else to_nano(cost, ROUND_CEILING)
        value = Decimal(max(room - spent, 0)) / NANO
        return [(b"x-finops-budget-remaining", decimal_str(value).encode())]


def _budget_error(budget: BudgetRecord, window_end: datetime) -> GatewayError:
    return GatewayError(
        429,
        "budget_exceeded",
        f"Budget exhausted: the {budget.period} budget of {budget.label} "
        f"({decimal_str(budget.limit)} USD). It resets at {window_end.isoformat()}.",
        headers=[(b"x-should-retry", b"false")],
    )


def _rate_error(entry: Entry, name: str, now: datetime) -> GatewayError:
    retry = (
        1
        if entry.kind == "parallel"
        else max(1, math.ceil(60 - now.second - now.microsecond / 1e6))
    )
    return GatewayError(
        429,
        "rate_limit_exceeded",
        f"Rate limit reached: {name} ({entry.limit}). Retry after {retry} s.",
        headers=[(b"retry-after", str(retry).encode()), *_limit_headers(entry, 0)],
    )


def _limit_headers(entry: Entry, used: int) -> list[tuple[bytes, bytes]]:
    kind = "tokens" if entry.ref and str(entry.ref).endswith("tpm") else "requests"
    if entry.kind != "rate":
        return []
    return [
        (f"x-ratelimit-limit-{kind}".encode(), str(entry.limit).encode()),
        (f"x-ratelimit-remaining-{kind}".encode(), str(max(0, entry.limit - used)).encode()),
    ]


class Admitter:
    def __init__(self, counters, seeder) -> None:
        self.counters = counters
        self._seeder = seeder  # async (budget, start, end) -> Decimal spent per the ledger
        self._seeded: set[str] = set()
        # Redis counters record calls in flight and renew their leases (gateway.leases): a lease
        # can be short. In process, a lease dies with its process anyway.
        self.tracks_calls = hasattr(counters, "inflight_key")
        self.lease_ttl = (
            settings.FINOPS_LEASE_SECONDS
            if self.tracks_calls
            else settings.FINOPS_UPSTREAM_TIMEOUT * 3 + LEASE_TTL_MARGIN
        )

    def _rate_entries(self, record: KeyRecord, config: OrgConfig, prompt: int) -> list[Entry]:
        entries = []
        team = config.team_limits.get(record.team_id)
        for owner, limits, scope in (
            (record.key_id, record, "key"),
            (record.team_id, team, "team"),
        ):
            if limits is None:
                continue
            base = f"finops:{scope}:{owner}"
            if limits.rpm_limit:
                entries.append(
                    Entry("rate", f"{base}:rpm", limits.rpm_limit, 1, ref=f"{scope} rpm")
                )
            if limits.tpm_limit:
                entries.append(
                    Entry("rate", f"{base}:tpm", limits.tpm_limit, prompt, ref=f"{scope} tpm")
                )
            if limits.max_parallel:
                entries.append(
                    Entry(
                        "parallel",
                        f"{base}:par",
                        limits.max_parallel,
                        1,
                        ref=f"{scope} max_parallel",
                    )
                )
        return entries

    async def _budget_entries(
        self,
        budgets: list[BudgetRecord],
        cost: Decimal,
        started: datetime,
        tz,
        *,
        lenient: set[int],
    ) -> list[Entry]:
        entries = []
        amount = to_nano(cost, ROUND_CEILING)
        for b in budgets:
            label, start, end = window_of(b.period, started, tz)
            key = budget_key(b, label)
            seed = None
            if key not in self._seeded:
                seed = to_nano(await self._seeder(b, start, end))
            entries.append(
                Entry(
                    "budget",
                    key,
                    to_nano(b.limit),
                    amount,
                    blocking=b.action in ("block", "downgrade") and b.id not in lenient,
                    expire_at=int(end.timestamp()) + 2 * 86400,
                    seed=seed,
                    ref=(b, end),
                )
            )
        return entries

    async def admit(
        self,
        *,
        api: str,
        body: dict,
        record: KeyRecord,
        config: OrgConfig,
        feature: str,
        plan: Plan,
        started: datetime,
        draft: dict | None = None,
    ) -> Admission | None:
        """``draft``: the row this call leaves if its process dies (``gateway.leases``); with
        one, the call is admitted (and so recorded in flight) even with nothing to count."""
        budgets = budgets_for(config, record, feature)
        has_limits = (
            record.rpm_limit
            or record.tpm_limit
            or record.max_parallel
            or (record.team_id in config.team_limits)
        )
        if not budgets and not has_limits and draft is None:
            return None
        lenient: set[int] = set()
        downgraded = False
        while True:
            cost, prompt = estimate(api, body, plan)
            entries = self._rate_entries(record, config, prompt)
            entries += await self._budget_entries(
                budgets, cost, started, record.org_tz, lenient=lenient
            )
            lease = uuid.uuid4().hex
            if draft is not None:
                draft.update(cost=decimal_str(cost), prompt=prompt)
            try:
                verdict: Verdict = await self.counters.admit(
                    entries, lease=lease, lease_ttl=self.lease_ttl, draft=draft
                )
            except Exception as exc:  # noqa: BLE001 - the counters store is down: per-budget policy
                return self._unavailable(exc, entries, lease, prompt, plan)
            if verdict.ok:
                break
            failed = entries[verdict.failed]
            if failed.kind != "budget":
                raise _rate_error(failed, str(failed.ref), started)
            budget, window_end = failed.ref
            if budget.action != "downgrade" or downgraded:
                raise _budget_error(budget, window_end)
            plan = self._downgrade(budget, plan, config, record, window_end)
            lenient.add(budget.id)
            downgraded = True
        self._seeded.update(e.key for e in entries if e.kind == "budget")
        return Admission(
            entries=entries,
            lease=lease,
            prompt_estimate=prompt,
            plan=plan,
            downgraded=downgraded,
            headers=self._headers(entries, verdict),
            headroom=self._headroom(entries, verdict),
        )

    async def admit_reserved(
        self,
        *,
        record: KeyRecord,
        config: OrgConfig,
        feature: str,
        cost: Decimal,
        started: datetime,
        lease_ttl: float,
    ) -> Admission | None:
        """Reserve a known upper bound (a whole batch's) against every budget that applies, for
        ``lease_ttl`` seconds; None when no budget applies. Budgets only (a batch is not a
        request a rate limit counts), and a ``downgrade`` budget refuses like a ``block`` one
        (a batch cannot be re-routed line by line once sent)."""
        budgets = budgets_for(config, record, feature)
        if not budgets:
            return None
        entries = await self._budget_entries(budgets, cost, started, record.org_tz, lenient=set())
        lease = uuid.uuid4().hex
        try:
            verdict = await self.counters.admit(entries, lease=lease, lease_ttl=lease_ttl)
        except Exception as exc:  # noqa: BLE001 - the counters store is down: per-budget policy
            return self._unavailable(exc, entries, lease, 0, None)
        if not verdict.ok:
            budget, window_end = entries[verdict.failed].ref
            raise _budget_error(budget, window_end)
        self._seeded.update(e.key for e in entries)
        return Admission(
            entries=entries,
            lease=lease,
            prompt_estimate=0,
            plan=None,
            headroom=self._headroom(entries, verdict),
        )

    async def admit_again(
        self,
        *,
        record,
        config: OrgConfig,
        feature: str,
        cost: Decimal,
        started: datetime,
        lease: str,
        lease_ttl: float,
    ) -> list[str]:
        """Hold again, under its own lease, a reservation that in-process counters forgot when
        their process restarted (an open batch's, admitted before): never refused. ``record``
        needs ``team_id``, ``key_id`` and ``org_tz``. The counter keys now held."""
        budgets = budgets_for(config, record, feature)
        if not budgets or lease_ttl <= 0:
            return []
        lenient = {b.id for b in budgets}
        entries = await self._budget_entries(budgets, cost, started, record.org_tz, lenient=lenient)
        try:
            await self.counters.admit(entries, lease=lease, lease_ttl=lease_ttl)
        except Exception as exc:  # noqa: BLE001 - the next start tries again
            log.warning("could not hold a reservation again (%s)", type(exc).__name__)
            return []
        self._seeded.update(e.key for e in entries)
        return [e.key for e in entries]

    def _downgrade(self, budget, plan, config, record, window_end) -> Plan:
        target = config.models.get(budget.downgrade_to)
        allowed = not record.allowed_models or budget.downgrade_to in record.allowed_models
        if target is None or not allowed:
            raise _budget_error(budget, window_end)
        return Plan(
            deployments=[target],
            router=plan.router,
            router_scorer=plan.router_scorer,
            router_decision=plan.router_decision,
            router_threshold=plan.router_threshold,
            router_score=plan.router_score,
        )

    def _headers(self, entries: list[Entry], verdict: Verdict) -> list[tuple[bytes, bytes]]:
        headers: list[tuple[bytes, bytes]] = []
        for entry, (used, _held) in zip(entries, verdict.seen, strict=False):
            if entry.kind == "rate":
                headers += _limit_headers(entry, used + entry.amount)
        return headers

    @staticmethod
    def _headroom(entries: list[Entry], verdict: Verdict) -> tuple[int, int] | None:
        """The tightest blocking budget's room before this call (limit - spent - others'
        reservations) and this call's reservation on it."""
        tightest: tuple[int, int] | None = None
        for entry, (used, held) in zip(entries, verdict.seen, strict=False):
            if entry.kind == "budget" and entry.blocking:
                room = entry.limit - used - held
                if tightest is None or room - entry.amount < tightest[0] - tightest[1]:
                    tightest = (room, entry.amount)
        return tightest

    def _unavailable(self, exc, entries, lease, prompt, plan) -> Admission:
        closed = [
            e.ref[0]
            for e in entries
            if e.kind == "budget" and e.blocking and not e.ref[0].fail_open
        ]
        log.warning("admission counters unreachable (%s)", type(exc).__name__)
        if closed:
            raise GatewayError(
                503,
                "budget_unavailable",
                f"Spend limits cannot be checked right now, so the {closed[0].label} budget "
                "refuses calls (it fails closed). Retry shortly.",
                headers=[(b"retry-after", b"1")],
            )
        return Admission(
            entries=entries, lease=lease, prompt_estimate=prompt, plan=plan, counted=False
        )

    async def settle(
        self, admission: Admission, *, cost: Decimal, prompt_tokens: int, completion_tokens: int
    ) -> None:
        if not admission.counted:
            return
        amounts = []
        for entry in admission.entries:
            if entry.kind == "budget":
                amounts.append(to_nano(cost))
            elif entry.kind == "rate" and str(entry.ref).endswith("tpm"):
                amounts.append(
                    completion_tokens + max(0, prompt_tokens - admission.prompt_estimate)
                )
            else:
                amounts.append(0)
        try:
            await self.counters.settle(admission.entries, amounts, lease=admission.lease)
        except Exception as exc:  # noqa: BLE001 - the lease expires; reconciliation restores spend
            log.warning(
                "could not settle admission (%s); reconciliation will correct", type(exc).__name__
            )


def ledger_spent(budget: BudgetRecord, start: datetime, end: datetime) -> Decimal:
    """Blocking: what the ledger says a budget's window has spent (seeds cold counters)."""
    from django.db import close_old_connections
    from django.db.models import Sum

    from gateway.models import UsageEvent

    close_old_connections()
    rows = UsageEvent.objects.filter(
        org_id=budget.org_id, started_at__gte=start, started_at__lt=end, shadow=False
    )
    if budget.scope in ("team", "feature"):
        rows = rows.filter(team_id=budget.team_id)
    if budget.scope == "feature":
        rows = rows.filter(feature=budget.feature)
    if budget.scope == "key":
        rows = rows.filter(key_id=budget.key_id)
    return rows.aggregate(total=Sum("cost"))["total"] or Decimal(0)
