"""Provider configuration checks."""

from __future__ import annotations

from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError


def provider_base_url_check(*, base_url: str) -> None:
    """Refuse a base URL whose scheme is not http(s) or whose host is outside
    ``FINOPS_PROVIDER_HOSTS`` (so provider config cannot be used to reach internal services)."""
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValidationError({"base_url": "must be an http(s) URL with a host"})
    if parts.username or parts.password:
        raise ValidationError({"base_url": "must not carry credentials; use api_key_env"})
    allowed = [h.strip().lower() for h in settings.FINOPS_PROVIDER_HOSTS if h.strip()]
    host = parts.hostname.lower()
    if "*" in allowed:
        return
    for pattern in allowed:
        if host == pattern or (pattern.startswith("*.") and host.endswith(pattern[1:])):
            return
    raise ValidationError(
        {"base_url": f"host {host!r} is not in FINOPS_PROVIDER_HOSTS ({', '.join(allowed)})"}
    )
