"""Validation of the file's response-cache policies: ``cache:`` at the top (the organisation),
on a model (``models[]``), a team (``teams[]``), a feature (``teams[].features[]``) and a
team's key (``teams[].keys[]: {name, cache}``, a key minted elsewhere, named by its name).

A ``cache`` mapping describes the whole policy: a left-out setting is its default (on, one
hour, 1 MiB, no tools). The names these hang on (models, teams, features) are checked by their
own sections; here an item whose name is unusable is skipped, its error reported there.
"""

from __future__ import annotations

from typing import Any

from django.utils.text import slugify

from provisioning.config.checker import Checker, join
from provisioning.config.spec import SLUG_MAX, CacheSpec
from teams.models import (
    CACHE_ENTRY_DEFAULT,
    CACHE_ENTRY_MAX,
    CACHE_ENTRY_MIN,
    CACHE_TTL_DEFAULT,
    CACHE_TTL_MAX,
    CacheScope,
)

CACHE_KEYS = ("enabled", "ttl_seconds", "max_entry_bytes", "tools")


def _flag(c: Checker, data: dict, name: str, path: str, default: bool) -> bool | None:
    return default if data.get(name) is None else c.boolean(data[name], join(path, name))


def _number(c: Checker, data: dict, name: str, path: str, *, default: int, bounds: tuple):
    value = data.get(name)
    if value is None:
        return default
    return c.integer(value, join(path, name), minimum=bounds[0], maximum=bounds[1])


def check_cache(
    c: Checker,
    raw: Any,
    path: str,
    *,
    scope: str,
    team: str | None = None,
    feature: str | None = None,
    key: str | None = None,
    model: str = "",
) -> CacheSpec | None:
    data = c.mapping(raw, path, required=(), optional=CACHE_KEYS)
    if data is None:
        return None
    enabled = _flag(c, data, "enabled", path, True)
    tools = _flag(c, data, "tools", path, False)
    ttl = _number(
        c, data, "ttl_seconds", path, default=CACHE_TTL_DEFAULT, bounds=(1, CACHE_TTL_MAX)
    )
    size = _number(
        c,
        data,
        "max_entry_bytes",
        path,
        default=CACHE_ENTRY_DEFAULT,
        bounds=(CACHE_ENTRY_MIN, CACHE_ENTRY_MAX),
    )
    if None in (enabled, tools, ttl, size):
        return None
    return CacheSpec(
        scope=scope,
        team=team,
        feature=feature,
        key=key,
        model=model,
        enabled=enabled,
        ttl_seconds=ttl,
        max_entry_bytes=size,
        tools=tools,
        path=path,
    )


def _list(value: Any) -> list:
    return value if isinstance(value, list) else []  # not a list: its section says so


def _slug(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    slug = slugify(value.strip())
    return slug if slug and len(slug) <= SLUG_MAX else None


def _team_caches(c: Checker, team: dict, path: str, add) -> None:
    slug = _slug(team.get("name"))
    if slug is None:
        return
    if "cache" in team:
        add(team["cache"], join(path, "cache"), scope=CacheScope.TEAM, team=slug)
    for i, item in enumerate(_list(team.get("features"))):
        feature = _slug(item.get("name")) if isinstance(item, dict) and "cache" in item else None
        if feature is not None:
            where = join(path, "features", i, "cache")
            add(item["cache"], where, scope=CacheScope.FEATURE, team=slug, feature=feature)
    seen: set[str] = set()
    for i, item in enumerate(c.items(team.get("keys"), join(path, "keys"))):
        where = join(path, "keys", i)
        entry = c.mapping(item, where, required=("name", "cache"))
        name = c.text(entry.get("name"), join(where, "name"), max_len=200) if entry else None
        if name is None or "cache" not in entry:
            continue  # (a missing cache: reported as required)
        if name in seen:
            c.err(join(where, "name"), f"key {name!r} is listed twice")
            continue
        seen.add(name)
        add(entry["cache"], join(where, "cache"), scope=CacheScope.KEY, team=slug, key=name)


def check_caches(c: Checker, top: dict) -> list[CacheSpec]:
    """Every ``cache`` of the file, in the file's order."""
    specs: list[CacheSpec] = []

    def add(raw, path: str, **target) -> None:
        spec = check_cache(c, raw, path, **target)
        if spec is not None:
            specs.append(spec)

    if "cache" in top:
        add(top["cache"], "cache", scope=CacheScope.ORG)
    for i, model in enumerate(_list(top.get("models"))):
        if isinstance(model, dict) and "cache" in model and isinstance(model.get("name"), str):
            where = join("models", i, "cache")
            add(model["cache"], where, scope=CacheScope.MODEL, model=model["name"].strip())
    for i, team in enumerate(_list(top.get("teams"))):
        if isinstance(team, dict):
            _team_caches(c, team, join("teams", i), add)
    return specs
