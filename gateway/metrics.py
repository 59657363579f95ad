"""Prometheus metrics of the gateway, exposed at ``/metrics`` by the same process.

With several uvicorn workers each process has its own registry; scrape each, or run one worker
per container as most deployments do. Cost is exported as a float for dashboards only: the
ledger remains the exact record.
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

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
