"""The control-plane REST API, and the one scoped base class every API view inherits.

Reads: ``get_queryset`` calls the view's selector from ``teams.selectors`` with the requesting
user, so a row of another organisation is simply not there and answers 404 (never 403).
Writes: ``RolePermission`` and ``require_manage`` apply the rules in ``teams.permissions``; a
service then makes the change and records the audit entry.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.core.exceptions import NON_FIELD_ERRORS
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import ProtectedError, QuerySet
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import APIException, PermissionDenied, ValidationError
from rest_framework.filters import BaseFilterBackend
from rest_framework.response import Response
from rest_framework.settings import api_settings

from teams import cache_services, selectors, services
from teams import serializers as s
from teams.permissions import RolePermission, Subject, may_manage

# --- the scoped base ----------------------------------------------------------------------------


class Conflict(APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = "The object is in use or in a state that does not allow this."
    default_code = "conflict"


def _as_drf_error(exc: DjangoValidationError) -> ValidationError:
    """A model or service ValidationError as DRF's standard shape, keeping the field names."""
    if hasattr(exc, "error_dict"):
        return ValidationError(
            {
                (api_settings.NON_FIELD_ERRORS_KEY if name == NON_FIELD_ERRORS else name): msgs
                for name, msgs in exc.message_dict.items()
            }
        )
    return ValidationError({api_settings.NON_FIELD_ERRORS_KEY: exc.messages})


class OrgFilter(BaseFilterBackend):
    """``?org=<slug>`` narrows any list to one of the user's organisations."""

    def filter_queryset(self, request, queryset, view):
        slug = request.query_params.get("org")
        if slug:
            queryset = queryset.filter(**{view.org_lookup: slug})
        return queryset

    def get_schema_operation_parameters(self, view) -> list[dict]:
        return [
            {
                "name": "org",
                "required": False,
                "in": "query",
                "description": "Only rows of this organisation (slug).",
                "schema": {"type": "string"},
            }
        ]


class ScopedAutoSchema(AutoSchema):
    """Documents the separate input serializers used for create and update."""

    def get_request_serializer(self):
        action_name = getattr(self.view, "action", None)
        serializer = {
            "create": getattr(self.view, "create_serializer_class", None),
            "partial_update": getattr(self.view, "update_serializer_class", None),
        }.get(action_name)
        return serializer or super().get_request_serializer()


PROTECTED_METHODS = ("get_queryset", "get_object", "get_permissions")


class ScopedAPIMixin:
    """The only way an API view gets rows: ``selector(request.user)``.

    Subclasses name a selector (``<entity>_list_for_user``) and the permission ``subject``, and
    may narrow the selector's rows in ``narrow_queryset`` (it receives them already scoped).
    Setting ``queryset`` or overriding ``get_queryset``, ``get_object`` or ``get_permissions``
    fails when the class is defined, because each would let a view read past the tenant scope;
    a deliberate bypass is spelled ``dangerously_<method>`` so that it stands out in review.
    """

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        if "queryset" in cls.__dict__:
            raise TypeError(
                f"{cls.__qualname__} sets queryset: a scoped API view reads through its selector"
            )
        for name in PROTECTED_METHODS:
            if name in cls.__dict__:
                raise TypeError(
                    f"{cls.__qualname__} overrides {name}, which would bypass the tenant scope: "
                    f"narrow the rows in narrow_queryset(), or name a deliberate bypass "
                    f"dangerously_{name}"
                )

    selector: Callable[[Any], QuerySet]
    subject: Subject
    org_lookup = "org__slug"
    permission_classes = [RolePermission]
    filter_backends = [OrgFilter]
    schema = ScopedAutoSchema()

    def get_queryset(self) -> QuerySet:
        bypass = getattr(self, "dangerously_get_queryset", None)
        if bypass is not None:
            return bypass()
        return self.narrow_queryset(type(self).selector(self.request.user))

    def narrow_queryset(self, queryset: QuerySet) -> QuerySet:
        """The selector's rows, narrowed by the view (filters, ``select_related``)."""
        return queryset

    def get_object(self):
        bypass = getattr(self, "dangerously_get_object", None)
        return bypass() if bypass is not None else super().get_object()

    def get_permissions(self):
        bypass = getattr(self, "dangerously_get_permissions", None)
        return bypass() if bypass is not None else super().get_permissions()

    @property
    def access(self) -> selectors.Access:
        return selectors.access_for_user(self.request.user)

    def require_manage(self, *, org_id: int, team_id: int | None = None) -> None:
        if not may_manage(self.access, self.subject, org_id=org_id, team_id=team_id):
            raise PermissionDenied(RolePermission.message)

    def validated(self, serializer_class, *, instance=None, partial: bool = False) -> dict:
        serializer = serializer_class(
            instance=instance,
            data=self.request.data,
            partial=partial,
            context=self.get_serializer_context(),
        )
        serializer.is_valid(raise_exception=True)
        return dict(serializer.validated_data)

    def reload(self, obj):
        """The object again through the selector (fresh related rows for the response)."""
        return self.get_queryset().filter(pk=obj.pk).first() or obj

    def handle_exception(self, exc):
        if isinstance(exc, DjangoValidationError):
            exc = _as_drf_error(exc)
        elif isinstance(exc, ProtectedError):
            names = ", ".join(sorted({str(o) for o in exc.protected_objects})[:5])
            exc = Conflict(f"still used by: {names}")
        return super().handle_exception(exc)


class ScopedViewSet(
    ScopedAPIMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet
):
    """Read-only scoped viewset; add the write mixins below for the writes a subject allows."""


class ScopedCreateMixin:
    """POST: validate with ``create_serializer_class`` (which resolves ``org`` and maybe
    ``team``), check the manage rule on that target, then ``create_object`` calls a service."""

    create_serializer_class: type
    create_response_status = status.HTTP_201_CREATED

    def create(self, request, *args, **kwargs):
        data = self.validated(self.create_serializer_class)
        team = data.get("team")
        self.require_manage(org_id=data["org"].pk, team_id=team.pk if team else None)
        obj = self.create_object(data)
        return Response(self.get_serializer(self.reload(obj)).data, status=status.HTTP_201_CREATED)

    def create_object(self, data: dict):
        raise NotImplementedError


class ScopedUpdateMixin:
    """PATCH: the object comes through the selector (404 elsewhere) and the object permission."""

    update_serializer_class: type

    def partial_update(self, request, *args, **kwargs):
        obj = self.get_object()
        data = self.validated(self.update_serializer_class, instance=obj, partial=True)
        obj = self.update_object(obj, data)
        return Response(self.get_serializer(self.reload(obj)).data)

    def update_object(self, obj, data: dict):
        raise NotImplementedError


class ScopedDestroyMixin:
    def destroy(self, request, *args, **kwargs):
        self.delete_object(self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)

    def delete_object(self, obj) -> None:
        raise NotImplementedError


# --- organisations ------------------------------------------------------------------------------


class OrganizationViewSet(ScopedUpdateMixin, ScopedViewSet):
    """Organisations you belong to. Admins may change the name and the timezone."""

    selector = selectors.org_list_for_user
    subject = Subject.ORG
    serializer_class = s.OrganizationSerializer
    update_serializer_class = s.OrganizationUpdateSerializer
    lookup_field = "slug"
    lookup_value_regex = r"[-a-zA-Z0-9_]+"
    org_lookup = "slug"

    def update_object(self, obj, data):
        return services.org_update(org=obj, actor=self.request.user, **data)


# --- teams --------------------------------------------------------------------------------------


class TeamViewSet(ScopedCreateMixin, ScopedUpdateMixin, ScopedDestroyMixin, ScopedViewSet):
    selector = selectors.team_list_for_user
    subject = Subject.TEAM
    serializer_class = s.TeamSerializer
    create_serializer_class = s.TeamCreateSerializer
    update_serializer_class = s.TeamUpdateSerializer

    def create_object(self, data):
        return services.team_create(actor=self.request.user, **data)

    def update_object(self, obj, data):
        return services.team_update(team=obj, actor=self.request.user, **data)

    def delete_object(self, obj):
        services.team_delete(team=obj, actor=self.request.user)


# --- memberships --------------------------------------------------------------------------------


class MembershipViewSet(ScopedCreateMixin, ScopedUpdateMixin, ScopedDestroyMixin, ScopedViewSet):
    """Who holds which role. Adding an unknown e-mail address creates the user."""

    selector = selectors.membership_list_for_user
    subject = Subject.MEMBERSHIP
    serializer_class = s.MembershipSerializer
    create_serializer_class = s.MembershipCreateSerializer
    update_serializer_class = s.MembershipUpdateSerializer

    def create_object(self, data):
        return services.membership_invite(
            actor=self.request.user,
            org=data["org"],
            username=data["user"],
            role=data["role"],
            team=data.get("team"),
        )

    def update_object(self, obj, data):
        return services.membership_update(membership=obj, actor=self.request.user, **data)

    def delete_object(self, obj):
        services.membership_remove(membership=obj, actor=self.request.user)


# --- features -----------------------------------------------------------------------------------


class FeatureViewSet(ScopedCreateMixin, ScopedUpdateMixin, ScopedDestroyMixin, ScopedViewSet):
    selector = selectors.feature_list_for_user
    subject = Subject.FEATURE
    serializer_class = s.FeatureSerializer
    create_serializer_class = s.FeatureCreateSerializer
    update_serializer_class = s.FeatureUpdateSerializer
    org_lookup = "team__org__slug"

    def create_object(self, data):
        data.pop("org")
        return services.feature_create(actor=self.request.user, **data)

    def update_object(self, obj, data):
        return services.feature_update(feature=obj, actor=self.request.user, **data)

    def delete_object(self, obj):
        services.feature_delete(feature=obj, actor=self.request.user)


# --- keys ---------------------------------------------------------------------------------------


@extend_schema_view(
    create=extend_schema(
        description="Mint a key. The response carries the secret: the only time it is shown.",
        responses={201: s.KeyWithSecretSerializer},
    ),
)
class KeyViewSet(ScopedCreateMixin, ScopedUpdateMixin, ScopedViewSet):
    """Virtual keys. Secrets are never returned except once, by mint and rotate."""

    selector = selectors.key_list_for_user
    subject = Subject.KEY
    serializer_class = s.KeySerializer
    create_serializer_class = s.KeyCreateSerializer
    update_serializer_class = s.KeyUpdateSerializer

    def narrow_queryset(self, queryset):
        return queryset.select_related("created_by").prefetch_related("secrets")

    def create(self, request, *args, **kwargs):
        data = self.validated(self.create_serializer_class)
        self.require_manage(org_id=data["org"].pk, team_id=data["team"].pk)
        data.pop("org")
        minted = services.key_mint(actor=request.user, **data)
        return self._with_secret(minted, status.HTTP_201_CREATED)

    def update_object(self, obj, data):
        return services.key_update(key=obj, actor=self.request.user, **data)

    @extend_schema(request=None, responses=s.KeySerializer)
    @action(detail=True, methods=["post"])
    def revoke(self, request, pk=None):
        """Revoke the key now (idempotent): every secret of it stops working."""
        key = services.key_revoke(key=self.get_object(), actor=request.user)
        return Response(self.get_serializer(self.reload(key)).data)

    @extend_schema(request=s.KeyRotateSerializer, responses=s.KeyWithSecretSerializer)
    @action(detail=True, methods=["post"])
    def rotate(self, request, pk=None):
        """Issue a new secret (returned once); the previous one works for the grace period."""
        key = self.get_object()
        data = self.validated(s.KeyRotateSerializer)
        try:
            minted = services.key_rotate(
                key=key, actor=request.user, grace_seconds=data.get("grace_seconds")
            )
        except ValueError as exc:  # a revoked key
            raise Conflict(str(exc)) from exc
        return self._with_secret(minted, status.HTTP_200_OK)

    def _with_secret(self, minted: services.MintedKey, code: int) -> Response:
        key = self.reload(minted.key)
        body = s.KeyWithSecretSerializer(key, context=self.get_serializer_context()).data
        body["secret"] = minted.secret
        return Response(body, status=code, headers={"Cache-Control": "no-store"})


# --- budgets ------------------------------------------------------------------------------------


class BudgetViewSet(ScopedCreateMixin, ScopedUpdateMixin, ScopedDestroyMixin, ScopedViewSet):
    """Spend limits. Admin and finance manage them; leads and members read their teams'."""

    selector = selectors.budget_list_for_user
    subject = Subject.BUDGET
    serializer_class = s.BudgetSerializer
    create_serializer_class = s.BudgetCreateSerializer
    update_serializer_class = s.BudgetUpdateSerializer

    def create_object(self, data):
        return services.budget_create(actor=self.request.user, **data)

    def update_object(self, obj, data):
        return services.budget_update(budget=obj, actor=self.request.user, **data)

    def delete_object(self, obj):
        services.budget_delete(budget=obj, actor=self.request.user)


# --- response cache policies ---------------------------------------------------------------


class CachePolicyViewSet(ScopedCreateMixin, ScopedUpdateMixin, ScopedDestroyMixin, ScopedViewSet):
    """The exact response cache per organisation, team, feature, key or model: the most
    specific policy of a call applies. Org admins manage them; everyone reads their scope's."""

    selector = selectors.cache_policy_list_for_user
    subject = Subject.CACHE
    serializer_class = s.CachePolicySerializer
    create_serializer_class = s.CachePolicyCreateSerializer
    update_serializer_class = s.CachePolicyUpdateSerializer

    def create_object(self, data):
        return cache_services.cache_policy_create(actor=self.request.user, **data)

    def update_object(self, obj, data):
        return cache_services.cache_policy_update(policy=obj, actor=self.request.user, **data)

    def delete_object(self, obj):
        cache_services.cache_policy_delete(policy=obj, actor=self.request.user)


# --- audit --------------------------------------------------------------------------------------


@extend_schema_view(
    list=extend_schema(
        parameters=[
            OpenApiParameter("action", str, description="e.g. key.minted, budget.updated"),
            OpenApiParameter("object_type", str, description="e.g. virtualkey, budget"),
            OpenApiParameter("object_id", str, description="Id of the changed object."),
        ]
    )
)
class AuditEntryViewSet(ScopedViewSet):
    """Who changed what, when, with before/after (never a secret). Admin and finance only."""

    selector = selectors.audit_list_for_user
    subject = Subject.AUDIT
    serializer_class = s.AuditEntrySerializer

    def narrow_queryset(self, queryset):
        for param in ("action", "object_type", "object_id"):
            value = self.request.query_params.get(param)
            if value:
                queryset = queryset.filter(**{param: value})
        return queryset
