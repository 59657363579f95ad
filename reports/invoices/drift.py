"""Price drift: the price a provider's figures imply, and accepting it.

A suggestion is per catalog model and token type: the provider's unit price over the window's
drifting days (its cost / its tokens, per million), from the first drifting day on. Accepting it

1. appends a catalog price (``source="reconciliation"``) through the catalog service, in force
   from now: the catalog's history is never back-dated;
2. re-prices the ledger from the first drifting day until now by appending **correction rows**
   (``status="correction"``, ``attempt`` 0, no tokens, the cost difference in the direction's
   cost column): one per UTC hour x dimension combination of the rows it corrects, so the
   rollups (which treat attempt 0 as money only) and the chargeback move by exactly the
   difference. A row already corrected is re-priced against its corrected cost, and the
   correction's event id is derived from the price and the group, so running an acceptance
   twice adds nothing.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from decimal import Decimal

from django.db import transaction
from django.db.models import Sum
from django.db.models.functions import TruncHour
from django.utils import timezone

from gateway.models import LLMModel, ModelPrice, Provider, UsageEvent
from gateway.pricing import MTOK, QUANT
from gateway.services.catalog import model_price_add
from reports.invoices.reconcile import provider_reconcile
from reports.models import TokenType

CORRECTION = "correction"
_NAMESPACE = uuid.UUID("6f1c8a52-3b8e-4a51-9d0e-6e7c2b1f4a90")
_PRICE_FIELDS = {
    TokenType.INPUT: "input_usd_per_mtok",
    TokenType.CACHED_INPUT: "cached_input_usd_per_mtok",
    TokenType.CACHE_WRITE: "cache_write_usd_per_mtok",
    TokenType.OUTPUT: "output_usd_per_mtok",
}
_COST_COLUMNS = {
    TokenType.INPUT: "input_cost",
    TokenType.CACHED_INPUT: "cached_input_cost",
    TokenType.CACHE_WRITE: "cache_write_cost",
    TokenType.OUTPUT: "output_cost",
}
_GROUP = (
    "team_id",
    "key_id",
    "feature",
    "endpoint",
    "end_user",
    "api",
    "requested_model",
    "model",
    "upstream_model",
    "provider",
    "shadow",
)


@dataclass(frozen=True)
class Suggestion:
    model: LLMModel
    token_type: str
    since: date
    implied_usd_per_mtok: Decimal
    catalog_usd_per_mtok: Decimal | None
    drift_usd: Decimal


def _current(model: LLMModel) -> ModelPrice | None:
    return model.prices.order_by("-effective_from").first()


def _catalog(price: ModelPrice | None, token_type: str) -> Decimal | None:
    if price is None:
        return None
    value = getattr(price, _PRICE_FIELDS[token_type])
    return price.input_usd_per_mtok if value is None else value


def price_suggestions(provider: Provider, start: date, end: date) -> list[Suggestion]:
    """One suggestion per catalog model and token type that drifted in ``[start, end)``."""
    acc: dict[tuple[str, str], list] = {}
    for row in provider_reconcile(provider, start, end):
        if not row.price_drift or not row.provider_tokens or row.provider_cost is None:
            continue
        a = acc.setdefault((row.model, row.token_type), [row.day, 0, Decimal(0), Decimal(0)])
        a[0] = min(a[0], row.day)
        a[1] += row.provider_tokens
        a[2] += row.provider_cost
        a[3] += row.price_drift
    out = []
    models = LLMModel.objects.filter(provider=provider, upstream_model__in={k[0] for k in acc})
    for model in models.order_by("name"):
        for (upstream, token_type), (since, tokens, cost, drift) in sorted(acc.items()):
            if upstream != model.upstream_model:
                continue
            implied = (cost * MTOK / tokens).quantize(Decimal("1e-6"))
            out.append(
                Suggestion(
                    model, token_type, since, implied, _catalog(_current(model), token_type), drift
                )
            )
    return out


def _event_id(price: ModelPrice, token_type: str, hour: datetime, group: dict) -> uuid.UUID:
    parts = [str(price.pk), token_type, hour.isoformat(), *(str(group[k]) for k in _GROUP)]
    return uuid.uuid5(_NAMESPACE, "|".join(parts))


def price_drift_accept(
    *, model: LLMModel, token_type: str, usd_per_mtok: Decimal, since: date, actor
) -> tuple[ModelPrice, int]:
    """Accept a provider's price for one direction of ``model``: the new catalog price (now
    on) and the corrections of ``[since, now)``. Returns (the price, correction rows added)."""
    if token_type not in _PRICE_FIELDS:
        raise ValueError(f"unknown token type {token_type!r}")
    usd_per_mtok = Decimal(usd_per_mtok)
    if not usd_per_mtok.is_finite() or usd_per_mtok < 0:
        raise ValueError("the price must be a non-negative number")
    now = timezone.now()
    start = datetime.combine(since, time(0), UTC)
    if start >= now:
        raise ValueError("since must be in the past")
    with transaction.atomic():
        current = _current(model)
        fields = {
            name: (getattr(current, name) if current else None) for name in _PRICE_FIELDS.values()
        }
        fields["input_usd_per_mtok"] = fields["input_usd_per_mtok"] or Decimal(0)
        fields["output_usd_per_mtok"] = fields["output_usd_per_mtok"] or Decimal(0)
        fields[_PRICE_FIELDS[token_type]] = usd_per_mtok
        price = model_price_add(model=model, actor=actor, source="reconciliation", **fields)
        added = _corrections(
            model, price, token_type, usd_per_mtok / MTOK, start=start, end=price.effective_from
        )
    return price, added


def _tokens_expr(token_type: str):
    from django.db.models import F

    if token_type == TokenType.INPUT:
        return Sum(F("prompt_tokens") - F("cached_tokens") - F("cache_write_tokens"))
    column = {
        TokenType.CACHED_INPUT: "cached_tokens",
        TokenType.CACHE_WRITE: "cache_write_tokens",
        TokenType.OUTPUT: "completion_tokens",
    }[token_type]
    return Sum(column)


def _corrections(
    model: LLMModel, price: ModelPrice, token_type: str, per_token: Decimal, *, start, end
) -> int:
    cost_column = _COST_COLUMNS[token_type]
    groups = (
        UsageEvent.objects.filter(
            org_id=model.org_id,
            provider=model.provider.slug,
            model=model.name,
            started_at__gte=start,
            started_at__lt=end,
        )
        .annotate(hour=TruncHour("started_at", tzinfo=UTC))
        .values("hour", *_GROUP)
        .annotate(tokens=_tokens_expr(token_type), billed=Sum(cost_column))
        .order_by()
    )
    rows = []
    for g in groups:
        delta = ((g["tokens"] or 0) * per_token).quantize(QUANT) - Decimal(g["billed"] or 0)
        if not delta:
            continue
        group = {k: g[k] for k in _GROUP}
        hour = g["hour"]
        rows.append(
            UsageEvent(
                event_id=_event_id(price, token_type, hour, group),
                request_id=f"reprice-{price.pk}",
                attempt=0,
                started_at=hour,
                ended_at=hour,
                org_id=model.org_id,
                status=CORRECTION,
                **group,
                **{cost_column: delta, "cost": delta},
            )
        )
    created = UsageEvent.objects.bulk_create(rows, batch_size=1000, ignore_conflicts=True)
    return len(created)
