"""Tables shown on report pages, each downloadable as CSV from the same URL.

A page builds its tables as ``Table`` objects, renders them with ``reports/_table.html`` (a plain
HTML table, so the numbers are there with JavaScript off) and, before rendering, hands them to
``csv_or_none``: a request with ``?format=csv&table=NAME`` gets that table as a CSV download,
through the same tenant-scoped view and with the same rows as the page.

A column's ``kind`` says how its cells read on the page (``finops.money``'s house format:
``usd`` amounts, ``per_mtok`` unit prices, ``pct`` percentages); rows hold the full-precision
values, which the CSV keeps (``5000.000000000000``, not ``$5,000.00``).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from django.http import Http404, HttpRequest, HttpResponse
from django.utils.text import slugify

from finops.money import percent_display, usd_display, usd_per_mtok

# How a column of each kind shows its cells on the page; the CSV has the raw values.
DISPLAY = {"usd": usd_display, "per_mtok": usd_per_mtok, "pct": percent_display}


class Figure(str):
    """A cell that carries its own kind, for a column whose rows differ (a summary's "value"):
    the raw value in the CSV, shown in its kind's format on the page."""

    kind: str

    def __new__(cls, value, kind: str) -> Figure:
        cell = super().__new__(cls, "" if value is None else str(value))
        cell.kind = kind
        return cell


@dataclass(frozen=True, slots=True)
class Column:
    key: str
    label: str
    numeric: bool = False
    kind: str = ""  # "" (as is), "usd", "per_mtok" or "pct": see DISPLAY

    def display(self, value) -> object:
        """The cell as the page shows it; text that is no number (a note such as "not enough
        history") shows as it is."""
        show = DISPLAY.get(value.kind if isinstance(value, Figure) else self.kind)
        if show is None or value is None or value == "":
            return "" if value is None else value
        return show(str(value)) or value


@dataclass(slots=True)
class Table:
    name: str  # slug, unique on its page: selects the table in ``?table=``
    title: str
    columns: Sequence[Column]
    rows: list[dict] = field(default_factory=list)

    def cells(self) -> list[list[tuple[object, bool]]]:
        """Rows as (text, numeric) pairs in column order, for the template: each value in its
        column's display format."""
        return [
            [(c.display(row.get(c.key, "")), c.numeric) for c in self.columns] for row in self.rows
        ]

    def to_csv(self) -> str:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow([c.label for c in self.columns])
        for row in self.rows:
            writer.writerow([_csv_cell(row.get(c.key, "")) for c in self.columns])
        return out.getvalue()


def _csv_cell(value) -> str:
    text = "" if value is None else str(value)
    # A cell starting with one of these is a formula to a spreadsheet (CSV injection).
    if text[:1] in ("=", "+", "-", "@") and not _is_number(text):
        return "'" + text
    return text


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def csv_or_none(
    request: HttpRequest, tables: Iterable[Table], filename: str
) -> HttpResponse | None:
    """The CSV download a request asks for, or None when it asks for the HTML page."""
    if request.GET.get("format") != "csv":
        return None
    wanted = request.GET.get("table", "")
    for table in tables:
        if table.name == wanted:
            response = HttpResponse(table.to_csv(), content_type="text/csv; charset=utf-8")
            name = slugify(f"{filename}-{table.name}") or "table"
            response["Content-Disposition"] = f'attachment; filename="{name}.csv"'
            return response
    raise Http404(f"No table named {wanted!r} on this page.")
