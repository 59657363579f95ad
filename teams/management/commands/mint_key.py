"""``python manage.py mint_key --org ORG --team TEAM --name NAME``: mint a virtual key.

The secret is printed once, as the last line, so scripts can take it with ``tail -n 1``;
nothing else printed contains it.
"""

from __future__ import annotations

from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone
from django.utils.text import slugify

from teams.models import Feature, Organization, Team
from teams.services import key_mint, key_model_names_clean


def _positive(value: str) -> int:
    number = int(value)
    if number <= 0:
        raise ValueError("must be positive")
    return number


class Command(BaseCommand):
    help = "Mint a virtual key for a team and print its secret (once) as the last line."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--org", required=True, help="organisation slug")
        parser.add_argument("--team", required=True, help="team slug")
        parser.add_argument("--name", required=True, help="a name for the key, e.g. the service")
        parser.add_argument("--feature", help="default feature slug for calls without a header")
        parser.add_argument(
            "--models", help="comma-separated model, group or router names (default: all)"
        )
        parser.add_argument("--rpm", type=_positive, help="requests per minute")
        parser.add_argument("--tpm", type=_positive, help="tokens per minute")
        parser.add_argument("--max-parallel", type=_positive, help="concurrent requests")
        parser.add_argument("--expires-days", type=_positive, help="expire after N days")

    def handle(self, *args, **opts) -> None:
        org = Organization.objects.filter(slug=slugify(opts["org"])).first()
        if org is None:
            raise CommandError(f"unknown organisation {opts['org']!r}")
        team = Team.objects.filter(org=org, slug=slugify(opts["team"])).first()
        if team is None:
            raise CommandError(f"unknown team {opts['team']!r} in organisation {org.slug}")
        feature = None
        if opts["feature"]:
            feature = Feature.objects.filter(team=team, slug=slugify(opts["feature"])).first()
            if feature is None:
                raise CommandError(f"unknown feature {opts['feature']!r} in team {team}")
        name = opts["name"].strip()
        if not name:
            raise CommandError("--name must not be empty")
        models = _allowed_models(org, opts["models"])
        expires_at = None
        if opts["expires_days"]:
            expires_at = timezone.now() + timedelta(days=opts["expires_days"])
        minted = key_mint(
            team=team,
            name=name,
            default_feature=feature,
            allowed_models=models,
            rpm_limit=opts["rpm"],
            tpm_limit=opts["tpm"],
            max_parallel=opts["max_parallel"],
            expires_at=expires_at,
        )
        key = minted.key
        limits = ", ".join(
            f"{label}={value}"
            for label, value in (
                ("rpm", key.rpm_limit),
                ("tpm", key.tpm_limit),
                ("max_parallel", key.max_parallel),
            )
            if value
        )
        self.stdout.write(f"Minted key {key.name!r} (id {key.pk}) for team {team}")
        self.stdout.write(f"  default feature: {feature.slug if feature else '-'}")
        self.stdout.write(f"  models: {', '.join(key.allowed_models) or 'all'}")
        self.stdout.write(f"  limits: {limits or 'none'}")
        self.stdout.write(f"  expires: {key.expires_at.isoformat() if key.expires_at else 'never'}")
        self.stdout.write("The secret is shown once and cannot be retrieved later:")
        self.stdout.write(minted.secret)


def _allowed_models(org: Organization, raw: str | None) -> list[str]:
    """Names a key may call: models, groups and routers (``router:NAME`` or the bare name)."""
    names = [n.strip() for n in (raw or "").split(",") if n.strip()]
    try:
        return key_model_names_clean(org=org, names=names)
    except ValueError as exc:
        raise CommandError(str(exc)) from exc
