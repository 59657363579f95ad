"""``python manage.py simulate_upstream --port N``: the fake OpenAI/Anthropic provider.

A thin wrapper over ``simulator.cli`` (``python -m simulator`` takes the same flags without
loading Django); see ``simulator`` for the endpoints, the usage arithmetic and the ``x-sim-*``
headers.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from simulator import cli


class Command(BaseCommand):
    help = (
        "Serve an OpenAI- and Anthropic-compatible upstream simulator (demos, tests, benchmarks)."
    )

    def add_arguments(self, parser) -> None:
        cli.add_arguments(parser)

    def handle(self, *args, **options) -> None:
        try:
            config = cli.config_from_options(options)
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        host, port = options["host"], options["port"]
        self.stdout.write(f"upstream simulator on http://{host}:{port}/v1")
        self.stdout.flush()
        cli.serve(config, host=host, port=port, log_level=options["log_level"])
