"""Provider reports uploaded as CSV: the product's documented columns, and Azure Cost
Management exports (the actual-cost export and its FOCUS-format export).

**Generic** (any provider; a header row, columns in any order, names case-insensitive):

| column | required | meaning |
|---|---|---|
| ``date`` | yes | the UTC day, ``YYYY-MM-DD`` |
| ``model`` | yes | the model as the provider names it |
| ``token_type`` | yes | ``input`` (uncached), ``cached_input``, ``cache_write`` or ``output`` |
| ``tokens`` | one of the two | whole tokens |
| ``cost_usd`` | one of the two | dollars, a decimal number |
| ``requests``, ``account``, ``api_key_id`` | no | counts, project/workspace, key id |

**Azure Cost Management** (``Date``/``UsageDate``, ``MeterName``, ``Quantity``,
``UnitOfMeasure``, ``CostInBillingCurrency``/``CostInUsd``/``Cost``, ``BillingCurrency(Code)``):
Azure OpenAI bills tokens in thousands under meters such as ``gpt-4o-mini-0718 Inp glbl
Tokens``; the model is the meter name without its direction and deployment words, the token
type its direction (``cached``/``cchd`` input, ``Inp`` input, ``Outp`` output). The FOCUS
export (``ChargePeriodStart``, ``BilledCost``, ``BillingCurrency``, ``ConsumedQuantity``,
``ConsumedUnit``, ``x_SkuMeterName`` or ``SkuMeter``) is read the same way. Rows whose meter is
not an Azure OpenAI token meter are kept under model ``""`` (the provider's total only).
Amounts must be in USD.
"""

from __future__ import annotations

import csv
import io
import re
from datetime import date, datetime, timedelta

from reports.invoices.figures import Figure, ReportError, amount, count
from reports.models import TokenType

MAX_ROWS = 500_000
MAX_BYTES = 50 * 1024 * 1024
_GENERIC_TYPES = {t.value for t in TokenType}
_AZURE_DATE = ("date", "usagedate", "usagedatetime", "chargeperiodstart")
_AZURE_COST = ("costinusd", "costinbillingcurrency", "cost", "pretaxcost", "billedcost")
_AZURE_CURRENCY = ("billingcurrencycode", "billingcurrency", "currency")
_AZURE_METER = ("metername", "x_skumetername", "skumeter")
_AZURE_QUANTITY = ("quantity", "consumedquantity", "usagequantity")
_AZURE_UNIT = ("unitofmeasure", "consumedunit")
_DIRECTION = re.compile(
    r"\b(?P<cached>cached|cchd)\b|\b(?P<output>outp|output|out)\b|\b(?P<input>inp|input|in)\b", re.I
)
_NOISE = re.compile(
    r"\b(tokens?|glbl|global|regnl|regional|dzone|datazone|data zone|batch|ft|1k|1m)\b", re.I
)


def _reader(data: bytes) -> tuple[list[str], list[dict[str, str]]]:
    if len(data) > MAX_BYTES:
        raise ReportError(f"the file is larger than {MAX_BYTES // (1024 * 1024)} MB")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ReportError("the file is not UTF-8 text") from None
    reader = csv.DictReader(io.StringIO(text))
    if not reader.fieldnames:
        raise ReportError("the file has no header row")
    header = [(h or "").strip().lower() for h in reader.fieldnames]
    rows = []
    for i, row in enumerate(reader, start=2):
        if i > MAX_ROWS + 1:
            raise ReportError(f"more than {MAX_ROWS} rows")
        rows.append({(k or "").strip().lower(): (v or "").strip() for k, v in row.items() if k})
    return header, rows


def _date(text: str) -> date:
    text = text.strip()
    for fmt in ("%Y-%m-%d", "%m/%d/%Y"):
        try:
            return datetime.strptime(text[:10], fmt).date()
        except ValueError:
            continue
    try:  # ISO 8601 with a time (FOCUS): the UTC day it starts
        return datetime.fromisoformat(text.replace("Z", "+00:00")).date()
    except ValueError:
        raise ReportError(f"not a date: {text[:40]!r}") from None


def _first(row: dict, names: tuple[str, ...]) -> str:
    for name in names:
        if row.get(name):
            return row[name]
    return ""


def is_azure(header: list[str]) -> bool:
    return any(h in header for h in _AZURE_METER) and not {"model", "token_type"} <= set(header)


def generic_figures(header: list[str], rows: list[dict]) -> list[Figure]:
    missing = {"date", "model", "token_type"} - set(header)
    if missing:
        raise ReportError(f"missing column(s): {', '.join(sorted(missing))}")
    if "tokens" not in header and "cost_usd" not in header:
        raise ReportError("a tokens or a cost_usd column is required")
    figures = []
    for line, row in enumerate(rows, start=2):
        token_type = row.get("token_type", "").lower()
        if token_type not in _GENERIC_TYPES:
            raise ReportError(
                f"line {line}: token_type {token_type[:40]!r} is not one of "
                f"{', '.join(sorted(_GENERIC_TYPES))}"
            )
        try:
            figures.append(
                Figure(
                    _date(row.get("date", "")),
                    model=row.get("model", "")[:200],
                    token_type=token_type,
                    tokens=count(row["tokens"]) if row.get("tokens") else None,
                    cost_usd=amount(row["cost_usd"]) if row.get("cost_usd") else None,
                    requests=count(row["requests"]) if row.get("requests") else None,
                    account=row.get("account", "")[:200],
                    api_key_id=row.get("api_key_id", "")[:200],
                )
            )
        except ReportError as exc:
            raise ReportError(f"line {line}: {exc}") from None
    return figures


def azure_meter_parse(meter: str) -> tuple[str, str | None]:
    """(model, token type) of an Azure OpenAI token meter; ("", None) for any other meter."""
    match = _DIRECTION.search(meter or "")
    if not match or not re.search(r"\btokens?\b", meter, re.I):
        return "", None
    token_type = (
        TokenType.CACHED_INPUT
        if match["cached"]
        else TokenType.OUTPUT
        if match["output"]
        else TokenType.INPUT
    )
    rest = _NOISE.sub(" ", _DIRECTION.sub(" ", meter))
    model = "-".join(rest.lower().split())
    return model, (token_type if model else None)


def _multiplier(unit: str) -> int:
    unit = unit.strip().lower()
    if unit.startswith("1k") or "1000" in unit or "thousand" in unit:
        return 1000
    if unit.startswith("1m") or "million" in unit:
        return 1_000_000
    return 1


def azure_figures(header: list[str], rows: list[dict]) -> list[Figure]:
    if not any(h in header for h in _AZURE_DATE) or not any(h in header for h in _AZURE_COST):
        raise ReportError("not an Azure cost export: no date or cost column")
    figures = []
    for line, row in enumerate(rows, start=2):
        try:
            figure = _azure_figure(row)
        except ReportError as exc:
            raise ReportError(f"line {line}: {exc}") from None
        if figure is not None:
            figures.append(figure)
    return figures


def _azure_figure(row: dict) -> Figure | None:
    cost_text = _first(row, _AZURE_COST)
    if not cost_text:
        return None
    currency = _first(row, _AZURE_CURRENCY).upper() or "USD"
    if currency != "USD":
        raise ReportError(f"costs in {currency!r}; only USD is reconciled")
    model, token_type = azure_meter_parse(_first(row, _AZURE_METER))
    quantity = _first(row, _AZURE_QUANTITY)
    tokens = None
    if token_type and quantity:
        scaled = amount(quantity) * _multiplier(_first(row, _AZURE_UNIT))
        tokens = int(scaled.to_integral_value())
        if tokens < 0:
            raise ReportError(f"negative quantity: {quantity[:40]!r}")
    return Figure(
        _date(_first(row, _AZURE_DATE)),
        model=model[:200],
        token_type=token_type or TokenType.INPUT,
        tokens=tokens,
        cost_usd=amount(cost_text),
        account=_first(row, ("subscriptionid", "subaccountid", "resourcegroup"))[:200],
        api_key_id=_first(row, ("resourcename", "resourceid"))[-200:],
    )


def csv_figures(data: bytes) -> tuple[str, list[Figure]]:
    """(source, figures) of an uploaded report: Azure's export when it looks like one, else the
    generic columns."""
    header, rows = _reader(data)
    if is_azure(header):
        return "azure_export", azure_figures(header, rows)
    return "csv", generic_figures(header, rows)


def figures_span(figures: list[Figure]) -> tuple[date, date] | None:
    """[first day, last day + 1) the figures cover, None when empty."""
    if not figures:
        return None
    days = [f.day for f in figures]
    return min(days), max(days) + timedelta(days=1)
