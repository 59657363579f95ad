"""The demo's traffic: ledger rows as the gateway writes them (``gateway.metering.event``'s
columns), generated from a seed so that the same seed always gives the same history.

Every row's ``request_id`` starts with ``demo-`` (shadow rows end in ``-s``, as the gateway's
do): that prefix is how the demo's history is recognised, replaced on reload and told apart
from real traffic. Costs are the catalog's prices (``gateway.pricing.cost_of``); a router's weak
rows carry what they saved against the strong model, a cache hit what the call would have cost,
a batch line the difference to the synchronous price (``gateway/savings.py``'s levers).
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal

from gateway.pricing import Cost, Price, Usage, cost_of

DEMO_PREFIX = "demo-"
ZERO = Decimal(0)


@dataclass(frozen=True)
class Stream:
    """One feature's calls: who makes them, to what, how many on a weekday, how big."""

    team: str
    feature: str
    endpoint: str
    requested: str  # a model, the group ``chat-pool`` or the router ``smart``
    calls: int  # on a weekday at the end of the period (growth leads up to it)
    prompt: int
    completion: int
    cache_share: float = 0.0  # answered from the exact response cache
    batch: bool = False  # sent through the Batch API, priced at batch rates
    api: str = "chat.completions"


STREAMS = (
    Stream("search", "summarize", "/api/search/summarize", "smart", 260, 3600, 600),
    Stream("search", "rerank", "/api/search/rerank", "gpt-4o-mini", 150, 1800, 40),
    Stream("search", "query-embed", "/api/search/embed", "text-embedding-3-small", 220, 300, 0,
           api="embeddings"),
    Stream("support", "chat", "/api/support/chat", "chat-pool", 110, 3500, 600, cache_share=0.08),
    Stream("support", "triage", "/api/support/triage", "gpt-4o", 40, 2000, 250),
    Stream("support", "docs-qa", "/api/support/docs-qa", "gpt-4o-mini", 70, 6000, 600,
           cache_share=0.15),
    Stream("data", "extract", "/api/data/extract", "gpt-4o", 90, 10000, 1800),
    Stream("data", "classify", "/api/data/classify", "gpt-4o-mini", 120, 700, 20, batch=True),
    Stream("data", "sql-assist", "/api/data/sql", "claude-sonnet", 20, 6000, 1200),
    Stream("platform", "code-review", "/api/platform/review", "claude-sonnet", 30, 6000, 700),
    Stream("platform", "agents", "/api/platform/agents", "chat-pool", 25, 8000, 900),
    Stream("platform", "release-notes", "/api/platform/release-notes", "gpt-4o-mini", 8, 4000,
           600),
)  # fmt: skip
GROUP = (("gpt-4o", 3), ("claude-sonnet", 1))  # config/demo.yaml's chat-pool
# the busy local hours of a weekday (Europe/Berlin office), and the quiet night
HOUR_WEIGHTS = [1, 1, 1, 1, 1, 2, 3, 6, 10, 12, 12, 11, 9, 11, 12, 11, 10, 8, 6, 4, 3, 2, 2, 1]
WEEKEND = 0.3
EXPERIMENT = "triage-on-mini"  # gpt-4o vs gpt-4o-mini for support/triage, finished
EXPERIMENT_SHARE = 0.3
SHADOW_SHARE = 0.12  # the router's calls mirrored to its other model (labelled pairs)


@dataclass(frozen=True)
class Plan:
    """The shape of one history: its days, its growth and the days that stand out."""

    first: date
    days: int
    anomaly: date | None  # support/triage calls gpt-4o in a loop for a day
    busy: date | None  # a re-index job runs search/rerank on gpt-4o: its day budget passes 80 %
    experiment: tuple[date, date] | None  # [start, end) of the finished experiment


def plan_for(*, today: date, days: int) -> Plan:
    first = today - timedelta(days=days)
    exp = (today - timedelta(days=40), today - timedelta(days=12)) if days >= 45 else None
    return Plan(
        first=first,
        days=days,
        anomaly=today - timedelta(days=11) if days >= 20 else None,
        busy=today - timedelta(days=1) if days >= 1 else None,
        experiment=exp,
    )


@dataclass
class Context:
    """What generation needs from the database, resolved once."""

    org_id: int
    team_ids: dict[str, int]
    key_ids: dict[str, int]
    models: dict[str, tuple[str, str]]  # name -> (upstream model, provider slug)
    prices: dict[str, Price]
    router: str
    strong: str
    weak: str
    threshold: float
    prompts: list[tuple[list, float]]  # (messages, the router's score of them)


def _uuid(rng: random.Random) -> uuid.UUID:
    return uuid.UUID(int=rng.getrandbits(128), version=4)


def _usage(rng: random.Random, stream: Stream, scale: float = 1.0) -> Usage:
    prompt = max(8, int(rng.lognormvariate(0, 0.45) * stream.prompt * scale))
    out = int(rng.lognormvariate(0, 0.5) * stream.completion * scale) if stream.completion else 0
    cached = int(prompt * rng.choice((0, 0, 0.5, 0.8))) if prompt > 1024 and out else 0
    return Usage(uncached_input=prompt - cached, cached_input=cached, output=out)


class Generator:
    """The rows of one history, day by day, and the shadow pairs to store beside them."""

    def __init__(self, ctx: Context, plan: Plan, *, seed: int, now: datetime, tz) -> None:
        self.ctx, self.plan, self.now, self.tz = ctx, plan, now, tz
        self.rng = random.Random(seed)
        self.pairs: list[dict] = []

    def days(self) -> Iterator[tuple[date, list[dict]]]:
        for i in range(self.plan.days + 1):  # the past days and today so far
            day = self.plan.first + timedelta(days=i)
            growth = 0.6 + 0.4 * (i / max(1, self.plan.days))
            yield day, self._day(day, growth)

    def _day(self, day: date, growth: float) -> list[dict]:
        rng = self.rng
        factor = growth * (WEEKEND if day.weekday() >= 5 else 1.0)
        rows: list[dict] = []
        for stream in STREAMS:
            n = int(stream.calls * factor * rng.uniform(0.85, 1.15))
            if stream.feature == "triage" and day == self.plan.anomaly:
                n *= 12  # a retry loop in the triage job: the anomaly
            for _ in range(n):
                rows += self._call(stream, self._instant(day))
        if day == self.plan.busy:
            rerank = next(s for s in STREAMS if s.feature == "rerank")
            for _ in range(900):
                rows += self._call(rerank, self._instant(day), model="gpt-4o")
        return [r for r in rows if r["started_at"] <= self.now]

    def _instant(self, day: date) -> datetime:
        hour = self.rng.choices(range(24), weights=HOUR_WEIGHTS)[0]
        local = datetime.combine(day, time(hour), tzinfo=self.tz)
        return local + timedelta(seconds=self.rng.randrange(3600))

    def _row(self, stream: Stream, started: datetime, model: str, usage: Usage, cost: Cost, *,
             request_id: str, latency: int, **extra) -> dict:  # fmt: skip
        upstream, provider = self.ctx.models[model]
        return {
            "event_id": _uuid(self.rng),
            "request_id": request_id,
            "attempt": 1,
            "started_at": started,
            "first_byte_at": started + timedelta(milliseconds=latency // 3) if latency else None,
            "ended_at": started + timedelta(milliseconds=latency),
            "org_id": self.ctx.org_id,
            "team_id": self.ctx.team_ids[stream.team],
            "key_id": self.ctx.key_ids[stream.team],
            "feature": stream.feature,
            "endpoint": stream.endpoint,
            "end_user": f"demo-user-{self.rng.randrange(1, 60):02d}",
            "api": stream.api,
            "requested_model": stream.requested,
            "model": model,
            "upstream_model": upstream,
            "provider": provider,
            "status": "ok",
            "http_status": 200,
            "error_code": "",
            "prompt_tokens": usage.prompt_tokens,
            "completion_tokens": usage.output,
            "cached_tokens": usage.cached_input,
            "cache_write_tokens": usage.cache_write,
            "input_cost": cost.input,
            "cached_input_cost": cost.cached_input,
            "cache_write_cost": cost.cache_write,
            "output_cost": cost.output,
            "cost": cost.total,
            "estimated": False,
            "latency_ms": latency,
            "streamed": False,
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
            "saved_usd": ZERO,
            "saving_lever": "",
            "cache_hit": False,
            "batch_id": "",
            "inserted_at": started + timedelta(milliseconds=latency + 200),
            **extra,
        }

    def _latency(self, usage: Usage) -> int:
        return int(300 + usage.output * self.rng.uniform(8, 16) + usage.prompt_tokens * 0.02)

    def _call(self, stream: Stream, started: datetime, *, model: str | None = None) -> list[dict]:
        rng = self.rng
        request_id = f"{DEMO_PREFIX}{_uuid(rng).hex[:24]}"
        extra: dict = {}
        if stream.requested == "smart" and model is None:
            return self._routed(stream, started, request_id)
        if model is None and stream.requested == "chat-pool":
            model = rng.choices([m for m, _ in GROUP], weights=[w for _, w in GROUP])[0]
        model = model or stream.requested
        exp = self.plan.experiment
        if stream.feature == "triage" and exp and exp[0] <= started.date() < exp[1]:
            arm = "candidate" if rng.random() < EXPERIMENT_SHARE else "control"
            model = "gpt-4o-mini" if arm == "candidate" else model
            extra.update(experiment=EXPERIMENT, experiment_arm=arm)
        usage = _usage(rng, stream)
        price = self.ctx.prices[model]
        rows: list[dict] = []
        if rng.random() < 0.01:  # a rate-limited first attempt, retried
            rows.append(self._row(stream, started, model, Usage(), Cost(), request_id=request_id,
                                  latency=120, status="error", http_status=429,
                                  error_code="rate_limit_exceeded"))  # fmt: skip
            rows[-1]["first_byte_at"] = None
            started += timedelta(seconds=1)
            extra["attempt"] = 2
        if stream.cache_share and rng.random() < stream.cache_share:
            would = cost_of(usage, price).total
            rows.append(self._row(stream, started, model, usage, Cost(), request_id=request_id,
                                  latency=15, cache_hit=True, saved_usd=would,
                                  saving_lever="cache", **extra))  # fmt: skip
            return rows
        if stream.batch:
            cost = cost_of(usage, price.for_batch())
            extra.update(
                batch_id=f"{DEMO_PREFIX}batch-{started.date():%Y%m%d}",
                saved_usd=cost_of(usage, price).total - cost.total,
                saving_lever="batch",
            )
        else:
            cost = cost_of(usage, price)
        rows.append(self._row(stream, started, model, usage, cost, request_id=request_id,
                              latency=self._latency(usage), **extra))  # fmt: skip
        return rows

    def _routed(self, stream: Stream, started: datetime, request_id: str) -> list[dict]:
        """A call to the router: its decision from the prompt's score; some are shadowed."""
        ctx, rng = self.ctx, self.rng
        messages, score = rng.choice(ctx.prompts)
        strong = score >= ctx.threshold
        model = ctx.strong if strong else ctx.weak
        hard = 1.0 + score  # harder prompts are longer and get longer answers
        usage = _usage(rng, stream, hard)
        cost = cost_of(usage, ctx.prices[model])
        saved = ZERO
        if not strong:
            saved = cost_of(usage, ctx.prices[ctx.strong]).total - cost.total
        route = {
            "router": ctx.router,
            "router_scorer": "heuristic",
            "router_score": round(score, 6),
            "router_threshold": ctx.threshold,
            "router_decision": "strong" if strong else "weak",
        }
        lever = "router" if saved else ""
        rows = [self._row(stream, started, model, usage, cost, request_id=request_id,
                          latency=self._latency(usage), saved_usd=saved, saving_lever=lever,
                          **route)]  # fmt: skip
        if rng.random() < SHADOW_SHARE:
            other = ctx.weak if strong else ctx.strong
            other_cost = cost_of(usage, ctx.prices[other])
            rows.append(self._row(stream, started, other, usage, other_cost,
                                  request_id=f"{request_id}-s", latency=self._latency(usage),
                                  shadow=True, **route))  # fmt: skip
            self.pairs.append(self._pair(rows[0], rows[1], messages, score, strong))
        return rows

    def _pair(self, served: dict, shadow: dict, messages, score: float, strong: bool) -> dict:
        # the judge: the weak model falls behind on hard prompts, with noise
        rng = self.rng
        q_strong = min(1.0, max(0.0, rng.gauss(0.9, 0.05)))
        q_weak = min(1.0, max(0.0, rng.gauss(0.92 - 0.45 * score**2, 0.08)))
        cost = {served["model"]: served["cost"], shadow["model"]: shadow["cost"]}
        return {
            "request_id": served["request_id"],
            "team_id": served["team_id"],
            "key_id": served["key_id"],
            "created_at": served["ended_at"],
            "messages": messages,
            "router_score": score,
            "served": "strong" if strong else "weak",
            "strong_cost": cost[self.ctx.strong],
            "weak_cost": cost[self.ctx.weak],
            "judge_strong": round(q_strong, 3),
            "judge_weak": round(q_weak, 3),
        }


# --- the router's prompts ------------------------------------------------------------------------

_EASY = (
    "Summarize this support ticket in two sentences: {topic} stopped working after the update.",
    "Give a one-line summary of the meeting notes about {topic}.",
    "Rewrite this title so it is shorter: {topic} improvements for Q3.",
    "List three keywords for an article on {topic}.",
)
_HARD = (
    "Analyze the trade-offs of our {topic} design step by step and recommend a strategy; "
    "compare the alternatives in detail and justify the recommendation.",
    "Explain why this function that handles {topic} fails, then fix it:\n```python\n"
    "def total(items):\n    return sum(i.price for i in items if i.qty > 0) / len(items)\n```",
    "Show that the {topic} cache hit rate is bounded by the working-set ratio; reason through "
    "each step of the proof by induction.",
    "Design the architecture for {topic} across three regions: evaluate the pros and cons of "
    "each option and investigate the failure modes thoroughly.",
)
_TOPICS = ("billing", "search ranking", "login", "invoice export", "the mobile app", "webhooks")


def router_prompts(score: Callable[[list], float]) -> list[tuple[list, float]]:
    """A fixed set of easy and hard prompts with their scores under the router's scorer."""
    out = []
    for template in _EASY + _HARD:
        for topic in _TOPICS:
            messages = [{"role": "user", "content": template.format(topic=topic)}]
            out.append((messages, float(score(messages))))
    return out
