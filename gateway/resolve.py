"""Model name -> the ordered list of deployments to try (the first that answers wins).

A configured model is tried alone; a group orders its members by its strategy (weighted,
round_robin, least_busy, latency, cost: see ``gateway.balancer``), then its fallbacks; the
key's default fallback chain comes last, after whatever the name resolved to.
``router:NAME`` (or a router's bare name) scores the prompt (``gateway.routing``): the strong
model first when score >= threshold, else the weak one, the other as fallback. Skipping
cooled-down models and models whose context window is too small happens while the call runs
(``gateway.proxy``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from gateway.balancer import balancer
from gateway.errors import GatewayError, invalid
from gateway.providers.base import EMBEDDINGS
from gateway.records import ModelRecord, OrgConfig, RouterRecord
from gateway.routing.scorers import decide, scorer_build


@dataclass(slots=True)
class Plan:
    deployments: list[ModelRecord]
    router: str = ""
    router_scorer: str = ""
    router_decision: str = ""
    router_threshold: float | None = None
    router_score: float | None = None
    extra: dict = field(default_factory=dict)
    # model name -> gateway.billable.Bound, filled by admission: what each may bill at most
    bounds: dict = field(default_factory=dict)


def resolve(config: OrgConfig, requested: str, *, api: str, fallbacks=(), messages=None) -> Plan:
    """The plan for ``requested``, with the key's default ``fallbacks`` (model names) appended
    after everything the name itself resolves to; names no longer configured are skipped."""
    plan = _resolve_name(config, requested, api=api, messages=messages)
    if fallbacks and api != EMBEDDINGS:
        tried = {m.name for m in plan.deployments}
        for name in fallbacks:
            model = config.models.get(name)
            if model is not None and model.mode != "embedding" and name not in tried:
                plan.deployments.append(model)
                tried.add(name)
    return plan


def _resolve_name(config: OrgConfig, requested: str, *, api: str, messages=None) -> Plan:
    name = requested.strip()
    if name.startswith("router:") or name in config.routers:
        router = config.routers.get(name.removeprefix("router:"))
        if router is None:
            raise GatewayError(
                404, "model_not_found", f"The router '{name}' does not exist.", param="model"
            )
        return _route(router, messages)
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


def _route(router: RouterRecord, messages) -> Plan:
    """The router's per-prompt decision: the chosen model first, the other as its fallback."""
    decision = decide(router.impl or scorer_build(router.scorer), messages or (), router.threshold)
    first, second = (
        (router.strong, router.weak) if decision.strong else (router.weak, router.strong)
    )
    return Plan(
        deployments=[first, second],
        router=router.name,
        router_scorer=decision.scorer,
        router_threshold=router.threshold,
        router_score=decision.score,
        router_decision=decision.label,
    )
