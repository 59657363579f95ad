"""The batch and file rows: every read scoped to the key that created them (another key of the
organisation, let alone another tenant, gets a 404 as if the id did not exist), the claims
that let one process meter a batch, and the polling slots. Blocking: called off the event
loop (``service.run_db``)."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta

from django.db import close_old_connections, transaction
from django.db.models import Q

from gateway.errors import GatewayError

LIST_MAX = 100
STALE_CREATE_SECONDS = 600  # a row whose upstream batch was never recorded: its process died


def new_id(prefix: str) -> str:
    return prefix + secrets.token_hex(12)


def _now() -> datetime:
    return datetime.now(UTC)


def not_found(kind: str, object_id: str) -> GatewayError:
    return GatewayError(404, "not_found", f"No such {kind} object: {object_id[:200]}", param="id")


# --- files ------------------------------------------------------------------------------------


def file_create(*, org_id: int, key_id: int, purpose: str, filename: str, data: bytes, lines: int):
    from gateway.models import BatchFile

    close_old_connections()
    return BatchFile.objects.create(
        file_id=new_id("file-"),
        org_id=org_id,
        key_id=key_id,
        purpose=purpose,
        filename=filename,
        size=len(data),
        lines=lines,
        content=data,
    )


def _files(org_id: int, key_id: int):
    from gateway.models import BatchFile

    return BatchFile.objects.filter(org_id=org_id, key_id=key_id)


def file_get(org_id: int, key_id: int, file_id: str, *, content: bool = False):
    close_old_connections()
    rows = _files(org_id, key_id).filter(file_id=file_id)
    row = (rows if content else rows.defer("content")).first()
    if row is None:
        raise not_found("File", file_id)
    return row


def file_list(
    org_id: int, key_id: int, *, purpose: str | None, after: str | None, limit: int, order: str
) -> tuple[list, bool]:
    """A page of the key's files, newest first (``order="desc"``) or oldest first, after the
    file ``after``; (rows, whether more follow)."""
    close_old_connections()
    rows = _files(org_id, key_id).defer("content")
    if purpose:
        rows = rows.filter(purpose=purpose)
    newest = order != "asc"
    rows = rows.order_by(*(("-created_at", "-id") if newest else ("created_at", "id")))
    if after:
        anchor = _files(org_id, key_id).filter(file_id=after).values("created_at", "id").first()
        if anchor is None:
            raise not_found("File", after)
        rows = rows.filter(_beyond(anchor, newest))
    page = list(rows[: limit + 1])
    return page[:limit], len(page) > limit


def _beyond(anchor: dict, newest: bool) -> Q:
    """Rows after ``anchor`` in (created_at, id) order, descending when ``newest``."""
    if newest:
        return Q(created_at__lt=anchor["created_at"]) | Q(
            created_at=anchor["created_at"], id__lt=anchor["id"]
        )
    return Q(created_at__gt=anchor["created_at"]) | Q(
        created_at=anchor["created_at"], id__gt=anchor["id"]
    )


def file_delete(org_id: int, key_id: int, file_id: str) -> None:
    close_old_connections()
    deleted, _ = _files(org_id, key_id).filter(file_id=file_id).delete()
    if not deleted:
        raise not_found("File", file_id)


# --- batches ----------------------------------------------------------------------------------


def batch_insert(**fields):
    from gateway.models import Batch

    close_old_connections()
    return Batch.objects.create(**fields)


def batch_update(pk: int, **fields) -> None:
    from gateway.models import Batch

    close_old_connections()
    Batch.objects.filter(pk=pk).update(**fields)


def batch_observe(pk: int, **fields) -> None:
    """The provider's view of a batch, kept until the batch is metered (a peer that metered it
    meanwhile has the final counts)."""
    from gateway.models import Batch

    close_old_connections()
    Batch.objects.filter(pk=pk, metered_at__isnull=True).update(**fields)


def _batches(org_id: int, key_id: int, api: str):
    from gateway.models import Batch

    return Batch.objects.filter(org_id=org_id, key_id=key_id, api=api)


_LIGHT = ("lines",)  # what a read for the client's object never needs


def batch_get(org_id: int, key_id: int, api: str, batch_id: str):
    close_old_connections()
    row = _batches(org_id, key_id, api).filter(batch_id=batch_id).defer(*_LIGHT).first()
    if row is None:
        raise not_found("Batch" if api == "openai" else "message batch", batch_id)
    return row


def batch_reload(pk: int, *, lines: bool = False):
    from gateway.models import Batch

    close_old_connections()
    rows = Batch.objects.filter(pk=pk)
    return (rows if lines else rows.defer(*_LIGHT)).first()


def batch_list(
    org_id: int, key_id: int, api: str, *, after: str | None, before: str | None, limit: int
) -> tuple[list, bool]:
    """A page of the key's batches, newest first: after the batch ``after`` (older ones), or
    before ``before`` (newer ones, still listed newest first)."""
    close_old_connections()
    rows = _batches(org_id, key_id, api).defer(*_LIGHT)
    if after or before:
        anchor_id = after or before
        anchor = (
            _batches(org_id, key_id, api).filter(batch_id=anchor_id).values("created_at", "id")
        ).first()
        if anchor is None:
            raise not_found("Batch" if api == "openai" else "message batch", anchor_id)
        if after:
            rows = rows.filter(_beyond(anchor, True)).order_by("-created_at", "-id")
        else:
            rows = rows.filter(_beyond(anchor, False)).order_by("created_at", "id")
            page = list(rows[: limit + 1])
            return list(reversed(page[:limit])), len(page) > limit
    else:
        rows = rows.order_by("-created_at", "-id")
    page = list(rows[: limit + 1])
    return page[:limit], len(page) > limit


def batch_delete(pk: int) -> None:
    from gateway.models import Batch, BatchFile

    close_old_connections()
    with transaction.atomic():
        row = Batch.objects.filter(pk=pk).values("org_id", "key_id", "output_file_id").first()
        if row and row["output_file_id"]:
            BatchFile.objects.filter(
                org_id=row["org_id"], key_id=row["key_id"], file_id=row["output_file_id"]
            ).delete()
        Batch.objects.filter(pk=pk).delete()


# --- metering claims and polling --------------------------------------------------------------


def batch_claim(pk: int, seconds: float) -> bool:
    """Take the batch for metering: one process wins (a conditional ``UPDATE``); a claim older
    than ``seconds`` (its process died) may be taken again."""
    from gateway.models import Batch

    close_old_connections()
    now = _now()
    return (
        Batch.objects.filter(pk=pk, metered_at__isnull=True)
        .filter(Q(claim_until__isnull=True) | Q(claim_until__lt=now))
        .update(claim_until=now + timedelta(seconds=seconds))
        == 1
    )


def batch_unclaim(pk: int) -> None:
    batch_update(pk, claim_until=None)


def batch_finish(pk: int, *, files: list[dict], **fields) -> bool:
    """The metered batch: its output files stored and its row final, in one transaction; False
    when another process finished it first."""
    from gateway.models import Batch, BatchFile

    close_old_connections()
    with transaction.atomic():
        done = Batch.objects.filter(pk=pk, metered_at__isnull=True).update(
            metered_at=_now(), claim_until=None, **fields
        )
        if done:
            BatchFile.objects.bulk_create([BatchFile(**f) for f in files])
    return bool(done)


def batches_reserved() -> list[tuple]:
    """(batch, its organisation's time zone) of every open batch that holds a reservation."""
    from gateway.models import Batch

    close_old_connections()
    rows = Batch.objects.filter(metered_at__isnull=True).exclude(reservation={})
    return [(b, b.org.tz) for b in rows.select_related("org").defer(*_LIGHT)]


def batches_due(interval: float, limit: int) -> tuple[list, list]:
    """(open batches not looked at for ``interval`` seconds, each now this process's to look
    at — another process that saw it too lost the conditional ``UPDATE`` —; rows whose
    upstream batch was never recorded, for a while: their process died creating them)."""
    from gateway.models import Batch

    close_old_connections()
    now = _now()
    open_rows = Batch.objects.filter(metered_at__isnull=True).defer(*_LIGHT)
    due = open_rows.exclude(upstream_id="").filter(
        Q(checked_at__isnull=True) | Q(checked_at__lt=now - timedelta(seconds=interval))
    )
    taken = []
    for row in due.order_by("checked_at")[:limit]:
        seen = (
            Q(checked_at__isnull=True) if row.checked_at is None else Q(checked_at=row.checked_at)
        )
        won = Batch.objects.filter(seen, pk=row.pk, metered_at__isnull=True).update(checked_at=now)
        if won:
            taken.append(row)
    stale = list(
        open_rows.filter(
            upstream_id="", created_at__lt=now - timedelta(seconds=STALE_CREATE_SECONDS)
        )[:limit]
    )
    return taken, stale
