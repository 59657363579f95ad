"""Tables shown on report pages, each downloadable as CSV from the same URL.

A page builds its tables as ``Table`` objects, renders them with ``reports/_table.html`` (a plain
HTML table, so the numbers are there with JavaScript off) and, before rendering, hands them to
``csv_or_none``: a request with ``?format=csv&table=NAME`` gets that table as a CSV download,
through the same tenant-scoped view and with exactly the numbers on the page.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from django.http import Http404, HttpRequest, HttpResponse
from django.utils.text import slugify


@dataclass(frozen=True, slots=True)
class Column:
    key: str
    label: str
    numeric: bool = False


@dataclass(slots=True)
class Table:
    name: str  # slug, unique on its page: selects the table in ``?table=``
    title: str
    columns: Sequence[Column]
    rows: list[dict] = field(default_factory=list)

    def cells(self) -> list[list[tuple[object, bool]]]:
        """Rows as (value, numeric) pairs in column order, for the template."""
        return [[(row.get(c.key, ""), c.numeric) for c in self.columns] for row in self.rows]

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
