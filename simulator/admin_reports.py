"""The organisation usage and cost reports, computed from the billed usage of
``simulator.billing`` (everything the simulator served, however it was called, plus injected
history): OpenAI's ``GET /v1/organization/usage/completions``, ``.../usage/embeddings`` and
``GET /v1/organization/costs`` (``simulator.admin_openai``), Anthropic's
``GET /v1/organizations/usage_report/messages`` and ``GET /v1/organizations/cost_report``
(``simulator.admin_anthropic``).

- Auth: OpenAI's take ``Authorization: Bearer KEY``, Anthropic's ``x-api-key: KEY`` and
  ``anthropic-version``; ``--admin-key`` is the only key accepted, else any non-empty one.
  Failures answer in the API's own shape (401, and 400 for a missing ``anthropic-version``).
- Array parameters are repeated, bare or with ``[]`` (``group_by=model&group_by[]=project_id``:
  the official SDKs send the bracketed form).
- Buckets are UTC minutes, hours or days, the first one snapped to the start of its
  minute/hour/day; every bucket of the range is returned, empty ones with ``results: []``, but
  none after the one that holds "now". ``limit`` buckets a page; ``has_more`` and an opaque
  ``next_page`` cursor (``page=``) give the next ones.
- Per request, ``x-sim-status`` and ``x-sim-latency-ms`` apply as on the other endpoints;
  process-wide faults (``--status``, ``--fail-rate``, ``--reset-rate`` …) do not, so a faulty
  simulator still reports what it billed.
"""

from __future__ import annotations

import asyncio
import hmac

from simulator.admin_anthropic import cost_report, usage_report
from simulator.admin_common import Query
from simulator.admin_openai import completions_usage, costs, embeddings_usage
from simulator.billing import Ledger
from simulator.config import parse_options
from simulator.wire import SimError, read_body, send_error, send_json


class AdminReports:
    """Routes ``/v1/organization/...`` (OpenAI) and ``/v1/organizations/...`` (Anthropic)."""

    def __init__(self, config, ledger: Ledger, control) -> None:
        self.ledger = ledger
        self._control = control
        self._admin_key = config.admin_key.encode() if config.admin_key else None
        # path: report(query, ledger) -> JSON body
        self._reports = {
            "/v1/organization/usage/completions": completions_usage,
            "/v1/organization/usage/embeddings": embeddings_usage,
            "/v1/organization/costs": costs,
            "/v1/organizations/usage_report/messages": usage_report,
            "/v1/organizations/cost_report": cost_report,
        }

    async def handle(self, scope, receive, send) -> None:
        path, method = scope["path"].rstrip("/"), scope["method"]
        anthropic = path.startswith("/v1/organizations/")
        try:
            body = await read_body(receive)
            report = self._reports.get(path)
            if report is None:
                raise SimError(404, f"Unknown request URL: {method} {path}", "unknown_url")
            if method != "GET":
                raise SimError(405, f"Method {method} not allowed on {path}", "method_not_allowed")
            sim = self._check_auth(scope["headers"], anthropic)
            self._control.record(scope["path"], method, scope, body)
            if sim:
                await self._faults(sim)
            payload = report(Query(scope["query_string"]), self.ledger)
        except SimError as exc:
            await send_error(send, exc, anthropic=anthropic)
            return
        await send_json(send, 200, payload)

    def _check_auth(self, raw_headers, anthropic: bool) -> dict[bytes, bytes]:
        """Check the admin key (and Anthropic's version header); the ``x-sim-*`` headers."""
        key = None
        version = None
        sim: dict[bytes, bytes] = {}
        for name, value in raw_headers:
            if name == b"authorization" and not anthropic:
                scheme, _, token = value.partition(b" ")
                key = token.strip() if scheme.lower() == b"bearer" else None
            elif name == b"x-api-key" and anthropic:
                key = value.strip()
            elif name == b"anthropic-version":
                version = value.strip()
            elif name[:6] == b"x-sim-":
                sim[name] = value
        if not key:
            message = (
                "x-api-key header is required"
                if anthropic
                else "You didn't provide an API key. You need to provide your admin API key in "
                "an Authorization header using Bearer auth (i.e. Authorization: Bearer KEY)."
            )
            raise SimError(401, message, "missing_api_key")
        if self._admin_key is not None and not hmac.compare_digest(key, self._admin_key):
            message = "invalid x-api-key" if anthropic else "Incorrect API key provided."
            raise SimError(401, message, "invalid_api_key")
        if anthropic and not version:
            raise SimError(400, "anthropic-version: header is required", "missing_header")
        return sim

    async def _faults(self, sim: dict[bytes, bytes]) -> None:
        opts = parse_options(sim)
        if opts.latency_ms:
            await asyncio.sleep(opts.latency_ms / 1000)
        if opts.status is not None and opts.status >= 400:
            code = "rate_limit_exceeded" if opts.status == 429 else None
            raise SimError(opts.status, f"Simulated upstream error (status {opts.status})", code)
