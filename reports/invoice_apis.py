"""Reconciliation API (``/api/v1/reconciliation/``): the provider's figures next to the ledger's,
the imports of provider reports (upload, pull), the prices the figures imply (and accepting
one), and the organisation's alert thresholds.

Reads are the whole organisation's invoice: admins and finance only (the selectors of
``reports.selectors.invoices``; a lead or member sees no provider here, so every id of theirs
answers 404). Imports and thresholds need ``Subject.INVOICE`` (admin, finance); accepting a
price is a catalog change (``Subject.PRICE``: admins).
"""

from __future__ import annotations

import csv
import io
from datetime import timedelta

from django.http import HttpResponse
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.generics import GenericAPIView
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response

from finops.money import money
from gateway.models import LLMModel
from reports import invoice_serializers as s
from reports.apis import FocusCSVRenderer
from reports.invoices.drift import price_suggestions
from reports.invoices.figures import ReportError
from reports.invoices.pull import pull_supported
from reports.invoices.reconcile import coverage, org_reconcile, totals
from reports.models import ReconciliationPolicy
from reports.selectors import (
    reconciliation_policy_list_for_user,
    reconciliation_provider_list_for_user,
    report_pull_list_for_user,
)
from reports.services.invoices import (
    price_accept,
    reconciliation_policy_set,
    report_import,
    report_pull,
)
from reports.tables import _csv_cell
from teams.apis import ScopedAPIMixin, ScopedViewSet
from teams.permissions import Subject
from teams.selectors import org_list_for_user

CSV_COLUMNS = (
    "provider", "day", "model", "token_type", "provider_tokens", "ledger_tokens",
    "provider_cost_usd", "ledger_cost_usd", "difference_usd", "unmetered_usd",
    "over_metered_usd", "price_drift_usd", "matched_usd", "class",
)  # fmt: skip


class ReconciliationView(ScopedAPIMixin, GenericAPIView):
    """Invoice vs ledger over UTC days ``start..end`` (inclusive), per provider and what
    ``group_by`` keeps (day, model, token_type): tokens and costs on both sides, the difference
    and its exact split into unmetered, over-metered and price drift, and the row's `class`.
    `?format=csv` answers the same rows as CSV."""

    selector = reconciliation_provider_list_for_user
    subject = Subject.INVOICE
    serializer_class = s.ReconciliationQuerySerializer
    renderer_classes = [JSONRenderer, FocusCSVRenderer]  # ?format=csv; errors stay JSON

    @extend_schema(
        parameters=[
            s.ReconciliationQuerySerializer,
            OpenApiParameter("format", str, description="json (default) or csv"),
        ],
        responses=s.ReconciliationResponseSerializer,
    )
    def get(self, request, *args, **kwargs):
        params = s.ReconciliationQuerySerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        q = params.validated_data
        providers = self.filter_queryset(self.get_queryset()).order_by("org__slug", "slug")
        if q.get("provider"):
            providers = providers.filter(slug=q["provider"])
        end = q["end"] + timedelta(days=1)
        rows = org_reconcile(providers, q["start"], end, q["group_by"])
        data = [s.row_data(r) for r in rows]
        if request.query_params.get("format") == "csv":
            return self._csv(data, q)
        share = coverage(rows)
        return Response(
            {
                "start": q["start"].isoformat(),
                "end": q["end"].isoformat(),
                "group_by": list(q["group_by"]),
                "totals": {k: money(v) for k, v in sorted(totals(rows).items())},
                "coverage": None if share is None else str(share.quantize(s.COVERAGE_QUANT)),
                "rows": data,
            }
        )

    def _csv(self, data: list[dict], q: dict) -> HttpResponse:
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(CSV_COLUMNS)
        for row in data:
            writer.writerow([_csv_cell(row[c]) for c in CSV_COLUMNS])
        response = HttpResponse(out.getvalue(), content_type="text/csv; charset=utf-8")
        name = f"reconciliation-{q['start']}-{q['end']}.csv"
        response["Content-Disposition"] = f'attachment; filename="{name}"'
        return response


class ReportPullViewSet(ScopedViewSet):
    """Imports of providers' own reports, newest first. `POST` uploads a file (multipart:
    `provider`, `file`); `POST pull/` pulls days from the provider's admin API now."""

    selector = report_pull_list_for_user
    subject = Subject.INVOICE
    serializer_class = s.ReportPullSerializer
    parser_classes = [MultiPartParser, FormParser, JSONParser]

    def _provider(self, provider_id: int):
        provider = (
            reconciliation_provider_list_for_user(self.request.user).filter(pk=provider_id).first()
        )
        if provider is None:
            raise ValidationError({"provider": "no such provider"})
        self.require_manage(org_id=provider.org_id)
        return provider

    @extend_schema(request=s.ReportUploadSerializer, responses={201: s.ReportPullSerializer})
    def create(self, request, *args, **kwargs):
        data = self.validated(s.ReportUploadSerializer)
        provider = self._provider(data["provider"])
        upload = data["file"]
        try:
            pull = report_import(
                actor=request.user,
                provider=provider,
                data=upload.read(),
                filename=upload.name or "",
            )
        except ReportError as exc:
            raise ValidationError({"file": [str(exc)]}) from None
        return Response(s.ReportPullSerializer(pull).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=s.ReportPullRequestSerializer, responses={201: s.ReportPullSerializer})
    @action(detail=False, methods=["post"])
    def pull(self, request, *args, **kwargs):
        data = self.validated(s.ReportPullRequestSerializer)
        provider = self._provider(data["provider"])
        if not pull_supported(provider):
            raise ValidationError(
                {
                    "provider": f"{provider.kind} providers have no usage API this product reads: "
                    "upload the provider's cost export instead"
                }
            )
        pull = report_pull(
            actor=request.user, provider=provider, start=data["start"], end=data["end"]
        )
        return Response(s.ReportPullSerializer(pull).data, status=status.HTTP_201_CREATED)


class PriceSuggestionView(ScopedAPIMixin, GenericAPIView):
    """`GET`: per catalog model and token type that drifted, the price the provider's figures
    imply (per million tokens) and since when. `POST` accepts one: a new catalog price from now
    on, and correction rows re-pricing the ledger since `since` (admins)."""

    selector = reconciliation_provider_list_for_user
    subject = Subject.PRICE
    serializer_class = s.PriceAcceptSerializer

    @extend_schema(
        parameters=[s.ReconciliationQuerySerializer], responses=s.PriceSuggestionListSerializer
    )
    def get(self, request, *args, **kwargs):
        params = s.ReconciliationQuerySerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        q = params.validated_data
        providers = self.filter_queryset(self.get_queryset()).order_by("org__slug", "slug")
        if q.get("provider"):
            providers = providers.filter(slug=q["provider"])
        out = []
        for provider in providers:
            for sug in price_suggestions(provider, q["start"], q["end"] + timedelta(days=1)):
                out.append(
                    {
                        "provider": provider.slug,
                        "model": sug.model.pk,
                        "model_name": sug.model.name,
                        "token_type": sug.token_type,
                        "since": sug.since.isoformat(),
                        "implied_usd_per_mtok": str(sug.implied_usd_per_mtok),
                        "catalog_usd_per_mtok": None
                        if sug.catalog_usd_per_mtok is None
                        else str(sug.catalog_usd_per_mtok),
                        "price_drift_usd": money(sug.drift_usd),
                    }
                )
        return Response({"suggestions": out})

    @extend_schema(request=s.PriceAcceptSerializer, responses={201: s.PriceAcceptedSerializer})
    def post(self, request, *args, **kwargs):
        data = self.validated(s.PriceAcceptSerializer)
        providers = self.get_queryset()
        model = (
            LLMModel.objects.filter(pk=data["model"], provider__in=providers)
            .select_related("provider", "org")
            .first()
        )
        if model is None:
            raise NotFound("no such model")
        self.require_manage(org_id=model.org_id)
        try:
            price, added = price_accept(
                actor=request.user,
                model=model,
                token_type=data["token_type"],
                usd_per_mtok=data["usd_per_mtok"],
                since=data["since"],
            )
        except ValueError as exc:
            raise ValidationError({"since": str(exc)}) from None
        return Response(
            {
                "price": price.pk,
                "effective_from": price.effective_from.isoformat(),
                "correction_rows": added,
            },
            status=status.HTTP_201_CREATED,
        )


class ReconciliationPolicyView(ScopedAPIMixin, GenericAPIView):
    """The organisation's alert thresholds (`?org=<slug>`): `GET`, and `PUT` (admin, finance).
    A threshold of null sends no alert of that kind."""

    selector = reconciliation_policy_list_for_user
    subject = Subject.INVOICE
    serializer_class = s.ReconciliationPolicySerializer
    filter_backends: list = []

    def _org(self):
        orgs = org_list_for_user(self.request.user)
        slug = self.request.query_params.get("org")
        readable = [
            o
            for o in (orgs.filter(slug=slug) if slug else orgs)
            if self.access.reads_whole_org(o.pk)
        ]
        if len(readable) != 1:
            raise NotFound("name one organisation you read whole: ?org=<slug>")
        return readable[0]

    def get(self, request, *args, **kwargs):
        org = self._org()
        policy = self.get_queryset().filter(org=org).first()
        if policy is None:
            policy = ReconciliationPolicy(org=org)
        return Response(s.ReconciliationPolicySerializer(policy).data)

    def put(self, request, *args, **kwargs):
        org = self._org()
        self.require_manage(org_id=org.pk)
        data = self.validated(s.ReconciliationPolicySerializer)
        policy = reconciliation_policy_set(actor=request.user, org=org, **data)
        return Response(s.ReconciliationPolicySerializer(policy).data)
