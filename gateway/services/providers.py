"""Provider configuration checks: where a provider may point, and which environment variable
may hold its credential.

A provider's ``api_key_env`` names a variable of the *server's* environment, so it is the
platform operators' to set, never a tenant's: an org admin who could name ``FINOPS_KEY_PEPPER``
(or another tenant's ``OPENAI_API_KEY``) and point ``base_url`` at a host they control would
receive it as a bearer token. Hence three rules, checked on every save and again when the
gateway reads the variable: the name matches ``FINOPS_PROVIDER_KEY_ENVS`` (names or ``PREFIX_*``
patterns; ``*`` by default only with ``DEBUG`` on); the server's own settings are never allowed,
whatever that list says; and only an operator (a superuser, or ``apply_config`` from the command
line) sets the name, or moves the ``base_url`` or ``kind`` of a provider that has one.
"""

from __future__ import annotations

import fnmatch
import logging
import os
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError

from gateway.egress import internal_address  # the address rules live with the connect check


def provider_base_url_check(*, base_url: str) -> None:
    """Refuse a base URL whose scheme is not http(s), that carries credentials, whose host is
    outside ``FINOPS_PROVIDER_HOSTS``, or that reaches an internal address without being named.

    ``*`` in ``FINOPS_PROVIDER_HOSTS`` means any *public* host: a loopback, private, link-local,
    shared (CGNAT), multicast, reserved or unspecified address (``169.254.169.254``,
    ``10.0.0.1``, ``[::1]``), a cloud metadata name is allowed only when the host is listed as
    written (the embedded mode lists the loopback simulator). A name is checked again, resolved,
    each time the gateway connects (``gateway.egress``).
    """
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValidationError({"base_url": "must be an http(s) URL with a host"})
    if parts.username or parts.password:
        raise ValidationError({"base_url": "must not carry credentials; use api_key_env"})
    allowed = [h.strip().lower() for h in settings.FINOPS_PROVIDER_HOSTS if h.strip()]
    host = parts.hostname.lower()
    if host in allowed:
        return  # named as written: the operator chose it, internal or not
    named = any(p.startswith("*.") and host.endswith(p[1:]) for p in allowed)
    if not named and "*" not in allowed:
        raise ValidationError(
            {"base_url": f"host {host!r} is not in FINOPS_PROVIDER_HOSTS ({', '.join(allowed)})"}
        )
    internal = internal_address(host)
    if internal:
        raise ValidationError(
            {
                "base_url": f"host {host!r} is an internal address ({internal}); list it in "
                "FINOPS_PROVIDER_HOSTS as written to allow it"
            }
        )


log = logging.getLogger(__name__)

# the server's own configuration: never a provider credential
NEVER_KEY_ENVS = frozenset(
    {
        "SECRET_KEY",
        "DJANGO_SECRET_KEY",
        "FINOPS_KEY_PEPPER",
        "FINOPS_ENCRYPTION_KEY",
        "FINOPS_METRICS_TOKEN",
        "DATABASE_URL",
        "REDIS_URL",
        "CELERY_BROKER_URL",
        "EMAIL_URL",
        "AWS_SECRET_ACCESS_KEY",
    }
)
NEVER_KEY_ENV_PATTERNS = ("*PASSWORD*", "*_URL", "DJANGO_*")


def provider_key_env_refusal(name: str) -> str | None:
    """Why ``name`` may not hold a provider credential, or None when it may."""
    if name in NEVER_KEY_ENVS or any(
        fnmatch.fnmatchcase(name, pattern) for pattern in NEVER_KEY_ENV_PATTERNS
    ):
        return f"{name} is this server's own configuration, never a provider credential"
    allowed = [p.strip() for p in settings.FINOPS_PROVIDER_KEY_ENVS if p.strip()]
    if not any(fnmatch.fnmatchcase(name, pattern) for pattern in allowed):
        listed = ", ".join(allowed) or "empty"
        return f"{name} is not allowed by FINOPS_PROVIDER_KEY_ENVS ({listed})"
    return None


def provider_key_env_check(*, name: str) -> None:
    if name and (reason := provider_key_env_refusal(name)):
        raise ValidationError({"api_key_env": reason})


def is_operator(actor) -> bool:
    """The platform's operators: a superuser, or a command run on the server (no actor)."""
    return actor is None or bool(getattr(actor, "is_superuser", False))


def provider_credential_guard(*, actor, provider, changes: dict) -> None:
    """Refuse a tenant setting ``api_key_env``, or moving a provider that has one (its
    ``base_url`` or ``kind``): either would send the operator's credential where they chose."""
    if is_operator(actor):
        return
    if changes.get("api_key_env", provider.api_key_env if provider else "") != (
        provider.api_key_env if provider else ""
    ):
        raise ValidationError(
            {
                "api_key_env": "environment-variable credentials are set by the platform's "
                "operators (a superuser, or apply_config on the server)"
            }
        )
    if provider is not None and provider.api_key_env:
        for field in ("base_url", "kind"):
            if field in changes and changes[field] != getattr(provider, field):
                raise ValidationError(
                    {
                        field: "this provider uses an operator's credential "
                        f"({provider.api_key_env}); only an operator may change its {field}"
                    }
                )


def provider_key_from_env(name: str) -> str:
    """The credential the gateway sends: the variable's value, or "" when the name is (no
    longer) allowed, so a row saved before a rule existed cannot leak a server secret."""
    if not name:
        return ""
    reason = provider_key_env_refusal(name)
    if reason:
        log.warning("provider credential not read: %s", reason)
        return ""
    return os.environ.get(name, "")
