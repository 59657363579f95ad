"""Tenant-scoped reads of the gateway catalog (providers, models with prices, groups, routers),
for the API, the admin, the pages and the serializers: each scoped to the user's organisations
by ``teams.selectors.org_scoped``. (The gateway's hot path reads its own caches, not these.)"""

from __future__ import annotations

from gateway.models import LLMModel, ModelGroup, Provider, Router
from teams.selectors import org_scoped


def provider_list_for_user(user):
    """Providers of the user's organisations (no credential is stored on them)."""

    return org_scoped(user, Provider.objects.select_related("org"))


def model_list_for_user(user):

    return org_scoped(
        user, LLMModel.objects.select_related("org", "provider").prefetch_related("prices")
    )


def group_list_for_user(user):

    return org_scoped(
        user,
        ModelGroup.objects.select_related("org").prefetch_related(
            "members__model", "fallback_links__model"
        ),
    )


def router_list_for_user(user):

    return org_scoped(user, Router.objects.select_related("org", "strong", "weak"))
