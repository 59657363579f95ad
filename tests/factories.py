"""Small factories for tests: explicit keyword arguments, sensible defaults."""

from __future__ import annotations

import itertools
from decimal import Decimal

from django.contrib.auth import get_user_model

from gateway.models import LLMModel, ModelPrice, Provider
from teams.models import Budget, Feature, Membership, Organization, Team
from teams.services import key_mint

_seq = itertools.count(1)


def make_user(username: str | None = None, *, password: str = "pw-Test-12345", **extra):
    username = username or f"user{next(_seq)}@example.test"
    user = get_user_model().objects.create_user(username=username, password=password, **extra)
    return user


def make_org(slug: str | None = None, *, timezone: str = "UTC") -> Organization:
    slug = slug or f"org{next(_seq)}"
    return Organization.objects.create(slug=slug, name=slug.title(), timezone=timezone)


def make_team(org: Organization, slug: str | None = None) -> Team:
    slug = slug or f"team{next(_seq)}"
    return Team.objects.create(org=org, slug=slug, name=slug.title())


def make_member(user, org: Organization, role: str, team: Team | None = None) -> Membership:
    return Membership.objects.create(user=user, org=org, role=role, team=team)


def make_feature(team: Team, slug: str | None = None) -> Feature:
    slug = slug or f"feature{next(_seq)}"
    return Feature.objects.create(team=team, slug=slug, name=slug)


def make_key(team: Team, name: str | None = None, **kwargs):
    return key_mint(team=team, name=name or f"key{next(_seq)}", **kwargs)


def make_provider(
    org: Organization,
    slug: str = "sim",
    *,
    base_url: str = "http://127.0.0.1:9100/v1",
    kind: str = "openai",
) -> Provider:
    return Provider.objects.create(org=org, slug=slug, kind=kind, base_url=base_url)


def make_model(
    org: Organization,
    name: str = "gpt-4o-mini",
    *,
    provider: Provider | None = None,
    input_per_mtok: str = "0.15",
    output_per_mtok: str = "0.60",
    **kwargs,
) -> LLMModel:
    provider = provider or Provider.objects.filter(org=org).first() or make_provider(org)
    model = LLMModel.objects.create(
        org=org,
        provider=provider,
        name=name,
        upstream_model=kwargs.pop("upstream_model", name),
        **kwargs,
    )
    ModelPrice.objects.create(
        model=model,
        input_usd_per_mtok=Decimal(input_per_mtok),
        output_usd_per_mtok=Decimal(output_per_mtok),
    )
    return model


def make_budget(
    org: Organization, *, scope: str = "org", period: str = "month", limit: str = "100", **kwargs
) -> Budget:
    return Budget.objects.create(
        org=org, scope=scope, period=period, limit_usd=Decimal(limit), **kwargs
    )


def make_group(org: Organization, name: str = "chat-pool", *, members=(), fallbacks=()):
    """A group of (model, weight) members with an ordered fallback chain of models."""
    from gateway.models import GroupFallback, GroupMember, ModelGroup

    group = ModelGroup.objects.create(org=org, name=name)
    for model, weight in members:
        GroupMember.objects.create(group=group, model=model, weight=weight)
    for position, model in enumerate(fallbacks):
        GroupFallback.objects.create(group=group, model=model, position=position)
    return group


def make_router(org: Organization, name: str = "smart", *, strong, weak, threshold: float = 0.5):
    from gateway.models import Router

    return Router.objects.create(org=org, name=name, strong=strong, weak=weak, threshold=threshold)
