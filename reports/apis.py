"""Reporting API: spend from the rollups (``/api/v1/spend/``) and alerts (``/api/v1/alerts/``).

Both inherit the scoped base of ``teams.apis``: rows come from ``reports.selectors`` with the
requesting user, so a lead sees its teams, finance and admins their organisation, nobody another.
"""

from __future__ import annotations

import json
from dataclasses import replace

from django.http import StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import serializers
from rest_framework.exceptions import ValidationError
from rest_framework.generics import GenericAPIView
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.response import Response

from finops.ids import id_parse
from reports import selectors
from reports import serializers as s
from reports.exports.focus_columns import FOCUS_VERSION, FOCUS_VERSIONS
from teams.apis import ScopedAPIMixin, ScopedViewSet
from teams.permissions import Subject
from teams.selectors import org_list_for_user


class SpendView(ScopedAPIMixin, GenericAPIView):
    """Spend grouped by any of org, team, feature, endpoint, key, user, model, provider, day,
    hour over local days ``start..end`` (inclusive), from the rollups. Costs are fixed-point
    strings at the ledger's full precision; `cost` is production spend unless
    `include_evaluation=1` adds the evaluation (shadow) spend."""

    selector = selectors.daily_spend_list_for_user
    subject = Subject.BUDGET  # read-only: the subject's manage rule is never consulted
    filter_backends: list = []
    serializer_class = s.SpendQuerySerializer

    @extend_schema(
        parameters=[s.SpendQuerySerializer],
        responses=s.SpendResponseSerializer,
    )
    def get(self, request, *args, **kwargs):
        params = s.SpendQuerySerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        query = params.query()
        rows = selectors.spend_by_dimension(request.user, query)
        return Response(
            {
                "start": query.start.isoformat(),
                "end": query.end.isoformat(),
                "group_by": list(query.group_by),
                "include_evaluation": query.include_evaluation,
                "rows": rows,
            }
        )


@extend_schema_view(
    list=extend_schema(
        parameters=[
            OpenApiParameter("kind", str, description="threshold, forecast, anomaly, chargeback"),
            OpenApiParameter("status", str, description="pending, sent, superseded, failed"),
            OpenApiParameter("budget", int, description="Only alerts of this budget (id)."),
        ]
    )
)
class BudgetAlertViewSet(ScopedViewSet):
    """Alerts recorded (and emailed) about budgets and spend, newest first."""

    selector = selectors.budget_alert_list_for_user
    subject = Subject.BUDGET
    serializer_class = s.BudgetAlertSerializer

    def narrow_queryset(self, queryset):
        for param in ("kind", "status"):
            if value := self.request.query_params.get(param):
                queryset = queryset.filter(**{param: value})
        if budget := self.request.query_params.get("budget"):
            budget_id = id_parse(budget)
            if budget_id is None:
                raise ValidationError({"budget": ["A budget id (a positive 64-bit integer)."]})
            queryset = queryset.filter(budget=budget_id)
        return queryset


# --- FOCUS export --------------------------------------------------------------------------------


class FocusCSVRenderer(BaseRenderer):
    """Lets clients ask for ``text/csv``; errors still go out as DRF's JSON body."""

    media_type = "text/csv"
    format = "csv"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        return json.dumps(data).encode() if data is not None else b""


class FocusExportQuerySerializer(s.FocusQuerySerializer):
    """The FOCUS export's parameters: those of ``reports.serializers.FocusQuerySerializer`` and
    the FOCUS version of the dataset."""

    focus_version = serializers.ChoiceField(
        choices=FOCUS_VERSIONS,
        required=False,
        default=FOCUS_VERSION,
        help_text=f"FOCUS version of the dataset: {', '.join(FOCUS_VERSIONS)} "
        f"(default {FOCUS_VERSION}).",
    )

    def query(self):
        return replace(super().query(), focus_version=self.validated_data["focus_version"])


class FocusExportView(ScopedAPIMixin, GenericAPIView):
    """Spend as a FOCUS dataset (CSV, streamed), FOCUS 1.3 unless `focus_version=1.2`: one row per
    UTC day, team, feature, endpoint, model, price window and token direction, from the hour
    rollups over the UTC days ``start..end`` (inclusive). Costs at the ledger's full precision;
    production spend only unless `include_evaluation=1`. Columns: docs/reports.md, "FOCUS
    export"."""

    selector = selectors.hourly_spend_list_for_user
    subject = Subject.BUDGET  # read-only: the subject's manage rule is never consulted
    filter_backends: list = []
    renderer_classes = [JSONRenderer, FocusCSVRenderer]
    serializer_class = FocusExportQuerySerializer

    @extend_schema(
        parameters=[FocusExportQuerySerializer],
        responses={(200, "text/csv"): OpenApiTypes.STR},
    )
    def get(self, request, *args, **kwargs):
        from reports.exports.focus import focus_csv, focus_rows

        params = FocusExportQuerySerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        query = params.query()
        queryset = self.get_queryset()
        if params.validated_data.get("org"):
            queryset = queryset.filter(
                org_id__in=org_list_for_user(request.user)
                .filter(slug=params.validated_data["org"])
                .values("id")
            )
        response = StreamingHttpResponse(
            focus_csv(focus_rows(queryset, query), focus_version=query.focus_version),
            content_type="text/csv; charset=utf-8",
        )
        name = f"focus-{query.focus_version}-{query.start:%Y%m%d}-{query.end:%Y%m%d}.csv"
        response["Content-Disposition"] = f'attachment; filename="{name}"'
        return response
