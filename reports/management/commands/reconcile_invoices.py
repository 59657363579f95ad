"""``python manage.py reconcile_invoices --org SLUG [--provider P] --start DATE --end DATE``:
pull each provider's usage and cost reports for those UTC days (inclusive) from its admin API,
or import a file with ``--upload FILE`` (one ``--provider``), then print the reconciliation per
provider and model: the provider's cost, the ledger's, and the difference split into unmetered,
over-metered and price drift. ``--no-pull`` compares what was imported before."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from finops.money import usd
from gateway.models import Provider
from reports.invoices.figures import ReportError
from reports.invoices.pull import provider_report_pull, pull_supported, report_upload
from reports.invoices.reconcile import org_reconcile, totals
from teams.models import Organization


def _day(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise CommandError(f"{value!r} is not a date (YYYY-MM-DD)") from exc


class Command(BaseCommand):
    help = "Pull providers' usage and cost reports and reconcile them with the ledger."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--org", required=True, help="organisation slug")
        parser.add_argument("--provider", help="provider slug (default: every provider)")
        parser.add_argument("--start", required=True, help="first UTC day, YYYY-MM-DD")
        parser.add_argument("--end", required=True, help="last UTC day, YYYY-MM-DD (inclusive)")
        parser.add_argument("--upload", help="import this CSV (generic or Azure export) instead")
        parser.add_argument("--no-pull", action="store_true", help="compare what is imported")

    def handle(self, *args, **options) -> None:
        start, last = _day(options["start"]), _day(options["end"])
        if start > last:
            raise CommandError("--start must not be after --end")
        end = last + timedelta(days=1)
        org = Organization.objects.filter(slug=options["org"]).first()
        if org is None:
            raise CommandError(f"no organisation {options['org']!r}")
        providers = Provider.objects.filter(org=org).order_by("slug")
        if options["provider"]:
            providers = providers.filter(slug=options["provider"])
            if not providers.exists():
                raise CommandError(f"no provider {options['provider']!r} in {org.slug}")
        if options["upload"]:
            self._upload(providers, Path(options["upload"]), single=bool(options["provider"]))
        elif not options["no_pull"]:
            for provider in providers:
                if pull_supported(provider):
                    self._pull(provider, start, end)
        self._print(list(providers), start, end)

    def _upload(self, providers, path: Path, *, single: bool) -> None:
        if not single:
            raise CommandError("--upload needs --provider")
        try:
            pull = report_upload(providers.get(), data=path.read_bytes(), filename=path.name)
        except (OSError, ReportError) as exc:
            raise CommandError(f"{path}: {exc}") from exc
        self.stdout.write(
            f"imported {pull.rows} row(s) of {pull.start}..{pull.end} ({pull.source})"
        )

    def _pull(self, provider: Provider, start: date, end: date) -> None:
        try:
            pull = provider_report_pull(provider, start=start, end=end)
        except ReportError as exc:
            raise CommandError(f"{provider.slug}: {exc}") from exc
        if pull.status != "ok":
            self.stderr.write(f"{provider.slug}: pull failed: {pull.error}")
        else:
            self.stdout.write(f"{provider.slug}: pulled {pull.rows} figure(s)")

    def _print(self, providers, start: date, end: date) -> None:
        rows = org_reconcile(providers, start, end, ("model",))
        header = (
            "provider",
            "model",
            "provider $",
            "ledger $",
            "unmetered",
            "over",
            "drift",
            "class",
        )
        self.stdout.write("\t".join(header))
        for r in rows:
            self.stdout.write(
                "\t".join(
                    (
                        r.provider,
                        r.model or "(no model)",
                        usd(r.provider_cost or 0),
                        usd(r.ledger_cost),
                        usd(r.unmetered),
                        usd(r.over_metered),
                        usd(r.price_drift),
                        r.klass,
                    )
                )
            )
        t = totals(rows)
        if t:
            self.stdout.write(
                f"total: provider {usd(t['provider_cost'])}, ledger {usd(t['ledger_cost'])}, "
                f"unmetered {usd(t['unmetered'])}, over-metered {usd(t['over_metered'])}, "
                f"price drift {usd(t['price_drift'])}"
            )
