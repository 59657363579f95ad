"""The house format of money and percentages on pages (``finops.money``), the template filters
that apply it, and the tables whose page shows it while their CSV keeps the full precision."""

from __future__ import annotations

from decimal import Decimal

from django.template import Context, Template
from django.test import SimpleTestCase

from finops.money import money, percent_display, share_display, usd_display, usd_per_mtok
from reports.tables import Column, Figure, Table


class UsdDisplayTests(SimpleTestCase):
    def test_zero_is_zero_dollars(self):
        for value in (0, Decimal(0), "0", "0.000000000000", Decimal("-0")):
            self.assertEqual(usd_display(value), "$0.00", value)

    def test_none_and_blank_are_empty_not_zero(self):
        self.assertEqual(usd_display(None), "")
        self.assertEqual(usd_display(""), "")

    def test_from_a_cent_up_cents_with_thousands_separators(self):
        self.assertEqual(usd_display("5000.000000"), "$5,000.00")
        self.assertEqual(usd_display(Decimal("1234567.891")), "$1,234,567.89")
        self.assertEqual(usd_display("100.000000000000"), "$100.00")
        self.assertEqual(usd_display("0.01"), "$0.01")

    def test_cents_round_half_even(self):
        self.assertEqual(usd_display("0.015"), "$0.02")
        self.assertEqual(usd_display("0.025"), "$0.02")
        self.assertEqual(usd_display("2.675"), "$2.68")

    def test_under_a_cent_two_significant_digits(self):
        self.assertEqual(usd_display("0.0013427"), "$0.0013")
        self.assertEqual(usd_display("0.004999"), "$0.0050")
        self.assertEqual(usd_display("0.005"), "$0.0050")
        self.assertEqual(usd_display("0.000195"), "$0.00020")
        self.assertEqual(usd_display("0.000000000001"), "$0.0000000000010")

    def test_just_under_a_cent_that_rounds_up_shows_a_cent(self):
        self.assertEqual(usd_display("0.00999"), "$0.01")

    def test_negatives_carry_the_sign_before_the_dollar(self):
        self.assertEqual(usd_display("-1.5"), "-$1.50")
        self.assertEqual(usd_display("-1234.5"), "-$1,234.50")
        self.assertEqual(usd_display("-0.004935"), "-$0.0049")

    def test_floats_ints_and_the_ledgers_strings_read_the_same(self):
        self.assertEqual(usd_display(0.004999), usd_display("0.004999"))
        self.assertEqual(usd_display(5000), "$5,000.00")
        self.assertEqual(usd_display(money(Decimal("0.0013427"))), "$0.0013")

    def test_text_that_is_no_number_is_empty(self):
        self.assertEqual(usd_display("n/a"), "")
        self.assertEqual(usd_display("NaN"), "")


class UnitPriceTests(SimpleTestCase):
    def test_per_million_tokens_up_to_four_decimals_trimmed_to_the_cent(self):
        self.assertEqual(usd_per_mtok("2.5"), "$2.50 / Mtok")
        self.assertEqual(usd_per_mtok("0.075"), "$0.075 / Mtok")
        self.assertEqual(usd_per_mtok(Decimal("15.000000000000")), "$15.00 / Mtok")
        self.assertEqual(usd_per_mtok("1234.56789"), "$1,234.5679 / Mtok")
        self.assertEqual(usd_per_mtok(None), "")


class PercentTests(SimpleTestCase):
    def test_one_decimal(self):
        self.assertEqual(percent_display("12.5"), "12.5%")
        self.assertEqual(percent_display("93.75"), "93.8%")
        self.assertEqual(percent_display("100.00"), "100.0%")

    def test_zero_is_zero_percent(self):
        self.assertEqual(percent_display(0), "0%")
        self.assertEqual(percent_display("0.00"), "0%")

    def test_a_tiny_positive_is_not_zero(self):
        self.assertEqual(percent_display("0.04"), "<0.1%")
        self.assertEqual(percent_display("-0.04"), ">-0.1%")

    def test_none_is_empty_and_a_share_is_a_hundredth(self):
        self.assertEqual(percent_display(None), "")
        self.assertEqual(share_display(Decimal("0.5")), "50.0%")
        self.assertEqual(share_display(None), "")


class FilterTests(SimpleTestCase):
    def test_the_template_filters_apply_the_house_format(self):
        template = Template(
            "{% load dashboards %}"
            "{{ a|usd_display }} {{ p|per_mtok }} {{ s|pct }} {{ n|usd_display }}"
        )
        text = template.render(Context({"a": "5000.000000", "p": "0.6", "s": "0", "n": None}))
        self.assertEqual(text, "$5,000.00 $0.60 / Mtok 0% ")


class TableTests(SimpleTestCase):
    def test_the_page_shows_the_house_format_and_the_csv_keeps_full_precision(self):
        table = Table(
            "t",
            "T",
            (
                Column("name", "Name"),
                Column("cost", "Cost (USD)", numeric=True, kind="usd"),
                Column("share", "Share", numeric=True, kind="pct"),
                Column("value", "Value", numeric=True),
            ),
            [
                {"name": "a", "cost": "5000.000000000000", "share": "0.00", "value": "x"},
                {"name": "b", "cost": "0.001342700000", "share": None, "value": Figure("2", "usd")},
            ],
        )
        self.assertEqual(
            [[text for text, _ in row] for row in table.cells()],
            [["a", "$5,000.00", "0%", "x"], ["b", "$0.0013", "", "$2.00"]],
        )
        self.assertEqual(
            table.to_csv().splitlines(),
            ["Name,Cost (USD),Share,Value", "a,5000.000000000000,0.00,x", "b,0.001342700000,,2"],
        )
