"""The audit log's writer, and the tail every write service ends with.

A service checks what it must (roles are checked by its caller, the API or the admin), applies
the caller's changes to the fields it lets change (``changes_apply``), then ``audited_save``:
validate (``full_clean``), save and record one audit entry, the save and the entry in one
transaction. ``audited_delete`` records the entry, then deletes, in one transaction.

Snapshots are functions of the object (``team_snapshot``, ``provider_snapshot``...): names and
settings only, never a secret. The control-plane services (``teams.services``) and the catalog
services (``gateway.services.catalog``) both use these; ``teams.services`` re-exports
``audit_record`` for the callers that record an entry of their own.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from django.core.exceptions import ValidationError
from django.db import models, transaction

from teams.models import AuditEntry, Organization

M = TypeVar("M", bound=models.Model)
Snapshot = Callable[[Any], dict]


def _actor_label(actor) -> str:
    if actor is None:
        return "system"
    return getattr(actor, "username", None) or str(actor)


def audit_record(
    *,
    actor,
    org: Organization | None,
    action: str,
    obj: Any,
    before: dict | None = None,
    after: dict | None = None,
) -> AuditEntry:
    """Record one control-plane change. Callers pass snapshots that never contain a secret."""
    return AuditEntry.objects.create(
        org=org,
        actor=actor if getattr(actor, "pk", None) else None,
        actor_label=_actor_label(actor),
        action=action,
        object_type=type(obj).__name__.lower(),
        object_id=str(getattr(obj, "pk", "") or ""),
        object_repr=str(obj)[:300],
        before=before,
        after=after,
    )


def changes_apply(obj: Any, changes: dict[str, Any], *, editable: Iterable[str]) -> None:
    """Set ``changes`` on ``obj``; a field outside ``editable`` is refused, naming it."""
    unknown = set(changes) - set(editable)
    if unknown:
        raise ValidationError({name: "cannot be changed" for name in sorted(unknown)})
    for name, value in changes.items():
        setattr(obj, name, value)


def audited_save(
    obj: M,
    *,
    actor,
    org: Organization | None,
    action: str,
    snapshot: Snapshot,
    before: dict | None = None,
    skip_unchanged: bool = False,
) -> M:
    """Validate ``obj`` (``full_clean``, which raises ``ValidationError``), save it and record
    ``action`` with ``before`` and ``snapshot(obj)`` as after, in one transaction.

    ``before`` is None for a create. With ``skip_unchanged``, a validated object whose snapshot
    equals ``before`` is neither saved nor recorded."""
    obj.full_clean()
    if skip_unchanged and snapshot(obj) == before:
        return obj
    with transaction.atomic():
        obj.save()
        audit_record(
            actor=actor, org=org, action=action, obj=obj, before=before, after=snapshot(obj)
        )
    return obj


def audited_delete(
    obj: models.Model,
    *,
    actor,
    org: Organization | None,
    action: str,
    snapshot: Snapshot,
) -> None:
    """Record ``action`` with ``snapshot(obj)`` as before, then delete ``obj``, in one
    transaction (the entry keeps the id the object had)."""
    with transaction.atomic():
        audit_record(actor=actor, org=org, action=action, obj=obj, before=snapshot(obj))
        obj.delete()
