"""What a lever saved on one ledger row: ``saved_usd`` and ``saving_lever`` at metering time.

Each lever's saving is the same usage priced at its counterfactual model's price in force at the
call's start, less what the row actually cost:

- ``router``: a call the router sent to its weak model, against the router's strong model (the
  all-strong counterfactual). A strong decision saves nothing. Signed: a weak model that costs
  more for these tokens records the loss.
- ``downgrade``: a call an exhausted ``downgrade`` budget sent to its cheaper model, against the
  model asked for (a configured model itself; a group's cheapest member, the least it could
  have cost; a router's choice). Signed, like the router.
- ``fallback``: a call answered by another deployment than its first choice, against that first
  choice, only when the fallback was cheaper: a dearer fallback is what availability cost, not a
  lever, and records nothing.

One lever per row, router before downgrade before fallback (the first that applies takes the
row; a zero saving leaves the lever blank), and only on the successful attempt: failed attempts,
shadow calls and the judge save nothing. ``cache`` and ``batch`` are set where those rows are
written (the response cache, the Batch API), replacing this. The router's strong model and the
model a downgraded call asked for come from the org's routing configuration as this process
holds it (``runtime.configs``: a dict read, no database); in the moment a reload has dropped it,
such a row records no saving. A fallback's first choice is on the call's plan.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal

from gateway.pricing import Cost, Usage, cost_of, price_at
from gateway.records import ModelRecord, OrgConfig

LEVERS = ("router", "cache", "batch", "downgrade", "fallback")
ZERO = Decimal(0)
NONE = (ZERO, "")


def saving(
    call, model: ModelRecord, usage: Usage, cost: Cost, *, configs: Mapping[int, OrgConfig]
) -> tuple[Decimal, str]:
    """(saved USD, lever) of the successful attempt of ``call`` on ``model``; ``configs``: the
    org configurations this process holds (``runtime.configs``)."""
    plan = call.plan
    router = plan.router_decision == "weak"
    downgrade = call.budget_action == "downgrade"
    first = plan.deployments[0] if plan.deployments else None
    fallback = first is not None and first.name != model.name
    if not (router or downgrade or fallback):
        return NONE  # the common case: nothing to price
    if router or downgrade:
        config = configs.get(call.record.org_id)
        if config is None:
            return NONE
        if router:
            record = config.routers.get(plan.router)
            lever, against = "router", ((record.strong,) if record is not None else ())
        else:
            lever, against = "downgrade", _requested(config, call.requested)
    else:
        lever, against = "fallback", (first,)
    # the counterfactual's cost for the same usage at the call's start (unpriced ones skipped;
    # of a group's members, the cheapest: never claim more than the lever surely saved)
    priced = [p for m in against if (p := price_at(m.prices, call.started)) is not None]
    if not priced:
        return NONE
    saved = min(cost_of(usage, p).total for p in priced) - cost.total
    if not saved or (lever == "fallback" and saved < 0):
        return NONE
    return saved, lever


def _requested(config: OrgConfig, requested: str) -> tuple[ModelRecord, ...]:
    """What a downgraded call asked for: the configured model by that name, a group's members
    (the caller takes the cheapest for the usage), a router's strong model (a router that chose
    its weak one has the row as its own lever)."""
    name = requested.strip()
    model = config.models.get(name)
    if model is not None:
        return (model,)
    group = config.groups.get(name)
    if group is not None:
        return tuple(m for m, _weight in group.members)
    router = config.routers.get(name.removeprefix("router:"))
    return (router.strong,) if router is not None else ()
