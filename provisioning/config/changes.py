"""A plan's building blocks: ``Change`` (one line of the plan, and how it prints) and ``Plan``
(the state the per-kind planners in ``plan_*.py`` and ``prune.py`` share and fill in).

A change's ``apply`` runs later, in ``apply.py``; it looks objects up when it runs, so it may
rely on an earlier change of the same plan (a model on the provider created just before it).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from functools import partial
from typing import Any

from gateway.models import LLMModel, Provider
from provisioning.config.spec import ConfigSpec
from teams.models import Organization, Team


def fmt(value: Any) -> str:
    """A value as the plan prints it: ``-`` for nothing, money with at least two places."""
    if value is None:
        return "-"
    if isinstance(value, Decimal):
        return _fmt_decimal(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(fmt(v) for v in value) + "]"
    return str(value)


def _fmt_decimal(value: Decimal) -> str:
    text = format(value.normalize(), "f")
    if "." not in text:
        return f"{text}.00"
    whole, frac = text.split(".")
    return f"{whole}.{frac.ljust(2, '0')}"


@dataclass
class Change:
    """One line of the plan. ``apply`` performs it and records its audit entry."""

    op: str  # create | update | delete
    label: str  # e.g. "model gpt-4o", "month budget of team search"
    fields: dict[str, tuple[Any, Any]] = field(default_factory=dict)
    note: str = ""
    apply: Callable[[], None] | None = field(default=None, repr=False, compare=False)

    def __str__(self) -> str:
        if self.op == "create" and all(before is None for before, _a in self.fields.values()):
            detail = ", ".join(f"{k}={fmt(after)}" for k, (_b, after) in self.fields.items())
            text = f"create {self.label}" + (f" ({detail})" if detail else "")
        elif self.op in ("create", "update"):
            detail = ", ".join(
                f"{k}: {fmt(before)} -> {fmt(after)}" for k, (before, after) in self.fields.items()
            )
            text = f"{self.op} {self.label}: {detail}"
        else:
            text = f"delete {self.label}"
        return text + (f" [{self.note}]" if self.note else "")


# --- field dictionaries: {name: (before, after)} --------------------------------------------


def diff(current: dict[str, Any], wanted: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """The wanted values that differ from the current ones."""
    return {k: (current.get(k), v) for k, v in wanted.items() if current.get(k) != v}


def created(wanted: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """The fields a create prints: the wanted values that say something."""
    return {k: (None, v) for k, v in wanted.items() if v not in (None, "", [])}


def changed(fields: dict[str, tuple[Any, Any]]) -> dict[str, Any]:
    """The new values of ``fields``, as keyword arguments for an update service."""
    return {k: after for k, (_before, after) in fields.items()}


# --- the plan being built -------------------------------------------------------------------


class Plan:
    """The changes in order, with what the planners share to build them; reads only.

    ``org`` is None while the organisation does not exist yet: its create change sets it, and
    the changes after it read ``org`` when they run. ``errors`` refuse the whole plan (prune
    guards); ``pruned`` holds the ids of the objects each prunable kind deletes.
    """

    def __init__(self, spec: ConfigSpec, *, prune: bool, actor) -> None:
        self.spec = spec
        self.prune = prune
        self.actor = actor
        self.org = Organization.objects.filter(slug=spec.org_slug).first()
        self.changes: list[Change] = []
        self.errors: list[str] = []
        self.pruned: dict[str, list[int]] = {}

    def add(self, op: str, label: str, fields, fn, /, *args, note: str = "", **kwargs) -> None:
        """Append a change whose ``apply`` is ``fn(*args, **kwargs)``."""
        change = Change(
            op=op, label=label, fields=fields, note=note, apply=partial(fn, *args, **kwargs)
        )
        self.changes.append(change)

    def existing(self, queryset):
        """``queryset`` restricted to the organisation (nothing while it does not exist)."""
        return queryset.filter(org=self.org) if self.org is not None else queryset.none()

    # lookups for ``apply`` functions, which run after the changes before them
    def provider(self, slug: str) -> Provider:
        return Provider.objects.get(org=self.org, slug=slug)

    def model(self, name: str | None) -> LLMModel | None:
        return LLMModel.objects.get(org=self.org, name=name) if name else None

    def team(self, slug: str) -> Team:
        return Team.objects.get(org=self.org, slug=slug)
