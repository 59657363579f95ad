"""The savings statement API (``/api/v1/savings/``): what each lever saved next to the spend,
from the day rollups, scoped to the requesting user as the spend API is (a lead sees its teams,
finance and admins their organisation, nobody another)."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework.generics import GenericAPIView
from rest_framework.response import Response

from reports import selectors
from reports import serializers as s
from teams.apis import ScopedAPIMixin
from teams.permissions import Subject


class SavingsView(ScopedAPIMixin, GenericAPIView):
    """Savings by lever (router, cache, batch, downgrade, fallback) over local days
    ``start..end`` (inclusive), grouped by any of team, feature, model, day; rows are always
    split by `lever` (null: the spend no lever touched), so their `cost_usd` adds up to the
    spend and their `saved_usd` to the ledger's. `totals` carries each lever's method and what
    the levers cost (shadow traffic, judge calls). Money as fixed-point strings."""

    selector = selectors.daily_spend_list_for_user
    subject = Subject.BUDGET  # read-only: the subject's manage rule is never consulted
    filter_backends: list = []
    serializer_class = s.SavingsQuerySerializer

    @extend_schema(parameters=[s.SavingsQuerySerializer], responses=s.SavingsResponseSerializer)
    def get(self, request, *args, **kwargs):
        params = s.SavingsQuerySerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        query = params.query()
        found = selectors.savings_by_dimension(request.user, query)
        return Response(
            {
                "start": query.start.isoformat(),
                "end": query.end.isoformat(),
                "group_by": list(query.group_by),
                **found,
            }
        )
