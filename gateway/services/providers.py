"""Provider configuration checks: where a provider may point, and which environment variable
may hold its credential; and the admin-API credential the invoice reconciliation sends.

A provider's ``api_key_env`` names a variable of the *server's* environment, so it is the
platform operators' to set, never a tenant's: an org admin who could name ``FINOPS_KEY_PEPPER``
(or another tenant's ``OPENAI_API_KEY``) and point ``base_url`` at a host they control would
receive it as a bearer token. Hence three rules, checked on every save and again when the
gateway reads the variable: the name matches ``FINOPS_PROVIDER_KEY_ENVS`` (names or ``PREFIX_*``
patterns; ``*`` by default only with ``DEBUG`` on); the server's own settings are never allowed,
whatever that list says; and only an operator (a superuser, or ``apply_config`` from the command
line) sets the name, or moves the ``base_url`` or ``kind`` of a provider that has one.

The admin API's credential (usage and cost reports) follows the same rules under its own names:
``admin_api_key_env`` is checked like ``api_key_env``, and a provider holding one may not have its
``base_url``, ``kind`` or ``admin_base_url`` moved by a tenant (the admin key goes to
``admin_base_url``, or to ``base_url`` when that is blank). The admin credential is read by
``gateway.services.credentials.provider_admin_credential``, which never falls back to the
inference key.
"""

from __future__ import annotations

import fnmatch
import logging
import os
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError

from gateway.egress import internal_address  # the address rules live with the connect check

ENV_FIELDS = ("api_key_env", "admin_api_key_env")
# where each operator's variable is sent: a tenant may not move a provider that holds one
_ENV_PROTECTS = {
    "api_key_env": ("base_url", "kind"),
    "admin_api_key_env": ("base_url", "kind", "admin_base_url"),
}


def provider_base_url_check(*, base_url: str, field: str = "base_url") -> None:
    """Refuse a base URL whose scheme is not http(s), that carries credentials, whose host is
    outside ``FINOPS_PROVIDER_HOSTS``, or that reaches an internal address without being named.

    ``*`` in ``FINOPS_PROVIDER_HOSTS`` means any *public* host: a loopback, private, link-local,
    shared (CGNAT), multicast, reserved or unspecified address (``169.254.169.254``,
    ``10.0.0.1``, ``[::1]``), a cloud metadata name is allowed only when the host is listed as
    written (the embedded mode lists the loopback simulator). A name is checked again, resolved,
    each time the gateway connects (``gateway.egress``). ``field`` names the error's field
    (``admin_base_url`` is held to the same rules).
    """
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValidationError({field: "must be an http(s) URL with a host"})
    if parts.username or parts.password:
        env = "admin_api_key_env" if field == "admin_base_url" else "api_key_env"
        raise ValidationError({field: f"must not carry credentials; use {env}"})
    allowed = [h.strip().lower() for h in settings.FINOPS_PROVIDER_HOSTS if h.strip()]
    host = parts.hostname.lower()
    if host in allowed:
        return  # named as written: the operator chose it, internal or not
    named = any(p.startswith("*.") and host.endswith(p[1:]) for p in allowed)
    if not named and "*" not in allowed:
        raise ValidationError(
            {field: f"host {host!r} is not in FINOPS_PROVIDER_HOSTS ({', '.join(allowed)})"}
        )
    internal = internal_address(host)
    if internal:
        raise ValidationError(
            {
                field: f"host {host!r} is an internal address ({internal}); list it in "
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


def provider_key_env_check(*, name: str, field: str = "api_key_env") -> None:
    if name and (reason := provider_key_env_refusal(name)):
        raise ValidationError({field: reason})


def is_operator(actor) -> bool:
    """The platform's operators: a superuser, or a command run on the server (no actor)."""
    return actor is None or bool(getattr(actor, "is_superuser", False))


def provider_credential_guard(*, actor, provider, changes: dict) -> None:
    """Refuse a tenant setting (or clearing) ``api_key_env`` or ``admin_api_key_env``, or moving
    a provider that has one: its ``base_url`` or ``kind``, and for the admin variable also its
    ``admin_base_url`` (the admin key goes there, or to ``base_url`` when it is blank). Either
    would send the operator's credential where the tenant chose."""
    if is_operator(actor):
        return
    for env_field in ENV_FIELDS:
        current = getattr(provider, env_field) if provider is not None else ""
        if changes.get(env_field, current) != current:
            raise ValidationError(
                {
                    env_field: "environment-variable credentials are set by the platform's "
                    "operators (a superuser, or apply_config on the server)"
                }
            )
    if provider is None:
        return
    for env_field, protected in _ENV_PROTECTS.items():
        name = getattr(provider, env_field)
        if not name:
            continue
        for field in protected:
            if field in changes and changes[field] != getattr(provider, field):
                raise ValidationError(
                    {
                        field: f"this provider uses an operator's credential ({name}); only an "
                        f"operator may change its {field}"
                    }
                )


def provider_key_from_env(name: str, *, what: str = "provider credential") -> str:
    """The credential the gateway sends: the variable's value, or "" when the name is (no
    longer) allowed, so a row saved before a rule existed cannot leak a server secret. The
    warning gives the rule and the name, never a value."""
    if not name:
        return ""
    reason = provider_key_env_refusal(name)
    if reason:
        log.warning("%s not read: %s", what, reason)
        return ""
    return os.environ.get(name, "")
