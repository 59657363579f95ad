"""The provider-billed cost carried beside the ledger's (``x_ProviderBilledCost``).

Where invoice reconciliation holds the provider's own report for a UTC day (``reports.invoices``),
each FOCUS row gets its share of what the provider billed for that day, provider, model and token
type: the provider's cost times the row's share of the *whole organisation's* ledger cost of the
same grain (a lead's export then carries its teams' shares, never the organisation's total).
Rounded to the ledger's 12 places, so the shares of a grain add up to the provider's figure within
a trillionth of a dollar per row. Days no import covers, and costs without a token breakdown, get
no value (null): the column never guesses.

FOCUS's ``BilledCost`` stays the gateway's metered cost: the gateway is the one issuing these rows,
and FOCUS reserves billed cost for the invoicing entity's figures; the provider's figure is a custom
column for reconciliation in the FinOps tool that reads the export.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from gateway.models import LLMModel, Provider
from reports.invoices.reconcile import Row, provider_reconcile

TWELVE_PLACES = Decimal("1e-12")


class InvoiceShares:
    def __init__(self, start: date, end: date) -> None:
        self.start, self.end = start, end  # UTC days [start, end)
        self._rows: dict[int, dict[tuple, Row]] = {}
        self._upstream: dict[int, dict[str, str]] = {}

    def _provider_rows(self, provider: Provider) -> dict[tuple, Row]:
        if provider.pk not in self._rows:
            self._rows[provider.pk] = {
                (r.day, r.model, r.token_type): r
                for r in provider_reconcile(provider, self.start, self.end)
            }
        return self._rows[provider.pk]

    def _upstream_of(self, org_id: int, model_name: str) -> str:
        if org_id not in self._upstream:
            self._upstream[org_id] = dict(
                LLMModel.objects.filter(org_id=org_id).values_list("name", "upstream_model")
            )
        return self._upstream[org_id].get(model_name, model_name)

    def billed(
        self,
        provider: Provider | None,
        *,
        day: date,
        model_name: str,
        token_type: str,
        cost: Decimal,
    ) -> Decimal | None:
        """The provider-billed share of a row costing ``cost`` on the ledger, or None."""
        if provider is None:
            return None
        rows = self._provider_rows(provider)
        if not rows:
            return None
        row = rows.get((day, self._upstream_of(provider.org_id, model_name), token_type))
        if row is None or row.provider_cost is None or not row.ledger_cost:
            return None
        return (row.provider_cost * cost / row.ledger_cost).quantize(TWELVE_PLACES)
