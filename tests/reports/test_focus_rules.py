"""The FinOps Foundation validator's rules, encoded as tests of the FOCUS export (1.2 and 1.3).

The rules are the validator's (``focus-validator`` 2.x: its bundled ``model-1.2.json``, and the
1.3 requirements model it downloads from the FOCUS_Spec release, ids prefixed ``CAU-``), applied
with the applicability criteria an LLM gateway meets: USAGE_MEASUREMENT, UNIT_PRICING,
PUBLIC_PRICE_LIST, SUB_ACCOUNT, TAGGING, ACCOUNT_NAMING, and (1.3)
DATA_GENERATOR_SPLIT_COST_ALLOCATION. Rules whose criteria we do not meet (commitment discounts,
capacity reservations, regions, resources, several currencies, several account types) are not
tested, nor those about charge kinds the export never emits (Tax, Purchase, Credit, Correction),
except that it emits none. Each test names the rule ids it covers.

How the validator reads a CSV matters for its type rules: it loads the file with polars' type
inference, so a column of bare integers becomes an integer column and fails ``TypeDecimal``
(DECIMAL, DOUBLE or FLOAT), and a column of numbers fails ``TypeString``. Empty cells are
nulls. The tests hold every Decimal cell to a fixed-point text with a decimal point, and every
string column to values that do not all look like numbers.

Where the validator's own check cannot hold for any CSV, the tests encode the specification:
``ColumnByColumnEqualsColumnValue`` (ListUnitPrice x PricingQuantity = ListCost) compares
doubles exactly, so the tests check the export's documented decimal rule instead (the product
rounded half-even to 12 places is the cost).
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections import defaultdict
from datetime import datetime
from decimal import ROUND_HALF_EVEN, Decimal

from django.core.management import call_command
from django.core.management.base import CommandError

from gateway.models import LLMModel, ModelPrice, Provider, UsageEvent
from gateway.pricing import Price, Usage, cost_of
from reports.exports.focus_columns import CUSTOM_COLUMNS, FOCUS_COLUMNS, columns
from reports.models import RollupState
from reports.services import usage_rollup
from tests.reports.ledger import event, utc
from tests.teams.api_case import API, APITestCase

WINDOW = {"start": "2026-11-01", "end": "2026-11-30"}
VERSIONS = ("1.2", "1.3")
TWELVE = Decimal("1e-12")
DECIMAL_TEXT = re.compile(r"^-?\d+\.\d+$")
NUMERIC_FORMAT = re.compile(r"^[+-]?([0-9]*[.])?[0-9]+([eE][+-]?[0-9]+)?$")  # the validator's
DATETIME_FORMAT = re.compile(r"^\d{4}-[01]\d-[0-3]\dT[0-2]\d:[0-5]\d:[0-5]\dZ$")
_COUNT_UNIT = r"[A-Za-z][A-Za-z0-9]*(?:\s+[A-Za-z][A-Za-z0-9]*)*"
UNIT_FORMAT = re.compile(rf"^(?:{_COUNT_UNIT}|[0-9]+ {_COUNT_UNIT})$")  # count units only
PASCAL_CASE = re.compile(r"^[A-Z][A-Za-z0-9]*$")


def _names(text: str) -> tuple[str, ...]:
    return tuple(text.split())


DECIMAL_COLUMNS = _names(
    "BilledCost ConsumedQuantity ContractedCost ContractedUnitPrice EffectiveCost ListCost "
    "ListUnitPrice PricingCurrencyContractedUnitPrice PricingCurrencyEffectiveCost "
    "PricingCurrencyListUnitPrice PricingQuantity"
)
DATETIME_COLUMNS = (
    "BillingPeriodEnd",
    "BillingPeriodStart",
    "ChargePeriodEnd",
    "ChargePeriodStart",
)
KEY_VALUE_COLUMNS = ("AllocatedTags", "SkuPriceDetails", "Tags")
AGGREGATABLE = _names(
    "BilledCost ConsumedQuantity ContractedCost EffectiveCost ListCost "
    "PricingCurrencyEffectiveCost PricingQuantity"
)
ALLOCATION = _names(
    "AllocatedMethodDetails AllocatedMethodId AllocatedResourceId AllocatedResourceName "
    "AllocatedTags"
)


def _price(effective_from, inp: str, out: str, cached: str | None = None, written=None) -> dict:
    """A ModelPrice's fields: USD per million tokens."""
    return dict(
        effective_from=effective_from,
        input_usd_per_mtok=inp,
        output_usd_per_mtok=out,
        cached_input_usd_per_mtok=cached,
        cache_write_usd_per_mtok=written,
    )


P1 = _price(utc(2026, 10, 1), "2.50", "10.00", cached="1.25")
P2 = _price(utc(2026, 11, 10, 14, 30), "2.00", "8.00", cached="1.00")  # inside an hour
P3 = _price(utc(2026, 11, 20), "1.50", "6.00", cached="0.75")  # on the hour
MINI = _price(utc(2026, 1, 1), "0.15", "0.60", written="0.1875")
GPT41 = _price(utc(2026, 1, 1), "2.00", "8.00")


def _null(value: str | None) -> str | None:
    return None if value in ("", None) else value


def _decimal(value: str | None) -> Decimal | None:
    return None if value is None else Decimal(value)


def _key_value(text: str) -> dict:
    """KeyValueFormat-A-001..004: a JSON object, unique keys, scalar values."""

    def pairs(items):
        keys = [k for k, _ in items]
        assert len(keys) == len(set(keys)), f"duplicate keys in {text}"  # KeyValueFormat-A-002-M
        return dict(items)

    value = json.loads(text, object_pairs_hook=pairs, parse_float=Decimal)
    assert isinstance(value, dict), text  # KeyValueFormat-A-001-M
    for item in value.values():  # KeyValueFormat-A-003-M / A-004-M
        assert item is None or isinstance(item, str | int | Decimal | bool), text
    return value


def _ratio(row: dict) -> Decimal:
    details = json.loads(row["AllocatedMethodDetails"], parse_float=Decimal)
    [element] = details["Elements"]
    return Decimal(element["AllocatedRatio"])


def _priced_event(prices: dict, started_at: datetime, **fields) -> UsageEvent:
    """A ledger row priced as the gateway prices it (gateway.pricing) at ``prices``."""
    usage = Usage(
        uncached_input=fields.pop("uncached", 0),
        cached_input=fields.pop("cached", 0),
        cache_write=fields.pop("written", 0),
        output=fields.pop("output", 0),
    )
    price = Price.per_mtok(
        effective_from=prices["effective_from"],
        input_usd_per_mtok=Decimal(prices["input_usd_per_mtok"]),
        output_usd_per_mtok=Decimal(prices["output_usd_per_mtok"]),
        cached_input_usd_per_mtok=_decimal(prices.get("cached_input_usd_per_mtok")),
        cache_write_usd_per_mtok=_decimal(prices.get("cache_write_usd_per_mtok")),
    )
    cost = cost_of(usage, price)
    return event(
        started_at=started_at,
        prompt_tokens=usage.prompt_tokens,
        completion_tokens=usage.output,
        cached_tokens=usage.cached_input,
        cache_write_tokens=usage.cache_write,
        input_cost=cost.input,
        cached_input_cost=cost.cached_input,
        cache_write_cost=cost.cache_write,
        output_cost=cost.output,
        **fields,
    )


class FocusRulesTests(APITestCase):
    @classmethod
    def setUpTestData(cls):
        super().setUpTestData()
        RollupState.objects.all().delete()
        a, b = cls.org_a, cls.org_b
        sim = Provider.objects.create(
            org=a, slug="sim", kind="openai", base_url="http://127.0.0.1:9100/v1"
        )
        azure = Provider.objects.create(
            org=a,
            slug="azure-east",
            kind="azure",
            base_url="https://east.openai.azure.com",
            publisher="OpenAI",
        )
        reseller = Provider.objects.create(
            org=a,
            slug="openai",
            kind="openai",
            base_url="https://api.openai.com/v1",
            invoice_issuer="Reseller Ltd",
        )
        Provider.objects.create(
            org=b, slug="sim", kind="openai", base_url="http://127.0.0.1:9100/v1"
        )
        for org, provider, name, prices in [
            (a, sim, "gpt-4o", (P1, P2, P3)),
            (a, azure, "gpt-4o-mini", (MINI,)),
            (a, reseller, "gpt-4.1", (GPT41,)),
            (b, Provider.objects.get(org=b), "gpt-4o", (P1,)),
        ]:
            model = LLMModel.objects.create(
                org=org, provider=provider, name=name, upstream_model=name
            )
            for price in prices:
                ModelPrice.objects.create(model=model, **price)
        search = dict(org=a, team=cls.team_a, model="gpt-4o", provider="sim")
        on_10th = lambda h, m: utc(2026, 11, 10, h, m)  # noqa: E731
        summary = dict(**search, feature="summarize", endpoint="/summary")
        rows = [
            # team search, feature summarize, around the change at 14:30 (inside the 14h hour)
            (P1, on_10th(9, 0), dict(**summary, key_id=cls.minted_a.key.pk, uncached=1000,
                                     cached=200, output=50)),
            (P1, on_10th(14, 10), dict(**summary, uncached=300, output=10)),
            (P2, on_10th(14, 45), dict(**summary, uncached=700, cached=100, output=40)),
            (P2, on_10th(18, 0), dict(**summary, uncached=500, output=5)),
            # a feature seen only in the cut hour, after the change
            (P2, on_10th(14, 50), dict(**search, feature="chat", endpoint="/chat", uncached=90,
                                       output=9)),
            # another team, only in the cut hour, before the change
            (P1, on_10th(14, 20), dict(org=a, team=cls.team_a2, model="gpt-4o", provider="sim",
                                       feature="ads-copy", uncached=400, output=4)),
            # evaluation (shadow) calls on both sides of the change
            (P1, on_10th(10, 0), dict(**summary, shadow=True, uncached=120, output=12)),
            (P2, on_10th(14, 40), dict(**summary, shadow=True, uncached=80, output=8)),
            # the change at midnight of the 20th: no hour is cut
            (P2, utc(2026, 11, 19, 23, 30), dict(**search, feature="summarize", uncached=100,
                                                 output=1)),
            (P3, utc(2026, 11, 20, 0, 30), dict(**search, feature="summarize", uncached=100,
                                                output=1)),
            # Azure (publisher OpenAI) with cache writes; org-level spend without a team
            (MINI, utc(2026, 11, 2, 8), dict(org=a, team=cls.team_a, model="gpt-4o-mini",
                                             provider="azure-east", feature="chat",
                                             endpoint="/chat", uncached=100, written=30,
                                             status="error")),
            (MINI, utc(2026, 11, 1, 9), dict(org=a, model="gpt-4o-mini", provider="sim",
                                             uncached=80, output=20)),
            # bought through a reseller, the last second of the window
            (GPT41, utc(2026, 11, 30, 23, 59, 59), dict(org=a, team=cls.team_a2, model="gpt-4.1",
                                                        provider="openai", feature="ads-copy",
                                                        uncached=100, output=20)),
            # the other organisation, and outside the window
            (P1, utc(2026, 11, 10, 9), dict(org=b, team=cls.team_b, model="gpt-4o", provider="sim",
                                            feature="summarize", uncached=1000, output=10)),
            (P1, utc(2026, 10, 31, 23, 59, 59), dict(**search, feature="summarize", uncached=9)),
            (P3, utc(2026, 12, 1), dict(**search, feature="summarize", uncached=9)),
        ]  # fmt: skip
        for prices, started_at, fields in rows:
            _priced_event(prices, started_at, **fields)
        # a call lost in flight: its admission upper bound, no direction carries it
        lost = event(
            org=a,
            team=cls.team_a,
            model="gpt-4o",
            provider="sim",
            feature="summarize",
            endpoint="/summary",
            status="lost",
            prompt_tokens=1000,
            completion_tokens=0,
            input_cost="0",
            output_cost="0",
            started_at=on_10th(11, 0),
            estimated=True,
            save=False,
        )
        lost.cost = Decimal("0.004")
        lost.save()
        # a model the catalog no longer knows: its rows take the ledger's own rate
        event(
            org=a,
            team=cls.team_a,
            model="claude-old",
            provider="sim-claude",
            feature="chat",
            prompt_tokens=300,
            completion_tokens=30,
            input_cost="0.0009",
            output_cost="0.00045",
            started_at=utc(2026, 11, 3, 12),
        )
        usage_rollup()
        cls._exports = {}

    # --- helpers ------------------------------------------------------------------------
    def export(self, version: str, user=None, **params) -> tuple[list[str], list[dict]]:
        user = user or self.finance_a
        key = (version, user.pk, tuple(sorted(params.items())))
        if key not in self._exports:
            query = {**WINDOW, "focus_version": version, **params}
            response = self.get(user, "/exports/focus/", **query)
            self.assertEqual(response.status_code, 200, getattr(response, "content", b""))
            reader = csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode()))
            rows = [{k: _null(v) for k, v in row.items()} for row in reader]
            self._exports[key] = (list(reader.fieldnames or []), rows)
        return self._exports[key]

    def each_version(self, *, include_evaluation: bool = True) -> list[tuple[str, list]]:
        """(version, rows) for 1.2 and 1.3 (whose rule ids are those of 1.2 prefixed CAU-)."""
        params = {"include_evaluation": "true"} if include_evaluation else {}
        return [(v, self.export(v, **params)[1]) for v in VERSIONS]

    def ledger(self, *, shadow: bool | None = None, **filters) -> Decimal:
        events = UsageEvent.objects.filter(
            org_id=self.org_a.pk,
            started_at__gte=utc(2026, 11, 1),
            started_at__lt=utc(2026, 12, 1),
            **filters,
        )
        if shadow is not None:
            events = events.filter(shadow=shadow)
        return sum((Decimal(e.cost) for e in events), Decimal(0))

    # --- presence and column handling --------------------------------------------------------
    def test_costandusage_d_presence_rules(self):
        """CostAndUsage-D-004-C..D-068-M (1.2) and CAU-CostAndUsage-D-004-C..D-076-M (1.3):
        every mandatory column, the conditional ones our criteria require (ListUnitPrice D-004,
        ConsumedQuantity D-011, SubAccountId D-019, SubAccountName D-029, ContractedUnitPrice
        D-034, SkuPriceId D-058, SkuMeter D-059, SkuId D-060, SkuPriceDetails D-061, Tags D-064,
        ConsumedUnit D-066), the recommended ones (ChargeFrequency D-027-O, InvoiceId D-033-O,
        ServiceSubcategory D-042-O), PricingCategory (D-022-C), the PricingCurrency columns
        (D-045-C, D-046-C, D-050-C, D-054-C); in 1.3 also the allocation columns (D-069-C..D-073-C),
        HostProviderName (D-075-M), ServiceProviderName (D-076-M), and the deprecated
        ProviderName (D-038-M) and PublisherName (D-021-M), still required."""
        mandatory = _names(
            "BilledCost BillingAccountId BillingAccountName BillingCurrency BillingPeriodEnd "
            "BillingPeriodStart ChargeCategory ChargeClass ChargeDescription ChargePeriodEnd "
            "ChargePeriodStart ContractedCost EffectiveCost InvoiceIssuerName ListCost "
            "PricingQuantity PricingUnit ProviderName PublisherName ServiceCategory ServiceName"
        )
        ours = _names(
            "ListUnitPrice ConsumedQuantity ConsumedUnit SubAccountId SubAccountName "
            "ContractedUnitPrice SkuId SkuMeter SkuPriceId SkuPriceDetails Tags ChargeFrequency "
            "InvoiceId ServiceSubcategory PricingCategory PricingCurrency "
            "PricingCurrencyContractedUnitPrice PricingCurrencyEffectiveCost "
            "PricingCurrencyListUnitPrice"
        )
        added_1_3 = {*ALLOCATION, "HostProviderName", "ServiceProviderName"}
        for version in VERSIONS:
            with self.subTest(version=version):
                header, _ = self.export(version)
                self.assertEqual(header, list(columns(version)))
                self.assertLessEqual({*mandatory, *ours}, set(header))
                if version == "1.3":
                    self.assertLessEqual(added_1_3, set(header))
                else:
                    self.assertFalse(added_1_3 & set(header))

    def test_columnhandling_a_001_003_010_012_013_column_ids_and_order(self):
        """ColumnHandling-A-001-M (PascalCase), A-003-M (alphanumeric), A-010-M (custom columns
        prefixed x_), A-012-O / A-013-O (FOCUS columns first, custom ones after, not mixed)."""
        for version in VERSIONS:
            header, _ = self.export(version)
            focus = [c for c in header if not c.startswith("x_")]
            self.assertTrue(all(PASCAL_CASE.match(c) for c in focus), focus)
            self.assertEqual(header[: len(focus)], focus)
            self.assertEqual(header[len(focus) :], list(CUSTOM_COLUMNS))
            self.assertEqual(tuple(focus), FOCUS_COLUMNS[version])

    # --- types and formats ---------------------------------------------------------------------
    def test_type_decimal_and_numericformat_rules(self):
        """TypeDecimal and NumericFormat of every Decimal column: BilledCost-C-001-M / C-002-M,
        ListCost-C-001-M / C-002-M, ContractedCost-C-001-M / C-002-M, EffectiveCost-C-001-M /
        C-002-M, PricingQuantity-C-001-M / C-002-M / C-008-M, ConsumedQuantity-C-001-M / C-002-M /
        C-008-C, ListUnitPrice-C-001-M / C-002-M, ContractedUnitPrice-C-002-M / C-003-M,
        PricingCurrencyListUnitPrice-C-001-M / C-002-M, PricingCurrencyContractedUnitPrice-C-001-M
        / C-002-M, PricingCurrencyEffectiveCost-C-001-M / C-002-M (CAU- in 1.3). A decimal is
        fixed-point text with a decimal point: a bare integer (``1100``) is an integer to the
        validator's CSV reader and fails TypeDecimal (the bug of PricingQuantity /
        ConsumedQuantity before)."""
        for _, rows in self.each_version():
            for column in DECIMAL_COLUMNS:
                values = [r[column] for r in rows if r[column] is not None]
                self.assertTrue(values, column)
                for value in values:
                    self.assertRegex(value, DECIMAL_TEXT, column)
                    self.assertRegex(value, NUMERIC_FORMAT, column)

    def test_datetime_rules(self):
        """BillingPeriodStart-C-001-M / C-002-M / C-003-M, BillingPeriodEnd-C-001-M / C-002-M /
        C-003-M, ChargePeriodStart-C-001-M / C-002-M / C-003-M, ChargePeriodEnd-C-001-M /
        C-002-M / C-003-M; DateTimeFormat-A-001-M..A-006-M (UTC, YYYY-MM-DDTHH:mm:ssZ)."""
        for _, rows in self.each_version():
            for row in rows:
                for column in DATETIME_COLUMNS:
                    self.assertIsNotNone(row[column], column)
                    self.assertRegex(row[column], DATETIME_FORMAT)

    def test_type_string_and_stringhandling_rules(self):
        """TypeString and FormatString (StringHandling-A-001-M) of the string columns:
        BillingAccountId-C-002-M / C-003-M, BillingAccountName-C-001-M / C-002-M,
        ChargeDescription-C-001-M / C-002-M, InvoiceIssuerName-C-001-M / C-002-M,
        ProviderName-C-001-M / C-002-M, PublisherName-C-001-M / C-002-M, ServiceName-C-001-M /
        C-002-M, SkuId-C-001-M / C-002-M, SkuPriceId-C-001-M / C-002-M, SkuMeter-C-001-M /
        C-002-M, SubAccountId-C-001-M / C-002-M, SubAccountName-C-001-M / C-002-M,
        PricingUnit-C-001-M / C-002-M, ConsumedUnit-C-001-M / C-002-M, InvoiceId-C-001-M /
        C-002-M; 1.3: CAU-ServiceProviderName-C-001-M / C-002-M, CAU-HostProviderName (type,
        format), CAU-AllocatedMethodId-C-001-M / C-002-M, CAU-AllocatedMethodDetails-C-001-M /
        C-002-M, AllocatedResourceId and AllocatedResourceName (type, format). No string column
        is all numbers (the CSV reader would type it as one); the validator's FormatString
        accepts ASCII only (the specification allows any Unicode; our fixtures are ASCII)."""
        for version, rows in self.each_version():
            strings = [c for c in FOCUS_COLUMNS[version] if c not in DECIMAL_COLUMNS]
            for column in strings:
                values = [r[column] for r in rows if r[column] is not None]
                if values:
                    self.assertFalse(all(NUMERIC_FORMAT.match(v) for v in values), column)
                    self.assertTrue(all(v.isascii() for v in values), column)

    def test_allowed_values_rules(self):
        """ChargeCategory-C-003-M, ChargeClass-C-005-C, ChargeFrequency-C-003-M,
        PricingCategory-C-007-M, ServiceCategory-C-003-M, ServiceSubcategory-C-003-M and
        C-004-M (its parent category), ChargeFrequency-C-004-C (not Usage-Based for a Purchase:
        there is none), PricingCategory-C-008-C (Standard: the catalog rate of the account);
        CAU- in 1.3. The export emits Usage and Adjustment rows only (no Tax, Purchase, Credit
        or Correction, so the rules about those hold trivially)."""
        for _, rows in self.each_version():
            self.assertEqual({r["ChargeCategory"] for r in rows}, {"Usage", "Adjustment"})
            self.assertEqual({r["ChargeClass"] for r in rows}, {None})
            self.assertEqual({r["ChargeFrequency"] for r in rows}, {"Usage-Based"})
            self.assertEqual({r["PricingCategory"] for r in rows}, {"Standard", None})
            self.assertEqual({r["ServiceCategory"] for r in rows}, {"AI and Machine Learning"})
            self.assertEqual({r["ServiceSubcategory"] for r in rows}, {"Generative AI"})

    def test_currency_rules(self):
        """BillingCurrency-C-003-M / C-004-M / C-006-M (ISO 4217 national currency, not null),
        PricingCurrency-C-003-M / C-004-M; the PricingCurrency* columns equal their billing
        currency twins, both currencies being USD (PricingCurrencyEffectiveCost-C-003-M /
        C-006-M, PricingCurrencyListUnitPrice-C-009-M,
        PricingCurrencyContractedUnitPrice-C-009-C)."""
        for _, rows in self.each_version():
            for row in rows:
                self.assertEqual((row["BillingCurrency"], row["PricingCurrency"]), ("USD", "USD"))
                self.assertEqual(row["PricingCurrencyEffectiveCost"], row["EffectiveCost"])
                self.assertEqual(row["PricingCurrencyListUnitPrice"], row["ListUnitPrice"])
                self.assertEqual(
                    row["PricingCurrencyContractedUnitPrice"], row["ContractedUnitPrice"]
                )

    def test_keyvalueformat_tags_c_001_and_skupricedetails_c_001_017_rules(self):
        """Tags-C-001-M, SkuPriceDetails-C-001-M, CAU-AllocatedTags-C-001-M: KeyValueFormat
        (KeyValueFormat-A-001-M..A-004-M); Tags-C-012-M: the gateway's own tag keys carry its
        prefix; SkuPriceDetails-C-017-C: keys not FOCUS-defined start with x_;
        CAU-AllocatedTags-C-006-M: no allocated tag repeats a key of Tags."""
        for version, rows in self.each_version():
            for row in rows:
                for column in KEY_VALUE_COLUMNS:
                    in_version = version == "1.3" or column in ("SkuPriceDetails", "Tags")
                    if in_version and row[column] is not None:
                        _key_value(row[column])
                tags = _key_value(row["Tags"])
                self.assertTrue(tags and all(k.startswith("llmfinops/") for k in tags), tags)
                if row["SkuPriceDetails"] is not None:
                    self.assertTrue(
                        all(k.startswith("x_") for k in _key_value(row["SkuPriceDetails"]))
                    )
                if version == "1.3":
                    self.assertFalse(set(_key_value(row["AllocatedTags"])) & set(tags))

    def test_unitformat_consumedunit_c_003_pricingunit_c_003(self):
        """ConsumedUnit-C-003-O, PricingUnit-C-003-O (UnitFormat: ``Tokens``, ``1000000
        Tokens`` as providers publish prices), PricingUnit-C-008-M (the price list's unit)."""
        for _, rows in self.each_version():
            units = {(r["ConsumedUnit"], r["PricingUnit"]) for r in rows if r["PricingUnit"]}
            self.assertEqual(units, {("Tokens", "1000000 Tokens")})
            self.assertTrue(all(UNIT_FORMAT.match(u) for pair in units for u in pair))

    # --- nullability ---------------------------------------------------------------------------
    def test_not_null_rules(self):
        """BilledCost-C-003-M, BillingAccountId-C-001-M, BillingAccountName-C-003-C,
        ChargeCategory-C-002-M, ContractedCost-C-003-M / C-004-M, EffectiveCost-C-003-M / C-004-M,
        InvoiceIssuerName-C-003-M, ListCost-C-003-M / C-004-M, ProviderName-C-003-M,
        PublisherName-C-003-M, ServiceCategory-C-002-M, ServiceName-C-003-M,
        ServiceSubcategory-C-002-M, ChargeFrequency-C-002-M, ChargeDescription-C-003-O; 1.3
        (CAU-): the same, and ServiceProviderName-C-003-M, HostProviderName (not null)."""
        columns_ = _names(
            "BilledCost BillingAccountId BillingAccountName ChargeCategory ContractedCost "
            "EffectiveCost InvoiceIssuerName ListCost ProviderName PublisherName "
            "ServiceCategory ServiceName ServiceSubcategory ChargeFrequency ChargeDescription"
        )
        for version, rows in self.each_version():
            extra = ("ServiceProviderName", "HostProviderName") if version == "1.3" else ()
            for row in rows:
                for column in columns_ + extra:
                    self.assertIsNotNone(row[column], column)

    def test_usage_nullability_rules(self):
        """Not null on Usage rows (no Correction is emitted), null on non-Usage ones:
        ListUnitPrice-C-005-C, ContractedUnitPrice-C-006-C, PricingQuantity-C-005-C,
        SkuId-C-005-C, SkuPriceId-C-005-C, PricingCategory-C-004-C,
        PricingCurrencyListUnitPrice-C-005-C, PricingCurrencyContractedUnitPrice-C-005-C,
        ConsumedQuantity-C-004-C / C-006-C (the specification's text; the model's condition of
        C-006-C reads "is Correction", a slip), and for Tax (none) the *-C-004-C rules;
        ConsumedUnit-C-005-C / C-006-C, PricingUnit-C-005-C / C-006-C, SkuMeter-C-004-C /
        C-005-C, SkuPriceDetails-C-004-C: null exactly with their partner column (CAU- in 1.3)."""
        usage = (
            "ListUnitPrice",
            "ContractedUnitPrice",
            "PricingQuantity",
            "SkuId",
            "SkuPriceId",
            "PricingCategory",
            "PricingCurrencyListUnitPrice",
            "PricingCurrencyContractedUnitPrice",
            "ConsumedQuantity",
        )
        pairs = (
            ("ConsumedUnit", "ConsumedQuantity"),
            ("PricingUnit", "PricingQuantity"),
            ("SkuMeter", "SkuId"),
            ("SkuPriceDetails", "SkuPriceId"),
        )
        for _, rows in self.each_version():
            for row in rows:
                is_usage = row["ChargeCategory"] == "Usage"
                for column in usage:
                    self.assertEqual(row[column] is not None, is_usage, (column, row))
                for column, partner in pairs:
                    self.assertEqual(row[column] is None, row[partner] is None, column)

    def test_subaccountname_c_004_005_invoiceid_c_004_chargeclass_c_003(self):
        """SubAccountName-C-004-C / C-005-C (null exactly when SubAccountId is: org-level spend),
        SubAccountId-C-004-C / C-005-C (a team is the sub account), InvoiceId-C-004-C (null: the
        gateway knows no invoice), ChargeClass-C-003-C (null: no correction), Tags-C-002-O."""
        for _, rows in self.each_version():
            for row in rows:
                self.assertEqual(row["SubAccountName"] is None, row["SubAccountId"] is None)
                self.assertEqual(row["SubAccountId"] is None, row["x_Team"] is None)
                self.assertIsNone(row["InvoiceId"])
                self.assertIsNone(row["ChargeClass"])
            self.assertIn(None, {r["SubAccountId"] for r in rows})

    # --- cross-column rules --------------------------------------------------------------------
    def test_listunitprice_c_010_listcost_c_009_contractedunitprice_c_011_pricingquantity_c_009(
        self,
    ):
        """ListUnitPrice-C-010-C / ListCost-C-009-C, ContractedUnitPrice-C-011-C /
        ContractedCost-C-009-C, PricingQuantity-C-009-C: unit price x PricingQuantity is the
        cost, by the export's rounding rule (half-even to the ledger's 12 places);
        ListUnitPrice-C-008-M, ContractedUnitPrice-C-009-C,
        PricingCurrencyListUnitPrice-C-008-M, PricingCurrencyContractedUnitPrice-C-008-C
        (non-negative). Where the gateway priced the calls, PricingQuantity is exactly the
        consumed tokens in millions."""
        for _, rows in self.each_version():
            for row in [r for r in rows if r["ChargeCategory"] == "Usage"]:
                quantity = Decimal(row["PricingQuantity"])
                for price, cost in (
                    ("ListUnitPrice", "ListCost"),
                    ("ContractedUnitPrice", "ContractedCost"),
                    ("PricingCurrencyListUnitPrice", "PricingCurrencyEffectiveCost"),
                ):
                    unit = Decimal(row[price])
                    self.assertGreaterEqual(unit, 0)
                    product = (unit * quantity).quantize(TWELVE, ROUND_HALF_EVEN)
                    self.assertEqual(product, Decimal(row[cost]), (price, row))
                if row["x_PriceEffectiveFrom"] is None:
                    continue  # claude-old: no catalog price, the ledger's rate
                tokens = Decimal(row["ConsumedQuantity"])
                lost_here = (row["x_Feature"], row["ChargePeriodStart"], row["SkuId"]) == (
                    "summarize",
                    "2026-11-10T00:00:00Z",
                    "gpt-4o:input",
                ) and row["x_Evaluation"] == "false"
                # the lost call's 1000 prompt tokens are consumed but not priced at the rate
                self.assertEqual(quantity * 1_000_000, tokens - (1000 if lost_here else 0))

    def test_costs_equal_without_discounts_effectivecost_c_010_listcost_c_008_contractedcost_c_008(
        self,
    ):
        """No discount, commitment or negotiated price: ListCost = ContractedCost = BilledCost =
        EffectiveCost on every row (DiscountHandling does not apply), which for the Adjustment
        rows (no unit price) is EffectiveCost-C-010-C, ListCost-C-008-C, ContractedCost-C-008-C;
        EffectiveCost-C-005-C (0 for a Purchase: there is none)."""
        for _, rows in self.each_version():
            for row in rows:
                costs = {
                    row[c] for c in ("BilledCost", "ContractedCost", "EffectiveCost", "ListCost")
                }
                self.assertEqual(len(costs), 1, row)

    def test_billedcost_c_005_not_a_marketplace_charge(self):
        """BilledCost-C-005-C (1.2: ProviderName vs InvoiceIssuerName) and CAU-BilledCost-C-005-C
        (1.3: ServiceProviderName vs InvoiceIssuerName): a charge whose seller is not its
        invoice issuer must be 0. The gateway resells nothing, so the seller is the invoice
        issuer on every row, reseller included, and BilledCost keeps its value."""
        for version, rows in self.each_version():
            seller = "ServiceProviderName" if version == "1.3" else "ProviderName"
            for row in rows:
                self.assertEqual(row[seller], row["InvoiceIssuerName"])
            reseller = {r["InvoiceIssuerName"]: r for r in rows}["Reseller Ltd"]
            self.assertNotEqual(Decimal(reseller["BilledCost"]), 0)
            self.assertEqual(reseller["PublisherName"], "OpenAI")

    def test_provider_names_1_3_serviceprovidername_hostprovidername(self):
        """CAU-ServiceProviderName-C-000-M and CAU-HostProviderName-C-000-M (present, string,
        not null), CAU-ProviderName / CAU-PublisherName kept during the deprecation: the host
        runs the API (Microsoft for Azure, OpenAI behind the reseller), the seller invoices."""
        _, rows = self.export("1.3", include_evaluation="true")
        names = {
            (
                r["x_Model"],
                r["ServiceProviderName"],
                r["HostProviderName"],
                r["ProviderName"],
                r["PublisherName"],
                r["InvoiceIssuerName"],
                r["ServiceName"],
            )
            for r in rows
        }
        self.assertLessEqual(
            {
                ("gpt-4o", "sim", "sim", "sim", "sim", "sim", "sim API"),
                (
                    "gpt-4o-mini",
                    "Microsoft",
                    "Microsoft",
                    "Microsoft",
                    "OpenAI",
                    "Microsoft",
                    "Azure OpenAI Service",
                ),
                (
                    "gpt-4.1",
                    "Reseller Ltd",
                    "OpenAI",
                    "Reseller Ltd",
                    "OpenAI",
                    "Reseller Ltd",
                    "OpenAI API",
                ),
                (
                    "claude-old",
                    "sim-claude",
                    "sim-claude",
                    "sim-claude",
                    "sim-claude",
                    "sim-claude",
                    "sim-claude API",
                ),
            },
            names,
        )

    def test_distinct_count_skupriceid_c_008_servicename_c_005_c_008(self):
        """SkuPriceId-C-008-M (one SkuId per SkuPriceId), ServiceName-C-005-C (one
        ServiceCategory per ServiceName), ServiceName-C-008-C (one ServiceSubcategory),
        SkuMeter-C-006-O (one SkuMeter per SkuId), SkuPriceDetails-C-013-O (one SkuPriceDetails
        per SkuPriceId), SkuPriceId-C-009-M (the same SkuPriceId across a price change)."""
        for _, rows in self.each_version():
            for a, b in (
                ("SkuPriceId", "SkuId"),
                ("ServiceName", "ServiceCategory"),
                ("ServiceName", "ServiceSubcategory"),
                ("SkuId", "SkuMeter"),
                ("SkuPriceId", "SkuPriceDetails"),
            ):
                seen = defaultdict(set)
                for row in rows:
                    if row[a] is not None:
                        seen[row[a]].add(row[b])
                self.assertTrue(all(len(v) == 1 for v in seen.values()), (a, b, seen))
            prices = {
                r["ListUnitPrice"] for r in rows if r["SkuPriceId"] == "gpt-4o:input:on-demand"
            }
            self.assertEqual(prices, {"2.5", "2.0", "1.5"})

    def test_charge_and_billing_periods_c_004_bounds(self):
        """ChargePeriodStart-C-004-M (inclusive) < ChargePeriodEnd-C-004-M (exclusive), both
        inside the billing period of BillingPeriodStart-C-004-M / BillingPeriodEnd-C-004-M (the
        UTC month), a charge period within one UTC day."""
        for _, rows in self.each_version():
            for row in rows:
                start, end = row["ChargePeriodStart"], row["ChargePeriodEnd"]
                self.assertLess(start, end)
                self.assertLessEqual(row["BillingPeriodStart"], start)
                self.assertLessEqual(end, row["BillingPeriodEnd"])
                self.assertTrue(end[:10] == start[:10] or end[11:] == "00:00:00Z", row)

    # --- FOCUS 1.3: split cost allocation ------------------------------------------------------
    def _origins(self, rows) -> dict:
        dims = [c for c in FOCUS_COLUMNS["1.3"] if c not in ALLOCATION + AGGREGATABLE]
        groups = defaultdict(list)
        for row in rows:
            groups[tuple(row[c] for c in dims)].append(row)
        return groups

    def test_cau_allocatedmethoddetailsobject_o_001_to_o_021(self):
        """CAU-AllocatedMethodId-C-001-M / C-002-M / C-005-C, CAU-AllocatedMethodDetails-C-001-M
        / C-003-M / C-006-C and its object: O-001-M (Elements, an array), O-002-M (of objects),
        O-003-M (KeyValueFormat), O-009-C (other keys x_), O-012-M (AllocatedRatio in each),
        O-013-M (a decimal), O-016-C (UsageUnit with UsageQuantity), O-018-O (UsageUnit in
        UnitFormat), O-021-M (UsageQuantity numeric); CAU-AllocatedResourceId (not null for an
        allocated charge), CAU-AllocatedResourceName (null exactly when AllocatedResourceId is);
        DataGeneratorCalculatedSplitCostAllocationHandling-A-007-M (the method is documented)."""
        _, rows = self.export("1.3", include_evaluation="true")
        for row in rows:
            self.assertEqual(row["AllocatedMethodId"], "llmfinops/metered-calls")
            self.assertIsNotNone(row["AllocatedResourceId"])
            self.assertIsNotNone(row["AllocatedResourceName"])
            details = json.loads(row["AllocatedMethodDetails"], parse_float=Decimal)
            self.assertIsInstance(details["Elements"], list)
            for element in details["Elements"]:
                self.assertIsInstance(element, dict)
                self.assertIn("AllocatedRatio", element)
                self.assertIsInstance(element["AllocatedRatio"], Decimal)
                self.assertTrue(
                    all(
                        k in ("AllocatedRatio", "UsageQuantity", "UsageUnit") or k.startswith("x_")
                        for k in element
                    )
                )
                if "UsageQuantity" in element:
                    self.assertRegex(str(element["UsageQuantity"]), NUMERIC_FORMAT)
                    self.assertRegex(element["UsageUnit"], UNIT_FORMAT)
        with open("docs/reports.md", encoding="utf-8") as doc:
            self.assertTrue("`llmfinops/metered-calls`" in doc.read())

    def test_cau_allocatedmethoddetailsobject_o_014_and_split_handling_a_003_a_004_a_005(self):
        """O-014-M: the AllocatedRatio of the allocated charges of one origin sum to exactly 1,
        each its share of the cost; DataGeneratorCalculatedSplitCostAllocationHandling-A-004-M
        and A-005-M: an origin's allocated charges share every dimension and the Tags; A-003-M:
        they sum to the origin charge (the team's ledger spend on that SKU in the period)."""
        for user in (self.finance_a, self.lead_a):  # a lead sees whole origins too
            _, rows = self.export("1.3", user=user, include_evaluation="true")
            for members in self._origins(rows).values():
                ratios = [_ratio(r) for r in members]
                self.assertEqual(sum(ratios), 1, members)
                total = sum(Decimal(r["BilledCost"]) for r in members)
                for row, ratio in zip(members, ratios, strict=True):
                    if total:
                        share = Decimal(row["BilledCost"]) / total
                        self.assertLessEqual(abs(ratio - share), TWELVE * len(members))
        _, rows = self.export("1.3", include_evaluation="true")
        for members in self._origins(rows).values():
            first = members[0]
            if first["ChargeCategory"] != "Usage" or first["x_Model"] != "gpt-4o":
                continue
            direction = first["SkuId"].split(":")[1]
            field = {
                "input": "input_cost",
                "cached-input": "cached_input_cost",
                "output": "output_cost",
            }[direction]
            events = UsageEvent.objects.filter(
                org_id=self.org_a.pk,
                model="gpt-4o",
                shadow=first["x_Evaluation"] == "true",
                started_at__gte=datetime.fromisoformat(first["ChargePeriodStart"]),
                started_at__lt=datetime.fromisoformat(first["ChargePeriodEnd"]),
                team_id=self.team_a.pk if first["x_Team"] == "search" else self.team_a2.pk,
            )
            ledger = sum((Decimal(getattr(e, field)) for e in events), Decimal(0))
            self.assertEqual(sum(Decimal(r["BilledCost"]) for r in members), ledger, first)

    # --- the export: price windows, totals, versions -------------------------------------------
    def test_rows_split_at_a_price_change_inside_an_hour_exactly(self):
        """The change at 14:30 cuts the 14h hour: the day's rows end at 14:30 at the old price
        and start there at the new one, each with the ledger's spend of its own part, the cut
        hour read from the ledger (calls at 14:10 and 14:20 before, 14:45 and 14:50 after)."""
        for _, rows in self.each_version(include_evaluation=False):
            summary = [
                r
                for r in rows
                if r["SkuId"] == "gpt-4o:input"
                and r["x_Team"] == "search"
                and r["ChargePeriodStart"].startswith("2026-11-10")
            ]
            periods = {
                (
                    r["ChargePeriodStart"],
                    r["ChargePeriodEnd"],
                    r["ListUnitPrice"],
                    r["x_PriceEffectiveFrom"],
                )
                for r in summary
            }
            self.assertEqual(
                periods,
                {
                    ("2026-11-10T00:00:00Z", "2026-11-10T14:30:00Z", "2.5", "2026-10-01T00:00:00Z"),
                    ("2026-11-10T14:30:00Z", "2026-11-11T00:00:00Z", "2.0", "2026-11-10T14:30:00Z"),
                },
            )
            for r in summary:
                lo = datetime.fromisoformat(r["ChargePeriodStart"])
                hi = datetime.fromisoformat(r["ChargePeriodEnd"])
                events = UsageEvent.objects.filter(
                    org_id=self.org_a.pk,
                    team_id=self.team_a.pk,
                    model="gpt-4o",
                    shadow=False,
                    feature=r["x_Feature"] or "",
                    endpoint=r["x_Endpoint"] or "",
                    started_at__gte=lo,
                    started_at__lt=hi,
                )
                self.assertEqual(Decimal(r["BilledCost"]), sum(e.input_cost for e in events))
            chat = [r for r in summary if r["x_Feature"] == "chat"]
            self.assertEqual(
                [(r["ConsumedQuantity"], r["PricingQuantity"]) for r in chat], [("90.0", "0.00009")]
            )
            ads = [r for r in rows if r["x_Team"] == "ads" and r["x_Model"] == "gpt-4o"]
            self.assertEqual({r["ChargePeriodEnd"] for r in ads}, {"2026-11-10T14:30:00Z"})

    def test_rows_split_at_a_price_change_on_the_hour(self):
        """The change at midnight of the 20th needs no ledger read: the 19th is at the old
        price, the 20th at the new one, each for the whole day."""
        _, rows = self.export("1.3")
        found = {
            (r["ChargePeriodStart"], r["ChargePeriodEnd"], r["ListUnitPrice"])
            for r in rows
            if r["SkuId"] == "gpt-4o:output"
            and r["ChargePeriodStart"][:10] in ("2026-11-19", "2026-11-20")
        }
        self.assertEqual(
            found,
            {
                ("2026-11-19T00:00:00Z", "2026-11-20T00:00:00Z", "8.0"),
                ("2026-11-20T00:00:00Z", "2026-11-21T00:00:00Z", "6.0"),
            },
        )

    def test_totals_equal_the_ledger_to_the_cent(self):
        """The BilledCost of all rows is the ledger's spend over the same UTC days to the last
        of its 12 places, in both versions, with and without evaluation, the call lost in
        flight included (as an Adjustment) and the model no longer in the catalog priced at
        the ledger's own rate."""
        for version in VERSIONS:
            for with_eval in (False, True):
                params = {"include_evaluation": "true"} if with_eval else {}
                _, rows = self.export(version, **params)
                total = sum(Decimal(r["BilledCost"]) for r in rows)
                expected = self.ledger() if with_eval else self.ledger(shadow=False)
                self.assertEqual(total, expected, (version, with_eval))
                self.assertEqual(sum(r["x_Evaluation"] == "true" for r in rows) > 0, with_eval)
        _, rows = self.export("1.3")
        [lost] = [r for r in rows if r["ChargeCategory"] == "Adjustment"]
        self.assertEqual(
            (lost["BilledCost"], lost["SkuId"], lost["PricingQuantity"]),
            ("0.004000000000", None, None),
        )
        old = {r["SkuId"]: r["ListUnitPrice"] for r in rows if r["x_Model"] == "claude-old"}
        self.assertEqual(old, {"claude-old:input": "3.0", "claude-old:output": "15.0"})

    def test_focus_version_parameter_on_the_api(self):
        """``focus_version`` selects the columns (1.3 by default, an empty value too, as DRF reads
        query strings); any other value is a 400 with DRF's error body, also for a client asking
        for text/csv."""
        client = self.client_for(self.finance_a)
        default = client.get(f"{API}/exports/focus/", WINDOW)
        header = b"".join(default.streaming_content).decode().splitlines()[0]
        self.assertEqual(header.split(","), list(columns("1.3")))
        self.assertIn("focus-1.3-", default["Content-Disposition"])
        header_1_2, _ = self.export("1.2")
        self.assertEqual(header_1_2, list(columns("1.2")))
        for bad in ("1.1", "2", "1.3 ", "latest"):
            with self.subTest(bad=bad):
                response = client.get(
                    f"{API}/exports/focus/",
                    {**WINDOW, "focus_version": bad},
                    HTTP_ACCEPT="text/csv",
                )
                self.assertEqual(response.status_code, 400)
                self.assertEqual(set(json.loads(response.content)), {"focus_version"})

    def test_focus_version_option_of_the_command(self):
        """``export_focus --focus-version`` writes the API's bytes for that version (1.3 by
        default); an unknown version is refused."""
        for version in VERSIONS:
            with self.subTest(version=version):
                api = self.get(self.admin_a, "/exports/focus/", **WINDOW, focus_version=version)
                out = io.StringIO()
                call_command(
                    "export_focus",
                    "--org=acme",
                    "--start=2026-11-01",
                    "--end=2026-11-30",
                    f"--focus-version={version}",
                    stdout=out,
                )
                self.assertEqual(out.getvalue(), b"".join(api.streaming_content).decode())
        out = io.StringIO()
        call_command("export_focus", org="acme", start="2026-11-01", end="2026-11-30", stdout=out)
        self.assertEqual(out.getvalue().splitlines()[0].split(","), list(columns("1.3")))
        for bad in (["--focus-version=1.1"], []):
            with self.subTest(bad=bad), self.assertRaises(CommandError):
                options = {} if bad else {"focus_version": "9.9"}
                call_command(
                    "export_focus",
                    "--org=acme",
                    "--start=2026-11-01",
                    "--end=2026-11-30",
                    *bad,
                    stdout=io.StringIO(),
                    **options,
                )

    def test_scoping_holds_in_the_cut_hour_and_for_evaluation(self):
        """A lead's export reads the ledger only for its own team: the other team's call in the
        cut hour and its evaluation spend stay out; the other org's rows never come in."""
        _, rows = self.export("1.3", user=self.lead_a, include_evaluation="true")
        self.assertEqual({r["x_Team"] for r in rows}, {"search"})
        self.assertEqual({r["BillingAccountId"] for r in rows}, {"acme"})
        total = sum(Decimal(r["BilledCost"]) for r in rows)
        self.assertEqual(total, self.ledger(team_id=self.team_a.pk))
        self.assertTrue(any(r["x_Evaluation"] == "true" for r in rows))
        _, other = self.export("1.3", user=self.admin_b, include_evaluation="true")
        self.assertEqual({r["BillingAccountId"] for r in other}, {"globex"})
