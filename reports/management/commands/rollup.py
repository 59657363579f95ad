"""``python manage.py rollup [--since DATE] [--check]``: the same incremental rollup as the beat
task, by hand (every committed ledger row, no safety lag), with a progress bar; ``--since``
rebuilds every bucket from that local date on; ``--check`` then compares rollups and ledger."""

from __future__ import annotations

from datetime import date

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from reports.services import spend_reconcile, usage_rollup


class Command(BaseCommand):
    help = "Roll the usage ledger up into hourly and daily spend (incremental, idempotent)."

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--since",
            type=date.fromisoformat,
            help="also rebuild every bucket from this date (YYYY-MM-DD, each org's local day)",
        )
        parser.add_argument(
            "--check",
            action="store_true",
            help="afterwards, reconcile rollups with the ledger (from --since, else 31 days)",
        )
        parser.add_argument("--no-progress", action="store_true", help="no progress bar")

    def handle(self, *args, since: date | None, check: bool, no_progress: bool, **opts) -> None:
        result = usage_rollup(since=since, progress=not no_progress)
        self.stdout.write(str(result))
        if check:
            today = timezone.now().date()
            start = since or date.fromordinal(today.toordinal() - 31)
            report = spend_reconcile(start=start, end=date.fromordinal(today.toordinal() + 1))
            bad = [r for r in report if not r.ok]
            for rec in bad:
                self.stderr.write(
                    f"org {rec.org_id}: ledger {rec.ledger_days} / days {rec.daily}; "
                    f"ledger {rec.ledger_hours} / hours {rec.hourly}"
                )
            if bad:
                raise CommandError(f"{len(bad)} organisation(s) do not reconcile")
            self.stdout.write(f"reconciled {len(report)} organisation(s) since {start}")
