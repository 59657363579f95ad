"""Conversation state of the Responses API, kept by the gateway itself.

``store`` (on by default, as at OpenAI) keeps each answer, and ``previous_response_id`` continues
from one. The gateway keeps the state rather than the provider: every deployment then gets the
whole conversation (a translated one has no state of its own, and a fallback may land on
another provider), each upstream call goes out with ``store: false``, and a key reads only what
it stored — another key of the same organisation, let alone another tenant, gets a 404, as if
the id did not exist. Stored text is redacted like evaluation pairs (``finops.redact``) and kept
``FINOPS_RESPONSES_RETENTION_DAYS`` (purged by ``gateway.tasks.responses_purge_task``).

Each stored response keeps only what its turn added (its new input items and its output) and
the id it continued from; a follow-up walks that chain back. A long conversation then costs its
size once, not once per turn (a coding agent's context would otherwise be stored again on
every call).

Blocking functions (database): called off the event loop.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs

from django.conf import settings
from django.db import close_old_connections

from finops.redact import redact_value
from gateway.dialects.responses import conversation_items, expand_input, input_items
from gateway.errors import GatewayError
from gateway.http import list_page, send_json


def _not_found(response_id: str, param: str | None = None) -> GatewayError:
    return GatewayError(
        404,
        "not_found",
        f"Response with id '{response_id}' not found.",
        param=param,
    )


def _live(key_id: int, response_id: str):
    from gateway.models import StoredResponse

    return StoredResponse.objects.filter(
        key_id=key_id, response_id=response_id, expires_at__gt=datetime.now(UTC)
    )


def _first(key_id: int, response_id: str, *fields):
    return _live(key_id, response_id).values_list(*fields).first()


async def patiently(run_db, fn, *args):
    """``await run_db(fn, *args)``, tried again for a moment while it answers 404: answers are
    written by the ledger thread of whichever process served them, within a batch or two (a
    GET or a follow-up sent the moment an answer arrived would otherwise miss it). The wait is
    on the event loop, never in a database thread, so bogus ids cannot tie those up."""
    deadline = time.monotonic() + settings.FINOPS_LEDGER_FLUSH_SECONDS * 2 + 0.25
    while True:
        try:
            return await run_db(fn, *args)
        except GatewayError as exc:
            if exc.status != 404 or time.monotonic() > deadline:
                raise
        await asyncio.sleep(0.05)


def responses_expand(key_id: int, body: dict) -> dict:
    """The request with ``previous_response_id`` replaced by the conversation it continues."""
    previous = body.get("previous_response_id")
    if previous is None:
        return body
    if not isinstance(previous, str) or not previous:
        raise GatewayError(
            400,
            "invalid_value",
            "'previous_response_id' must be a response id.",
            param="previous_response_id",
        )
    close_old_connections()
    items = _conversation(key_id, previous)
    return {**expand_input(items, body), "previous_response_id": previous}


MAX_TURNS = 1000  # a chain longer than this is cut at its oldest turns


def _conversation(key_id: int, last: str) -> list:
    """Every item of the conversation ending with response ``last``, oldest first."""
    turns: list[list] = []
    response_id: str | None = last
    while response_id and len(turns) < MAX_TURNS:
        row = _first(key_id, response_id, "items", "previous_id")
        if row is None:
            if not turns:
                raise _not_found(last, "previous_response_id")
            break  # an older turn expired: the conversation starts where it survives
        turns.append(row[0])
        response_id = row[1] or None
    return [item for turn in reversed(turns) for item in turn]


def _stored(*, org_id: int, key_id: int, new_input, previous: str, response: dict, now):
    from gateway.models import StoredResponse

    items = conversation_items(input_items(new_input), response)
    return StoredResponse(
        response_id=str(response.get("id")),
        org_id=org_id,
        key_id=key_id,
        created_at=now,
        expires_at=now + timedelta(days=settings.FINOPS_RESPONSES_RETENTION_DAYS),
        previous_id=previous,
        response=redact_value(response),
        items=redact_value(items),
    )


def responses_save(kept: list[dict]) -> None:
    """Keep each answer of ``kept`` (``response_save`` keyword arguments) in one statement: this
    turn's new input (before the conversation was expanded) and its output, continuing its
    ``previous`` ("" for a first turn). An id stored again replaces its row."""
    from gateway.models import StoredResponse

    close_old_connections()
    now = datetime.now(UTC)
    rows = {}
    for k in kept:
        row = _stored(**k, now=now)
        rows[row.response_id] = row  # one row per id within a statement
    StoredResponse.objects.bulk_create(
        list(rows.values()),
        update_conflicts=True,
        unique_fields=["response_id"],
        update_fields=[
            "org_id",
            "key_id",
            "created_at",
            "expires_at",
            "previous_id",
            "response",
            "items",
        ],
    )


def response_save(*, org_id: int, key_id: int, new_input, previous: str, response: dict) -> None:
    """Keep one answer (see ``responses_save``)."""
    responses_save(
        [
            {
                "org_id": org_id,
                "key_id": key_id,
                "new_input": new_input,
                "previous": previous,
                "response": response,
            }
        ]
    )


def response_read(key_id: int, response_id: str) -> dict:
    close_old_connections()
    row = _first(key_id, response_id, "response")
    if row is None:
        raise _not_found(response_id)
    return row[0]


MAX_ITEMS_PAGE = 100


def _kept_output(response: dict) -> int:
    """How many of ``items``' last entries are the response's output (``conversation_items``
    keeps the output items a follow-up can send back)."""
    return len(conversation_items([], response))


def response_input_items(key_id: int, response_id: str, query: dict) -> dict:
    """``GET /v1/responses/{id}/input_items``: the input items this response was given (its
    own turn's, as OpenAI lists them), a page at a time (``limit`` 1-100, default 20;
    ``order`` asc or desc, default desc; ``after`` an item id)."""
    close_old_connections()
    row = _first(key_id, response_id, "items", "response")
    if row is None:
        raise _not_found(response_id)
    items, response = row
    given = items[: max(0, len(items) - _kept_output(response))]
    listed = [
        {**item, "id": item.get("id") or f"msg_{response_id.removeprefix('resp_')}_{i}"}
        if isinstance(item, dict)
        else item
        for i, item in enumerate(given)
    ]
    if query.get("order", "desc") == "desc":
        listed.reverse()
    after = query.get("after")
    if after:
        ids = [item.get("id") for item in listed if isinstance(item, dict)]
        listed = listed[ids.index(after) + 1 :] if after in ids else []
    limit = query.get("limit", 20)
    return list_page(listed[:limit], has_more=len(listed) > limit)


def _items_query(scope) -> dict:
    raw = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    query: dict = {}
    if "limit" in raw:
        try:
            limit = int(raw["limit"][0])
        except ValueError:
            limit = 0
        if not 1 <= limit <= MAX_ITEMS_PAGE:
            raise GatewayError(
                400,
                "invalid_value",
                f"'limit' must be an integer from 1 to {MAX_ITEMS_PAGE}.",
                param="limit",
            )
        query["limit"] = limit
    if "order" in raw:
        if raw["order"][0] not in ("asc", "desc"):
            raise GatewayError(400, "invalid_value", "'order' must be asc or desc.", param="order")
        query["order"] = raw["order"][0]
    if "after" in raw:
        query["after"] = raw["after"][0][:200]
    return query


def response_delete(key_id: int, response_id: str) -> dict:
    close_old_connections()
    deleted, _ = _live(key_id, response_id).delete()
    if not deleted:
        raise _not_found(response_id)
    return {"id": response_id, "object": "response", "deleted": True}


def responses_purge() -> int:
    """Drop what is past its retention; returns how many."""
    from gateway.models import StoredResponse

    close_old_connections()
    deleted, _ = StoredResponse.objects.filter(expires_at__lte=datetime.now(UTC)).delete()
    return deleted


async def stored_response_route(send, record, rid, scope, run_db) -> None:
    """``GET`` / ``DELETE /v1/responses/{id}`` and ``GET /v1/responses/{id}/input_items``, for
    the key that stored it."""
    method, path = scope["method"], scope["path"]
    response_id = path.removeprefix("/v1/responses/")
    if response_id.endswith("/input_items") and method == "GET":
        response_id = response_id.removesuffix("/input_items")
        if response_id and "/" not in response_id:
            query = _items_query(scope)
            found = await patiently(run_db, response_input_items, record.key_id, response_id, query)
            await send_json(send, 200, found, rid)
            return
    if not response_id or "/" in response_id:
        raise GatewayError(404, "unknown_url", f"Unknown request URL: {method} {path}")
    if method == "GET":
        found = await patiently(run_db, response_read, record.key_id, response_id)
        await send_json(send, 200, found, rid)
    elif method == "DELETE":
        gone = await patiently(run_db, response_delete, record.key_id, response_id)
        await send_json(send, 200, gone, rid)
    else:
        raise GatewayError(
            405,
            "method_not_allowed",
            f"Method {method} not allowed; use GET or DELETE.",
            headers=[(b"allow", b"GET, DELETE")],
        )
