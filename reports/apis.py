"""Reporting API: spend from the rollups (``/api/v1/spend/``) and alerts (``/api/v1/alerts/``).

Both inherit the scoped base of ``teams.apis``: rows come from ``reports.selectors`` with the
requesting user, so a lead sees its teams, finance and admins their organisation, nobody another.
"""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework.generics import GenericAPIView
from rest_framework.response import Response

from reports import selectors
from reports import serializers as s
from teams.apis import ScopedAPIMixin, ScopedViewSet
from teams.permissions import Subject


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

    def get_queryset(self):
        queryset = super().get_queryset()
        for param in ("kind", "status", "budget"):
            value = self.request.query_params.get(param)
            if value:
                queryset = queryset.filter(**{param: value})
        return queryset
