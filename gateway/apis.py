"""REST API of the gateway catalog (providers, models with prices, groups, routers).

Every view inherits the scoped base from ``teams.apis``: rows come from the selectors, writes
need the org-admin rule of ``teams.permissions`` and go through ``gateway.services.catalog``.
Provider credentials are never part of any response.
"""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.decorators import action
from rest_framework.response import Response

from gateway import selectors
from gateway import serializers as s
from gateway.services import catalog
from teams.apis import ScopedCreateMixin, ScopedDestroyMixin, ScopedUpdateMixin, ScopedViewSet
from teams.permissions import Subject


class ProviderViewSet(ScopedCreateMixin, ScopedUpdateMixin, ScopedDestroyMixin, ScopedViewSet):
    """Upstream APIs. Only org admins change them; base_url is bounded by FINOPS_PROVIDER_HOSTS."""

    selector = selectors.provider_list_for_user
    subject = Subject.PROVIDER
    serializer_class = s.ProviderSerializer
    create_serializer_class = s.ProviderCreateSerializer
    update_serializer_class = s.ProviderUpdateSerializer

    def create_object(self, data):
        return catalog.provider_create(actor=self.request.user, **data)

    def update_object(self, obj, data):
        return catalog.provider_update(provider=obj, actor=self.request.user, **data)

    def delete_object(self, obj):
        catalog.provider_delete(provider=obj, actor=self.request.user)


class LLMModelViewSet(ScopedCreateMixin, ScopedUpdateMixin, ScopedViewSet):
    """Models with their current price and price history. Models are not deleted (their price
    history stays); set ``active`` to false instead."""

    selector = selectors.model_list_for_user
    subject = Subject.MODEL
    serializer_class = s.LLMModelSerializer
    create_serializer_class = s.LLMModelCreateSerializer
    update_serializer_class = s.LLMModelUpdateSerializer

    def create_object(self, data):
        return catalog.model_create(actor=self.request.user, **data)

    def update_object(self, obj, data):
        return catalog.model_update(model=obj, actor=self.request.user, **data)

    @extend_schema(responses=s.PriceSerializer(many=True))
    @action(detail=True, methods=["get"])
    def prices(self, request, pk=None):
        """The model's price history, newest first."""
        model = self.get_object()
        return Response(s.PriceSerializer(s.prices_newest_first(model), many=True).data)

    @extend_schema(request=s.PriceCreateSerializer, responses={201: s.PriceSerializer})
    @prices.mapping.post
    def add_price(self, request, pk=None):
        """Add a price from ``effective_from`` on (default now); earlier prices stay as they are."""
        model = self.get_object()
        data = self.validated(s.PriceCreateSerializer)
        price = catalog.model_price_add(model=model, actor=request.user, **data)
        return Response(s.PriceSerializer(price).data, status=status.HTTP_201_CREATED)


class GroupViewSet(ScopedCreateMixin, ScopedUpdateMixin, ScopedDestroyMixin, ScopedViewSet):
    """Load-balanced model groups: members with weights and an ordered fallback chain."""

    selector = selectors.group_list_for_user
    subject = Subject.GROUP
    serializer_class = s.GroupSerializer
    create_serializer_class = s.GroupCreateSerializer
    update_serializer_class = s.GroupUpdateSerializer

    def create_object(self, data):
        return catalog.group_create(actor=self.request.user, **data)

    def update_object(self, obj, data):
        return catalog.group_update(group=obj, actor=self.request.user, **data)

    def delete_object(self, obj):
        catalog.group_delete(group=obj, actor=self.request.user)


class RouterViewSet(ScopedCreateMixin, ScopedUpdateMixin, ScopedDestroyMixin, ScopedViewSet):
    """Cost-aware routers: per prompt, the strong model if score >= threshold, else the weak."""

    selector = selectors.router_list_for_user
    subject = Subject.ROUTER
    serializer_class = s.RouterSerializer
    create_serializer_class = s.RouterCreateSerializer
    update_serializer_class = s.RouterUpdateSerializer

    def create_object(self, data):
        return catalog.router_create(actor=self.request.user, **data)

    def update_object(self, obj, data):
        return catalog.router_update(router=obj, actor=self.request.user, **data)

    def delete_object(self, obj):
        catalog.router_delete(router=obj, actor=self.request.user)
