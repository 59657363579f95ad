"""Prometheus metrics of the gateway, exposed at ``/metrics`` by the same process.

With several uvicorn workers each process has its own registry; scrape each, or run one worker
per container as most deployments do. Cost is exported as a float for dashboards only: the
ledger remains the exact record.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

ATTEMPTS = Counter(
    "finops_gateway_attempts_total",
    "Upstream attempts by configured model, provider and outcome.",
    ["model", "provider", "status"],
)
COST = Counter("finops_gateway_cost_usd_total", "Metered cost in USD (display only).", ["model"])
TOKENS = Counter("finops_gateway_tokens_total", "Metered tokens.", ["model", "direction"])
LATENCY = Histogram(
    "finops_gateway_upstream_seconds",
    "Upstream attempt latency.",
    ["model"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)

OVER_BOUND = Counter(
    "finops_gateway_usage_over_bound_total",
    "Attempts whose upstream billed more than the request allowed (ledger: usage_exceeded_bound).",
    ["model"],
)
LOST_CALLS = Counter(
    "finops_gateway_lost_calls_total",
    "Calls in flight in a gateway process that died, metered as lost by this process.",
)
RETRIES = Counter(
    "finops_gateway_retries_total", "Retries of an upstream attempt on the same model.", ["model"]
)
COOLDOWNS = Counter(
    "finops_gateway_cooldowns_total", "Cooldowns started (failures in a row).", ["model"]
)
SKIPS = Counter(
    "finops_gateway_routing_skips_total",
    "Models passed over while routing a call, by reason (cooldown, context_window).",
    ["model", "reason"],
)

SHADOW_SKIPPED = Counter(
    "finops_gateway_shadow_skipped_total",
    "Shadow calls not made because FINOPS_SHADOW_CONCURRENCY were already in flight.",
)

# the exact response cache (gateway.response_cache); hit rate = hits / (hits + misses)
CACHE_LOOKUPS = Counter(
    "finops_gateway_cache_lookups_total",
    "Response cache lookups by organisation and result (hit, miss, error: the store failed).",
    ["org", "result"],
)
CACHE_STORES = Counter(
    "finops_gateway_cache_stores_total",
    "Answers offered to the response cache, by result (stored, too_large, error).",
    ["org", "result"],
)
CACHE_STORED_BYTES = Counter(
    "finops_gateway_cache_stored_bytes_total", "Bytes written to the response cache.", ["org"]
)
CACHE_SAVED_USD = Counter(
    "finops_gateway_cache_saved_usd_total",
    "What the calls answered from the response cache would have cost at the day's prices, USD "
    "(display only: the ledger's saved_usd is exact).",
    ["org"],
)


def observe(event: dict) -> None:
    model = event["model"] or "-"
    ATTEMPTS.labels(model, event["provider"] or "-", event["status"]).inc()
    if event["cost"]:
        COST.labels(model).inc(float(event["cost"]))
    if event["prompt_tokens"]:
        TOKENS.labels(model, "prompt").inc(event["prompt_tokens"])
    if event["completion_tokens"]:
        TOKENS.labels(model, "completion").inc(event["completion_tokens"])
    LATENCY.labels(model).observe(event["latency_ms"] / 1000)
    if event.get("usage_exceeded_bound"):
        OVER_BOUND.labels(model).inc()


# --- per request, process state, scrape-time figures -----------------------------------------

_PATHS = {
    "/v1/chat/completions": "chat.completions",
    "/v1/embeddings": "embeddings",
    "/v1/responses": "responses",
    "/v1/messages": "messages",
    "/v1/completions": "completions",
}
REQUESTS = Counter(
    "finops_gateway_requests_total",
    "Gateway requests by API and HTTP status (0: the client went away before an answer).",
    ["api", "code"],
)
REQUEST_SECONDS = Histogram(
    "finops_gateway_request_seconds",
    "Gateway request duration, admission and every attempt included (streams: to the end).",
    ["api"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
)
LEDGER_QUEUE = Gauge(
    "finops_ledger_buffer_events",
    "Ledger events waiting in gateway processes' buffers for their batch insert.",
    multiprocess_mode="livesum",
)
LEDGER_SPOOLED = Counter(
    "finops_ledger_spooled_events_total",
    "Ledger events written to the local spool because the database was unreachable.",
)


def request_done(path: str, status: int, seconds: float) -> None:
    api = _PATHS.get(path) or ("azure" if path.startswith("/openai/deployments/") else "other")
    REQUESTS.labels(api, str(status)).inc()
    if api != "other":
        REQUEST_SECONDS.labels(api).observe(seconds)


_SCRAPE_SOURCES: list = []


def scrape_source(fn):
    """Register ``fn() -> iterable of metric families``, read at every scrape.

    The modules that own a figure register it (the ledger its spool, the balancer its
    cooldowns, reports the budget utilisation at ``AppConfig.ready``), so this module imports
    none of them.
    """
    _SCRAPE_SOURCES.append(fn)
    return fn


class ScrapeCollector:
    """Figures read when scraped, from shared state rather than one process's memory."""

    def collect(self):
        for source in _SCRAPE_SOURCES:
            yield from source()


def registry():
    """All processes' samples (multiprocess mode) plus the scrape-time figures."""
    from prometheus_client import CollectorRegistry, multiprocess

    reg = CollectorRegistry()
    multiprocess.MultiProcessCollector(reg)
    reg.register(ScrapeCollector())
    return reg


def stale_cleanup(directory) -> None:
    """At start: forget the live gauges of this server's dead processes, and drop the metric
    directories of servers that are gone (a directory is named after its server's pid)."""
    import shutil
    from pathlib import Path

    from prometheus_client import multiprocess

    from gateway.procs import pid_alive

    directory = Path(directory)
    for path in directory.glob("gauge_live*_*.db"):
        pid = path.stem.rsplit("_", 1)[-1]
        if pid.isdigit() and not pid_alive(int(pid)):
            multiprocess.mark_process_dead(int(pid), str(directory))
    for sibling in directory.parent.glob("run-*"):
        pid = sibling.name.removeprefix("run-")
        if sibling != directory and pid.isdigit() and not pid_alive(int(pid)):
            shutil.rmtree(sibling, ignore_errors=True)
