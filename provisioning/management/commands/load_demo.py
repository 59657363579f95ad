"""``python manage.py load_demo [--sim-url URL] [--days N]``: the demo organisation, login, a fresh
key and ``N`` days of generated history (default 90; 0: none)."""

from __future__ import annotations

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from provisioning.config import ConfigError
from provisioning.demo import DEMO_SIM_URL, demo_load
from provisioning.demo_history import DEFAULT_SEED


class Command(BaseCommand):
    help = (
        "Load the demo organisation (config/demo.yaml) idempotently, ensure the demo admin "
        "login, replace its generated history (--days), revoke the previous demo key and print "
        "a new one (as the last line)."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--sim-url",
            default=DEMO_SIM_URL,
            help=f"the upstream simulator, with or without /v1 (default {DEMO_SIM_URL})",
        )
        parser.add_argument(
            "--days",
            type=int,
            default=90,
            help="days of generated demo history, replacing the previous one (0: none; default 90)",
        )
        parser.add_argument(
            "--seed", type=int, default=DEFAULT_SEED, help="the history's random seed"
        )
        parser.add_argument(
            "--force",
            action="store_true",
            help="load even with DEBUG off (the demo login has a published password)",
        )

    def handle(self, *args, sim_url: str, force: bool, days: int, seed: int, **options) -> None:
        if not settings.DEBUG and not force:
            raise CommandError(
                "refusing to load the demo with DEBUG off: it creates a staff login with a "
                "published password (use --force on a throw-away instance)"
            )
        try:
            if days < 0:
                raise CommandError("--days must be 0 or more")
            info = demo_load(sim_base_url=sim_url, history_days=days, seed=seed)
        except ConfigError as exc:
            raise CommandError("demo config: " + "; ".join(exc.errors)) from exc
        changes = f"{info.config_changes} change(s)" if info.config_changes else "no changes"
        self.stdout.write(f"Demo organisation: {info.org_slug} (config: {changes})")
        if info.history is not None and info.history.days:
            self.stdout.write(f"Demo data (generated, seed {seed}): {info.history}")
        self.stdout.write(f"Admin login: {info.username} / {info.password}")
        self.stdout.write("Demo virtual key (shown once; the previous demo key is revoked):")
        self.stdout.write(info.key_secret)
