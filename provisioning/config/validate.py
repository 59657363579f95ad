"""``config_validate``: the whole file checked against the schema, then its references.

The sections are checked by ``validate_catalog.py`` and ``validate_teams.py``; this module
owns the top level (the organisation and its timezone), the names each section must not list
twice, and the references between sections, which may name objects already in the database
(except with ``prune``). Every problem is collected before ``ConfigError`` is raised.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any

from django.core.exceptions import ValidationError

from gateway.models import LLMModel, Provider
from provisioning.config.checker import Checker, join, messages
from provisioning.config.spec import ConfigError, ConfigSpec
from provisioning.config.validate_cache import check_caches
from provisioning.config.validate_catalog import (
    check_group,
    check_model,
    check_provider,
    check_router,
)
from provisioning.config.validate_teams import check_budgets, check_team
from teams.models import BudgetScope, Organization, validate_timezone

_TOP_OPTIONAL = (
    "timezone",
    "providers",
    "models",
    "budgets",
    "groups",
    "routers",
    "teams",
    "cache",
)


def _timezone(c: Checker, top: dict) -> str | None:
    if top.get("timezone") is None:
        return None
    tz = c.text(top["timezone"], "timezone", max_len=64)
    if tz is not None:
        try:
            validate_timezone(tz)
        except ValidationError as exc:
            c.err("timezone", messages(exc))
    return tz


def _section(c: Checker, top: dict, section: str, check) -> list:
    """Each item of a top-level list checked by ``check`` (``None`` for an invalid one)."""
    return [
        check(c, raw, join(section, i)) for i, raw in enumerate(c.items(top.get(section), section))
    ]


def _unique(c: Checker, items: list, attr: str, section: str, what: str) -> list:
    """The valid items, less any whose ``attr`` an earlier item already has (an error)."""
    seen: set[str] = set()
    kept = []
    for i, item in enumerate(items):
        if item is None:
            continue
        ident = getattr(item, attr)
        if ident in seen:
            c.err(join(section, i, "name"), f"{what} {ident!r} is listed twice")
            continue
        seen.add(ident)
        kept.append(item)
    return kept


def config_validate(*, data: Any, prune: bool = False) -> ConfigSpec:
    """Check the whole file, then its references; raise ``ConfigError`` with every problem.

    References (a model's provider, a group's members, a budget's ``downgrade_to``) may name
    objects already in the database, except with ``prune``, where only the file counts.
    """
    c = Checker()
    top = c.mapping(data, "", required=("organization",), optional=_TOP_OPTIONAL)
    if top is None:
        raise ConfigError(c.errors)
    org_slug = c.slug(top.get("organization"), "organization")
    tz = _timezone(c, top)
    providers = _section(c, top, "providers", check_provider)
    models = _section(c, top, "models", check_model)
    groups = _section(c, top, "groups", check_group)
    routers = _section(c, top, "routers", check_router)
    budgets = check_budgets(c, top.get("budgets"), "budgets", scope=BudgetScope.ORG)
    teams = _section(c, top, "teams", partial(check_team, budgets=budgets))
    spec = ConfigSpec(
        org_slug=org_slug or "",
        org_label=str(top.get("organization", "")).strip(),
        timezone=tz,
        providers=_unique(c, providers, "slug", "providers", "provider"),
        models=_unique(c, models, "name", "models", "model"),
        groups=_unique(c, groups, "name", "groups", "group"),
        routers=_unique(c, routers, "name", "routers", "router"),
        teams=_unique(c, teams, "slug", "teams", "team"),
        budgets=budgets,
        cache_policies=check_caches(c, top),
    )
    if org_slug:
        _check_references(c, spec, prune=prune)
    if c.errors:
        raise ConfigError(c.errors)
    return spec


# --- references -----------------------------------------------------------------------------


@dataclass
class _Known:
    """The names a reference may use, and what to add to an unknown one's message."""

    providers: set[str]
    models: set[str]
    hint: str

    def model(self, c: Checker, name: str, path: str) -> None:
        if name not in self.models:
            c.err(path, f"unknown model {name!r}{self.hint}")


def _known(spec: ConfigSpec, *, prune: bool) -> _Known:
    org = Organization.objects.filter(slug=spec.org_slug).first()
    providers = {p.slug for p in spec.providers}
    models = {m.name for m in spec.models}
    if org is not None and not prune:
        providers |= set(Provider.objects.filter(org=org).values_list("slug", flat=True))
        models |= set(LLMModel.objects.filter(org=org).values_list("name", flat=True))
    hint = " (with --prune, references must be in the file)" if prune else ""
    return _Known(providers=providers, models=models, hint=hint)


def _group_references(c: Checker, spec: ConfigSpec, known: _Known) -> None:
    for g in spec.groups:
        for i, (model, _weight) in enumerate(g.members):
            known.model(c, model, join(g.path, "members", i, "model"))
        for i, model in enumerate(g.fallbacks):
            known.model(c, model, join(g.path, "fallbacks", i))
        if g.name in known.models:
            c.err(join(g.path, "name"), f"{g.name!r} is already a model name")


def _router_references(c: Checker, spec: ConfigSpec, known: _Known) -> None:
    groups = {g.name for g in spec.groups}
    for r in spec.routers:
        for attr in ("strong", "weak"):
            known.model(c, getattr(r, attr), join(r.path, attr))
        if r.judge_model:
            known.model(c, r.judge_model, join(r.path, "judge_model"))
        if r.name in known.models or r.name in groups:
            c.err(join(r.path, "name"), f"{r.name!r} is already a model or group name")


def _check_references(c: Checker, spec: ConfigSpec, *, prune: bool) -> None:
    known = _known(spec, prune=prune)
    for m in spec.models:
        if m.provider not in known.providers:
            c.err(join(m.path, "provider"), f"unknown provider {m.provider!r}{known.hint}")
    _group_references(c, spec, known)
    _router_references(c, spec, known)
    for b in spec.budgets:
        if b.downgrade_to:
            known.model(c, b.downgrade_to, join(b.path, "downgrade_to"))
