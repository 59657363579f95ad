"""The Batch APIs at half price: OpenAI's (``/v1/files``, ``/v1/batches``) and Anthropic's
Message Batches (``/v1/messages/batches``), through the gateway.

A batch is validated line by line (a 400 names the line), each line's model resolved to a
configured model of one provider that has a batch API (an OpenAI-kind one for OpenAI's format,
an Anthropic one for Anthropic's), its upper-bound cost at batch prices (``gateway.billable``,
``Price.for_batch``) summed and reserved against every budget that applies for the batch's
lifetime, and the rewritten lines (the upstream model names) sent as one upstream batch. When
the provider has finished — seen by a client's ``GET`` or by the poller every gateway process
runs — one process claims the batch, downloads the results, writes one ledger row per line at
batch prices with ``saved_usd`` against the synchronous price, settles the reservation with
the real cost, and keeps the output for the client with the gateway's ids and the client's
model names.

Modules: ``files`` (the file store and ``/v1/files``), ``lines`` (JSONL and request
validation, model resolution, estimates), ``upstream`` (the providers' batch APIs),
``store`` (the batch rows), ``service`` (create, refresh, cancel), ``metering`` (ledger rows
and the client's output), ``openai_batches`` / ``anthropic_batches`` (the wire formats),
``poller``, ``routes`` (the dispatch from ``gateway.asgi``). See ``docs/batches.md``.

The knobs are ``FINOPS_BATCH_*`` in ``finops/settings.py``, checked against their lowest
allowed values when read.
"""

from __future__ import annotations

import os

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

# name: (type, default, lowest allowed)
_KNOBS = {
    # a batch's input (a JSONL file, or an Anthropic batch's body), in bytes and in lines
    "FINOPS_BATCH_MAX_BYTES": (int, 100 * 1024 * 1024, 1),
    "FINOPS_BATCH_MAX_LINES": (int, 50_000, 1),
    # seconds an upload may take to arrive
    "FINOPS_BATCH_UPLOAD_SECONDS": (float, 300.0, 1.0),
    # how often each gateway process looks at the open batches (completion is metered within
    # this plus one upstream call)
    "FINOPS_BATCH_POLL_SECONDS": (float, 10.0, 0.05),
    # how long a batch's budget reservation holds if it is never metered (its 24 h window, and
    # margin for the provider to finish and the gateway to meter)
    "FINOPS_BATCH_LEASE_SECONDS": (float, 26 * 3600.0, 60.0),
    # a process that claimed a batch for metering and died: another may take it after this
    "FINOPS_BATCH_CLAIM_SECONDS": (float, 300.0, 5.0),
}


def knob(name: str):
    cast, default, lowest = _KNOBS[name]
    value = getattr(settings, name, None)
    if value is None:
        raw = os.environ.get(name)
        if raw is None or raw == "":
            return default
        try:
            value = cast(raw)
        except ValueError:
            raise ImproperlyConfigured(f"{name}: invalid value {raw!r}") from None
    if value < lowest:
        raise ImproperlyConfigured(f"{name}: must be at least {lowest}, got {value}")
    return cast(value)
