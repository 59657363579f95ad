"""Model name -> the ordered list of deployments to try (the first that answers wins).

A configured model is tried alone; a group orders its members by its strategy (weighted,
round_robin, least_busy, latency, cost: see ``gateway.balancer``), then its fallbacks;
``router:NAME`` (or a router's bare name) goes to its strong model with the weak one as
fallback until the cost router makes the per-prompt decision. Skipping cooled-down models and
models whose context window is too small happens while the call runs (``gateway.proxy``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from gateway.balancer import balancer
from gateway.cache import ModelRecord, OrgConfig
from gateway.errors import GatewayError, invalid
from gateway.providers.base import EMBEDDINGS


@dataclass(slots=True)
class Plan:
    deployments: list[ModelRecord]
    router: str = ""
    router_scorer: str = ""
    router_decision: str = ""
    router_threshold: float | None = None
    router_score: float | None = None
    extra: dict = field(default_factory=dict)


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
        plan = Plan(deployments=balancer.group_order(config.org_id, group))
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
