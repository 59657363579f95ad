"""``python manage.py encrypt_secret --org SLUG < key.txt``: a provider key for a config file.

Reads the key from standard input (or prompts without echo on a terminal) and prints, as the
only line of output, the token to write as ``api_key_encrypted:`` in that organisation's YAML
file (docs/config.md). The token holds the organisation's slug too: ``apply_config`` refuses it
in another organisation's file. ``--rotate`` reads such a token instead and prints it
re-encrypted under the newest key of FINOPS_ENCRYPTION_KEY (for files, after a key rotation).
"""

from __future__ import annotations

import getpass
import re
import sys

from django.core.management.base import BaseCommand, CommandError

from gateway.services.credentials import (
    SecretDecryptError,
    provider_key_problem,
    provider_key_seal,
    provider_key_unseal,
    secret_rotate,
)


class Command(BaseCommand):
    help = (
        "Encrypt a provider API key read from standard input for one organisation's config "
        "file (api_key_encrypted); prints the token. --rotate re-encrypts a token instead."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--org", metavar="SLUG", help="the organisation the key is for")
        parser.add_argument(
            "--rotate",
            action="store_true",
            help="read a token and print it re-encrypted under the newest key",
        )

    def handle(self, *args, org: str | None, rotate: bool, **options):
        if rotate:
            self.stdout.write(self._rotate(self._read("token: ")))
            return
        if not org or not re.fullmatch(r"[-a-zA-Z0-9_]+", org):
            raise CommandError("--org SLUG is required: a token is good for one organisation")
        key = self._read("API key: ")
        problem = provider_key_problem(key)
        if problem:
            raise CommandError(f"the key read from standard input {problem}")
        self.stdout.write(provider_key_seal(org_slug=org, key=key))

    @staticmethod
    def _read(prompt: str) -> str:
        if sys.stdin.isatty():
            return getpass.getpass(prompt).strip()
        return sys.stdin.read().strip()

    @staticmethod
    def _rotate(token: str) -> str:
        try:
            provider_key_unseal(token)
            return secret_rotate(token)
        except SecretDecryptError as exc:
            raise CommandError(str(exc)) from None
