"""``python manage.py apply_config FILE.yaml [--dry-run] [--prune]``: the git-managed config."""

from __future__ import annotations

import sys
from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from provisioning.config import ConfigError, config_apply, config_load


class Command(BaseCommand):
    help = (
        "Create and update an organisation's providers, models (with prices), groups, routers, "
        "teams, features and budgets from a YAML file. Idempotent; objects missing from the "
        "file are kept unless --prune is given."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("file", help="the YAML file ('-' reads standard input)")
        parser.add_argument(
            "--dry-run", action="store_true", help="print what would change and write nothing"
        )
        parser.add_argument(
            "--prune",
            action="store_true",
            help="delete the organisation's objects that the file does not list",
        )
        parser.add_argument(
            "--actor",
            metavar="USERNAME",
            help="record this user in the audit log (default: system)",
        )

    def handle(self, *args, file: str, dry_run: bool, prune: bool, actor: str | None, **options):
        text = self._read(file)
        user = None
        if actor:
            user = get_user_model().objects.filter(username__iexact=actor).first()
            if user is None:
                raise CommandError(f"--actor: unknown user {actor!r}")
        try:
            result = config_apply(
                data=config_load(text=text), dry_run=dry_run, prune=prune, actor=user
            )
        except ConfigError as exc:
            count = len(exc.errors)
            lines = "\n".join(f"  {e}" for e in exc.errors)
            raise CommandError(
                f"{file}: {count} error{'s' if count != 1 else ''}, nothing changed\n{lines}"
            ) from exc
        for change in result.changes:
            self.stdout.write(str(change))
        n = len(result.changes)
        if not n:
            self.stdout.write(f"{result.org_slug}: no changes")
        elif dry_run:
            self.stdout.write(
                f"{result.org_slug}: dry run, {n} change(s) would be made; nothing written"
            )
        else:
            self.stdout.write(self.style.SUCCESS(f"{result.org_slug}: applied {n} change(s)"))

    @staticmethod
    def _read(file: str) -> str:
        if file == "-":
            return sys.stdin.read()
        try:
            return Path(file).read_text(encoding="utf-8")
        except OSError as exc:
            raise CommandError(f"{file}: cannot read ({exc.strerror or exc})") from exc
        except UnicodeDecodeError as exc:
            raise CommandError(f"{file}: not UTF-8 text") from exc
