"""``python manage.py simulate_upstream --port N``: the fake OpenAI/Anthropic provider.

See ``gateway.simulator`` for the endpoints, the usage arithmetic and the ``x-sim-*`` headers.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from gateway import simulator


class Command(BaseCommand):
    help = (
        "Serve an OpenAI- and Anthropic-compatible upstream simulator (demos, tests, benchmarks)."
    )

    def add_arguments(self, parser) -> None:
        simulator.add_arguments(parser)

    def handle(self, *args, **options) -> None:
        try:
            config = simulator.config_from_options(options)
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        host, port = options["host"], options["port"]
        self.stdout.write(f"upstream simulator on http://{host}:{port}/v1")
        self.stdout.flush()
        simulator.serve(config, host=host, port=port, log_level=options["log_level"])
