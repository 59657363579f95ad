"""``python manage.py export_focus --org SLUG --start DATE --end DATE [--focus-version 1.2|1.3]
[--output FILE]``: the same FOCUS CSV as ``GET /api/v1/exports/focus/``, for one whole
organisation (FOCUS 1.3 unless ``--focus-version 1.2``)."""

from __future__ import annotations

from datetime import date

from django.core.management.base import BaseCommand, CommandError

from reports.exports.focus import FOCUS_VERSION, FOCUS_VERSIONS, FocusQuery, focus_csv, focus_rows
from reports.selectors import dangerously_org_hourly_spend
from reports.serializers import MAX_FOCUS_DAYS
from teams.models import Organization


def _day(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise CommandError(f"{value!r} is not a date (YYYY-MM-DD)") from exc


class Command(BaseCommand):
    help = "Export an organisation's spend as a FOCUS CSV (UTC days, inclusive)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--org", required=True, help="organisation slug")
        parser.add_argument("--start", required=True, help="first UTC day, YYYY-MM-DD")
        parser.add_argument("--end", required=True, help="last UTC day, YYYY-MM-DD")
        parser.add_argument(
            "--focus-version",
            choices=FOCUS_VERSIONS,
            default=FOCUS_VERSION,
            help=f"FOCUS version of the dataset (default {FOCUS_VERSION})",
        )
        parser.add_argument("--output", help="file to write (default: standard output)")
        parser.add_argument(
            "--include-evaluation",
            action="store_true",
            help="add evaluation (shadow) spend as rows marked x_Evaluation=true",
        )

    def handle(self, *args, **options) -> None:
        start, end = _day(options["start"]), _day(options["end"])
        if start > end:
            raise CommandError("--start must not be after --end")
        if (end - start).days + 1 > MAX_FOCUS_DAYS:
            raise CommandError(f"at most {MAX_FOCUS_DAYS} days per export")
        version = options["focus_version"]
        if version not in FOCUS_VERSIONS:  # call_command() skips argparse's choices
            raise CommandError(f"--focus-version must be one of {', '.join(FOCUS_VERSIONS)}")
        org = Organization.objects.filter(slug=options["org"]).first()
        if org is None:
            raise CommandError(f"no organisation {options['org']!r}")
        query = FocusQuery(
            start=start,
            end=end,
            include_evaluation=options["include_evaluation"],
            focus_version=version,
        )
        rows = focus_rows(dangerously_org_hourly_spend(org), query)
        lines = focus_csv(rows, focus_version=version)
        if options["output"]:
            with open(options["output"], "w", newline="", encoding="utf-8") as out:
                out.writelines(lines)
        else:
            for line in lines:
                self.stdout.write(line, ending="")
