"""Validation of the file's ``teams`` (limits, leads, features) and of every ``budgets`` list.

Budgets sit at three levels of the file (the organisation, a team, a feature); each list is
checked by ``check_budgets`` and collected into one flat list of ``BudgetSpec``, which names
its scope, team and feature. Like the catalogue checks, each ``check_*`` records every problem
on the ``Checker`` and returns ``None`` for an item with an error.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.validators import UnicodeUsernameValidator
from django.core.exceptions import ValidationError
from django.core.validators import validate_email

from provisioning.config.checker import Checker, join
from provisioning.config.spec import (
    BUDGET_DIGITS,
    BUDGET_PLACES,
    TEAM_LIMITS,
    BudgetSpec,
    FeatureSpec,
    TeamSpec,
)
from teams.models import BudgetAction, BudgetPeriod, BudgetScope, default_thresholds

_BUDGET_OPTIONAL = ("action", "alert_at", "notify", "downgrade_to", "fail_open")


# --- budgets --------------------------------------------------------------------------------


def _downgrade_to(c: Checker, data: dict, path: str, action: str | None) -> str | None:
    """The model a downgrade budget switches to: required with that action, refused without."""
    downgrade_to = None
    if data.get("downgrade_to") is not None:
        downgrade_to = c.model_name(data["downgrade_to"], join(path, "downgrade_to"))
    if action == BudgetAction.DOWNGRADE and data.get("downgrade_to") is None:
        c.err(join(path, "downgrade_to"), "required when the action is downgrade")
    if action not in (None, BudgetAction.DOWNGRADE) and data.get("downgrade_to") is not None:
        c.err(join(path, "downgrade_to"), "only used when the action is downgrade")
    return downgrade_to


def _thresholds(c: Checker, data: dict, path: str) -> list[int] | None:
    """``alert_at``: percentages from 1 to 1000; left out, the default thresholds."""
    if "alert_at" not in data:
        return default_thresholds()
    thresholds: list[int] | None = []
    for i, value in enumerate(c.items(data["alert_at"], join(path, "alert_at"))):
        pct = c.integer(value, join(path, "alert_at", i), minimum=1, maximum=1000)
        if pct is None:
            thresholds = None
        elif thresholds is not None:
            thresholds.append(pct)
    return thresholds


def _recipients(c: Checker, data: dict, path: str) -> list[str] | None:
    """``notify``: e-mail addresses, each once, in the file's order."""
    recipients: list[str] | None = []
    for i, value in enumerate(c.items(data.get("notify"), join(path, "notify"))):
        where = join(path, "notify", i)
        address = c.text(value, where, max_len=254)
        try:
            if address is not None:
                validate_email(address)
        except ValidationError:
            c.err(where, f"{address!r} is not an e-mail address")
            address = None
        if address is None:
            recipients = None
        elif recipients is not None and address not in recipients:
            recipients.append(address)
    return recipients


def _check_budget(
    c: Checker, raw: Any, path: str, *, scope: str, team: str | None, feature: str | None
) -> BudgetSpec | None:
    data = c.mapping(raw, path, required=("period", "limit_usd"), optional=_BUDGET_OPTIONAL)
    if data is None:
        return None
    period = c.choice(data.get("period"), join(path, "period"), BudgetPeriod)
    limit = c.money(
        data.get("limit_usd"), join(path, "limit_usd"), places=BUDGET_PLACES, digits=BUDGET_DIGITS
    )
    action = c.choice(
        data.get("action"), join(path, "action"), BudgetAction, default=BudgetAction.BLOCK
    )
    downgrade_to = _downgrade_to(c, data, path, action)
    fail_open = False  # fail closed, unless the file says otherwise
    if data.get("fail_open") is not None:
        fail_open = c.boolean(data["fail_open"], join(path, "fail_open"))
    thresholds = _thresholds(c, data, path)
    recipients = _recipients(c, data, path)
    if None in (period, limit, action, thresholds, recipients, fail_open):
        return None
    return BudgetSpec(
        scope=scope,
        team=team,
        feature=feature,
        period=period,
        limit_usd=limit,
        action=action,
        downgrade_to=downgrade_to,
        alert_thresholds=sorted(set(thresholds)),
        recipients=recipients,
        fail_open=fail_open,
        path=path,
    )


def check_budgets(
    c: Checker,
    raw: Any,
    path: str,
    *,
    scope: str,
    team: str | None = None,
    feature: str | None = None,
) -> list[BudgetSpec]:
    """One ``budgets`` list: at most one budget per period."""
    budgets: list[BudgetSpec] = []
    periods: set[str] = set()
    for i, item in enumerate(c.items(raw, path)):
        budget = _check_budget(c, item, join(path, i), scope=scope, team=team, feature=feature)
        if budget is None:
            continue
        if budget.period in periods:
            c.err(join(path, i, "period"), f"a {budget.period} budget is already listed")
            continue
        periods.add(budget.period)
        budgets.append(budget)
    return budgets


# --- teams ----------------------------------------------------------------------------------


def _team_limits(c: Checker, data: dict, path: str) -> dict[str, int | None]:
    """The limits the team names (``null`` removes one); invalid ones are left out."""
    limits: dict[str, int | None] = {}
    for key in TEAM_LIMITS:
        if key not in data:
            continue
        value = data[key]
        if value is not None:
            value = c.positive_integer(value, join(path, key))
            if value is None:
                continue
        limits[key] = value
    return limits


def _team_leads(c: Checker, data: dict, path: str) -> list[str]:
    """The leads' usernames, each once (compared without case); invalid ones are left out."""
    leads: list[str] = []
    for i, item in enumerate(c.items(data.get("leads"), join(path, "leads"))):
        where = join(path, "leads", i)
        username = c.text(item, where, max_len=150)
        if username is None:
            continue
        try:
            UnicodeUsernameValidator()(username)
        except ValidationError:
            c.err(where, f"{username!r} is not a valid username (an e-mail address is fine)")
            continue
        if username.lower() not in {u.lower() for u in leads}:
            leads.append(username)
    return leads


def _check_feature(
    c: Checker, item: Any, where: str, listed: list[FeatureSpec]
) -> FeatureSpec | None:
    entry = c.mapping(
        item, where, required=("name",), optional=("budgets", "default_model", "cache")
    )
    if entry is None:
        return None
    feature_slug = c.slug(entry.get("name"), join(where, "name"))
    if feature_slug is None:
        return None
    if feature_slug in {f.slug for f in listed}:
        c.err(join(where, "name"), f"feature {feature_slug!r} is listed twice")
        return None
    default_model = entry.get("default_model")
    if default_model is not None:
        default_model = c.text(default_model, join(where, "default_model"), max_len=200)
    return FeatureSpec(slug=feature_slug, label=entry["name"].strip(), default_model=default_model)


def _team_features(
    c: Checker, data: dict, path: str, team: str | None, budgets: list[BudgetSpec]
) -> list[FeatureSpec]:
    """The team's features (a feature may be written as just its name); their budgets are
    added to ``budgets``."""
    features: list[FeatureSpec] = []
    for i, item in enumerate(c.items(data.get("features"), join(path, "features"))):
        where = join(path, "features", i)
        if isinstance(item, str):
            item = {"name": item}
        feature = _check_feature(c, item, where, features)
        if feature is None:
            continue
        features.append(feature)
        budgets += check_budgets(
            c,
            item.get("budgets"),
            join(where, "budgets"),
            scope=BudgetScope.FEATURE,
            team=team,
            feature=feature.slug,
        )
    return features


def check_team(c: Checker, raw: Any, path: str, budgets: list[BudgetSpec]) -> TeamSpec | None:
    """One team; its budgets and its features' budgets are added to ``budgets``."""
    data = c.mapping(
        raw,
        path,
        required=("name",),
        # ``cache`` and ``keys`` (the keys' cache policies) are validate_cache's
        optional=("leads", "features", "budgets", "cache", "keys", *TEAM_LIMITS),
    )
    if data is None:
        return None
    slug = c.slug(data.get("name"), join(path, "name"))
    label = data["name"].strip() if slug else ""
    limits = _team_limits(c, data, path)
    leads = _team_leads(c, data, path)
    features = _team_features(c, data, path, slug, budgets)
    budgets += check_budgets(
        c, data.get("budgets"), join(path, "budgets"), scope=BudgetScope.TEAM, team=slug
    )
    if slug is None:
        return None
    return TeamSpec(slug=slug, label=label, leads=leads, features=features, limits=limits)
