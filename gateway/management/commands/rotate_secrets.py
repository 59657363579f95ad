"""``python manage.py rotate_secrets [--dry-run]``: every stored provider key (the inference key
and the admin-API key) re-encrypted under the newest key of FINOPS_ENCRYPTION_KEY.

The rotation procedure (docs/config.md): prepend a new key to FINOPS_ENCRYPTION_KEY, restart,
run this, then drop the old key. Idempotent: keys already under the newest key are left alone.
Exits non-zero if a stored key decrypts under no configured key (keep the old key until then).
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from gateway.services.credentials import provider_keys_rotate


class Command(BaseCommand):
    help = (
        "Re-encrypt every provider's stored API key and admin API key under the newest key of "
        "FINOPS_ENCRYPTION_KEY; reports how many were rotated, already current, unreadable."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--dry-run", action="store_true", help="count only, write nothing")

    def handle(self, *args, dry_run: bool, **options):
        result = provider_keys_rotate(dry_run=dry_run)
        verb = "would rotate" if dry_run else "rotated"
        self.stdout.write(
            f"{verb} {result.rotated}, already current {result.current}, "
            f"unreadable {len(result.failed)}"
        )
        if result.failed:
            raise CommandError(
                "these providers' keys decrypt under no key of FINOPS_ENCRYPTION_KEY (keep the "
                "key that made them, or set the keys again): " + ", ".join(result.failed)
            )
