"""The savings statement as rows (the savings API): the day rollups' saving measures, scoped to
the user exactly as the spend API is (``reports.selectors.spend``): whole-org readers read their
organisations, leads and members the rows of their own teams, nobody another org.

Rows are always split by lever, as they always carry ``org``: per group one row per lever that
saved or spent something (``router``, ``cache``, ``batch``, ``downgrade``, ``fallback``) and one
with ``lever`` null for the spend no lever touched, so ``cost_usd`` over the rows adds up to the
spend and ``saved_usd`` to the ledger's ``saved_usd``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from finops.money import money
from gateway.savings import LEVERS
from reports.models import DailySpend
from reports.savings import Savings, savings_sums
from reports.selectors.spend import _label, _spend_filter
from teams.models import Organization, Team
from teams.selectors import access_for_user

SAVINGS_DIMENSIONS = ("team", "feature", "model", "lever", "day")
_COLUMN = {"team": "team_id", "feature": "feature", "model": "model", "day": "day"}
_LEVER_ORDER = {lever: i for i, lever in enumerate(LEVERS)}
ZERO = Decimal(0)


@dataclass(frozen=True)
class SavingsQuery:
    group_by: tuple[str, ...]
    start: date
    end: date
    org: str | None = None
    team: str | None = None


def savings_by_dimension(user, query: SavingsQuery) -> dict:
    """``{"rows": [...], "totals": {...}}`` for ``query`` over local days ``start..end``
    (inclusive), read from the day rollups and scoped to ``user``. Money as fixed-point
    strings; a dimension that is missing (no team, no feature) is ``null``."""
    access = access_for_user(user)
    org_ids = set(access.org_ids)
    if query.org is not None:
        org_ids &= set(Organization.objects.filter(slug=query.org).values_list("id", flat=True))
    orgs = {o.pk: o for o in Organization.objects.filter(id__in=org_ids)}
    queryset = DailySpend.objects.filter(_spend_filter(access)).filter(
        org_id__in=list(orgs), day__gte=query.start, day__lte=query.end
    )
    if query.team is not None:
        team_ids = Team.objects.filter(org_id__in=list(orgs), slug=query.team).values_list(
            "id", flat=True
        )
        queryset = queryset.filter(team_id__in=list(team_ids))

    columns = ["org_id", *(_COLUMN[d] for d in query.group_by if d in _COLUMN)]
    raw = list(queryset.values(*columns).annotate(**savings_sums()).order_by(*columns))
    team_slugs = dict(
        Team.objects.filter(id__in={r["team_id"] for r in raw if "team_id" in r}).values_list(
            "id", "slug"
        )
    )
    totals = Savings()
    rows: list[dict] = []
    for r in raw:
        group = Savings.of(r)
        totals.add(r)
        labels: dict = {"org": orgs[r["org_id"]].slug}
        for dim in query.group_by:
            if dim == "team":
                labels["team"] = _label(team_slugs, r["team_id"])
            elif dim == "day":
                labels["day"] = r["day"].isoformat()
            elif dim in ("feature", "model"):
                labels[dim] = r[dim] or None
        rows += _lever_rows(labels, group)
    rows.sort(
        key=lambda row: (
            row.get("day", ""),
            -Decimal(row["saved_usd"]),
            _LEVER_ORDER.get(row["lever"], len(LEVERS)),
            -Decimal(row["cost_usd"]),
        )
    )
    return {"rows": rows, "totals": _totals(totals)}


def _lever_rows(labels: dict, group: Savings) -> list[dict]:
    """One group split by lever: the levers with a saving or a spend, then the rest of the
    spend (no lever) when there is any."""
    out = []
    for lever in LEVERS:
        saved, spend = group.saved[lever], group.spend[lever]
        if saved or spend:
            out.append(
                {**labels, "lever": lever, "saved_usd": money(saved), "cost_usd": money(spend)}
            )
    rest = group.cost - sum(group.spend.values(), ZERO)
    if rest:
        out.append({**labels, "lever": None, "saved_usd": money(ZERO), "cost_usd": money(rest)})
    return out


def _totals(totals: Savings) -> dict:
    data = totals.as_json()
    return {
        "cost_usd": data["cost"],
        "saved_usd": data["saved"],
        "without_levers_usd": data["without_levers"],
        "saved_percent": data["saved_pct"],
        "levers": [
            {
                "lever": lever["lever"],
                "method": lever["method"],
                "saved_usd": lever["saved"],
                "cost_usd": lever["spend"],
            }
            for lever in data["levers"]
        ],
        "shadow_cost_usd": _lever_cost(data, "shadow"),
        "judge_cost_usd": _lever_cost(data, "judge"),
        "lever_cost_usd": data["lever_cost"],
        "net_saved_usd": data["net_saved"],
    }


def _lever_cost(data: dict, name: str) -> str:
    return next(c["cost"] for c in data["lever_costs"] if c["name"] == name)
