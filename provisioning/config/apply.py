"""``config_apply``: validate, plan and (unless ``dry_run``) apply a file, in one transaction.

Applying is idempotent: the plan is the difference between the file and the database, and an
empty plan writes nothing. Each change records its own audit entry as it runs (through the
``teams`` and ``gateway`` services it calls); a change the database refuses becomes a
``ConfigError`` naming it, and the transaction leaves everything as it was.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import ProtectedError

from provisioning.config.changes import Change
from provisioning.config.checker import messages
from provisioning.config.plan import config_plan
from provisioning.config.spec import ConfigError
from provisioning.config.validate import config_validate


@dataclass
class ConfigResult:
    org_slug: str
    changes: list[Change]
    dry_run: bool

    @property
    def changed(self) -> bool:
        return bool(self.changes)


def _run(change: Change) -> None:
    """Apply one change; a refusal becomes a ``ConfigError`` labelled with the change."""
    try:
        change.apply()
    except ValidationError as exc:
        raise ConfigError([f"{change.label}: {messages(exc)}"]) from exc
    except ProtectedError as exc:
        used_by = ", ".join(sorted({str(o) for o in exc.protected_objects})[:5])
        raise ConfigError([f"{change.label}: still used by {used_by}"]) from exc


def config_apply(
    *, data: Any, dry_run: bool = False, prune: bool = False, actor=None
) -> ConfigResult:
    """Validate ``data`` (parsed YAML), plan, and unless ``dry_run`` apply, in one transaction.

    ``actor`` is the user recorded in the audit log (None records "system"). Raises
    ``ConfigError`` listing every problem; nothing is written then.
    """
    spec = config_validate(data=data, prune=prune)
    with transaction.atomic():
        changes = config_plan(spec=spec, prune=prune, actor=actor)
        if not dry_run:
            for change in changes:
                _run(change)
    return ConfigResult(org_slug=spec.org_slug, changes=changes, dry_run=dry_run)
