"""Model name -> the ordered list of deployments to try (the first that answers wins).

A configured model is tried alone; a group picks a member by its strategy, then the other
members, then its fallbacks; ``router:NAME`` (or a router's bare name) goes to its strong model
with the weak one as fallback until the cost router makes the per-prompt decision.
"""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass, field

from gateway.cache import GroupRecord, ModelRecord, OrgConfig
from gateway.errors import GatewayError, invalid
from gateway.providers.base import EMBEDDINGS

_round_robin: dict[str, itertools.count] = {}


@dataclass(slots=True)
class Plan:
    deployments: list[ModelRecord]
    router: str = ""
    router_scorer: str = ""
    router_decision: str = ""
    router_threshold: float | None = None
    router_score: float | None = None
    extra: dict = field(default_factory=dict)


def _group_order(group: GroupRecord) -> list[ModelRecord]:
    members = [m for m, _ in group.members]
    if not members:
        return list(group.fallbacks)
    if group.strategy == "round_robin":
        counter = _round_robin.setdefault(group.name, itertools.count())
        start = next(counter) % len(members)
        ordered = members[start:] + members[:start]
    else:  # weighted (other strategies fall back to weights until routing learns them)
        weights = [w for _, w in group.members]
        first = random.choices(members, weights=weights, k=1)[0]
        ordered = [first] + [m for m in members if m is not first]
    seen = {id(m) for m in ordered}
    return ordered + [m for m in group.fallbacks if id(m) not in seen]


def resolve(config: OrgConfig, requested: str, *, api: str) -> Plan:
    name = requested.strip()
    if name.startswith("router:") or name in config.routers:
        router = config.routers.get(name.removeprefix("router:"))
        if router is None:
            raise GatewayError(
                404, "model_not_found", f"The router '{name}' does not exist.", param="model"
            )
        return Plan(
            deployments=[router.strong, router.weak],
            router=router.name,
            router_scorer=router.scorer,
            router_threshold=router.threshold,
            router_decision="strong",
        )
    model = config.models.get(name)
    if model is not None:
        plan = Plan(deployments=[model])
    else:
        group = config.groups.get(name)
        if group is None:
            raise GatewayError(
                404,
                "model_not_found",
                f"The model '{name}' does not exist or you do not have access to it.",
                param="model",
            )
        plan = Plan(deployments=_group_order(group))
        if not plan.deployments:
            raise GatewayError(
                404, "model_not_found", f"The group '{name}' has no models.", param="model"
            )
    wants_embedding = api == EMBEDDINGS
    if any((m.mode == "embedding") != wants_embedding for m in plan.deployments):
        needed = "an embedding" if wants_embedding else "a chat"
        raise invalid(
            "invalid_value",
            f"'{name}' cannot be used here: this endpoint needs {needed} model.",
            "model",
        )
    return plan
