"""``python manage.py load_demo [--sim-url URL]``: the demo organisation, login and a fresh key."""

from __future__ import annotations

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from provisioning.config import ConfigError
from provisioning.demo import DEMO_SIM_URL, demo_load


class Command(BaseCommand):
    help = (
        "Load the demo organisation (config/demo.yaml) idempotently, ensure the demo admin "
        "login, revoke the previous demo key and print a new one (as the last line)."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--sim-url",
            default=DEMO_SIM_URL,
            help=f"the upstream simulator, with or without /v1 (default {DEMO_SIM_URL})",
        )
        parser.add_argument(
            "--force",
            action="store_true",
            help="load even with DEBUG off (the demo login has a published password)",
        )

    def handle(self, *args, sim_url: str, force: bool, **options) -> None:
        if not settings.DEBUG and not force:
            raise CommandError(
                "refusing to load the demo with DEBUG off: it creates a staff login with a "
                "published password (use --force on a throw-away instance)"
            )
        try:
            info = demo_load(sim_base_url=sim_url)
        except ConfigError as exc:
            raise CommandError("demo config: " + "; ".join(exc.errors)) from exc
        changes = f"{info.config_changes} change(s)" if info.config_changes else "no changes"
        self.stdout.write(f"Demo organisation: {info.org_slug} (config: {changes})")
        self.stdout.write(f"Admin login: {info.username} / {info.password}")
        self.stdout.write("Demo virtual key (shown once; the previous demo key is revoked):")
        self.stdout.write(info.key_secret)
