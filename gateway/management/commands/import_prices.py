"""``python manage.py import_prices --format litellm|openrouter FILE --org ORG``: model prices
from a public price catalog. See ``gateway.services.price_import`` and docs/prices.md."""

from __future__ import annotations

import time
from datetime import datetime
from datetime import time as dtime
from decimal import Decimal
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from gateway.services.price_import import (
    FORMATS,
    PRICE_LABELS,
    ImportPlan,
    PriceImportError,
    prices_import,
)
from teams.models import Organization


def _effective(value: str) -> datetime:
    """``2025-07-01`` (midnight, in TIME_ZONE) or an ISO datetime."""
    try:
        when = parse_datetime(value)
        if when is None:
            day = parse_date(value)
            when = datetime.combine(day, dtime.min) if day else None
    except ValueError:
        when = None
    if when is None:
        raise CommandError(f"--effective: {value!r} is not a date (YYYY-MM-DD) or ISO datetime")
    if timezone.is_naive(when):
        when = timezone.make_aware(when)
    return when


def _money(value: Decimal | None) -> str:
    return "none" if value is None else format(value.normalize(), "f")


class Command(BaseCommand):
    help = (
        "Import model prices (USD per token, stored per million tokens) from LiteLLM's price "
        "map or OpenRouter's /api/v1/models JSON into an organisation's models, matched by "
        "upstream model name. Changed prices get a new row from --effective on; history is kept."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("file", help="the catalog JSON file")
        parser.add_argument("--format", required=True, choices=FORMATS, dest="fmt")
        parser.add_argument("--org", required=True, metavar="SLUG", help="organisation slug")
        parser.add_argument(
            "--effective",
            metavar="DATE",
            help="when new prices start: YYYY-MM-DD or ISO datetime, not in the past "
            "(default: now)",
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="print what would change and write nothing"
        )

    def handle(self, *args, file: str, fmt: str, org: str, effective, dry_run: bool, **options):
        organisation = Organization.objects.filter(slug=org).first()
        if organisation is None:
            raise CommandError(f"--org: unknown organisation {org!r}")
        effective_from = _effective(effective) if effective else None
        try:
            text = Path(file).read_bytes()
        except OSError as exc:
            raise CommandError(f"{file}: cannot read ({exc.strerror or exc})") from exc
        started = time.monotonic()
        try:
            plan = prices_import(
                org=organisation,
                fmt=fmt,
                text=text,
                effective_from=effective_from,
                dry_run=dry_run,
            )
        except PriceImportError as exc:
            count = len(exc.errors)
            shown = exc.errors[:50]
            more = [f"... and {count - len(shown)} more"] if count > len(shown) else []
            lines = "\n".join(f"  {e}" for e in [*shown, *more])
            raise CommandError(
                f"{file}: {count} error{'s' if count != 1 else ''}, nothing changed\n{lines}"
            ) from exc
        self._report(plan, dry_run=dry_run, seconds=time.monotonic() - started)

    def _report(self, plan: ImportPlan, *, dry_run: bool, seconds: float) -> None:
        out = self.stdout.write
        when = plan.effective_from.isoformat() if plan.effective_from else "now"
        for change in plan.changes:
            parts = [
                f"{PRICE_LABELS[n]} {_money(getattr(change.old, n, None))} -> "
                f"{_money(change.new[n])}"
                for n in change.changed_fields()
            ]
            out(
                f"price {change.model.name} [{change.entry.key}]: {', '.join(parts)} "
                f"(per Mtok, from {when})"
            )
        for fill in plan.fills:
            parts = [f"{name} none -> {value}" for name, value in fill.values.items()]
            out(f"limits {fill.model.name} [{fill.entry.key}]: {', '.join(parts)}")
        for name, keys in plan.not_modelled.items():
            out(f"not modelled {name} [{plan.matched[name]}]: {', '.join(keys)}")
        for name, key in plan.unpriced.items():
            out(f"no token price {name} [{key}]: left as is")
        for name, keys in plan.ambiguous.items():
            out(f"ambiguous {name}: {', '.join(keys)} (set upstream_model to one of them)")

        catalog = plan.catalog
        verb = "would be added" if dry_run else "added"
        out(
            f"catalog entries read: {len(catalog.entries)} "
            f"({catalog.token_priced} with token prices; skipped: "
            f"{', '.join(catalog.skipped) or 'none'})"
        )
        out(f"matched models: {len(plan.matched)}")
        out(f"price rows {verb}: {len(plan.changes)}")
        out(f"unchanged: {len(plan.unchanged)}")
        out(f"limits filled: {len(plan.fills)}")
        unmatched = [*plan.unmatched, *plan.ambiguous]
        out(
            f"unmatched org models: {len(unmatched)}"
            + (f" ({', '.join(unmatched)})" if unmatched else "")
        )
        tiered = sum(len(keys) for keys in plan.not_modelled.values())
        kind = "tiered" if catalog.format == "litellm" else "per-request/image/search"
        out(f"{kind} prices not modelled: {tiered} in {len(plan.not_modelled)} model(s)")
        if dry_run:
            out(f"{plan.org.slug}: dry run, nothing written ({seconds:.2f}s)")
        else:
            out(self.style.SUCCESS(f"{plan.org.slug}: import done ({seconds:.2f}s)"))
