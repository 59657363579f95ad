"""Provider credentials at rest: Fernet tokens under ``FINOPS_ENCRYPTION_KEY``.

An org admin may give a provider its own API key (``Provider.api_key_encrypted``): the key is
encrypted here before it reaches the database, decrypted only when the gateway loads the org's
routing configuration, and never returned by the API, shown in the admin, written to the audit
log or logged (``api_key_last4`` is all anyone sees of it). The provider's admin-API key (usage
and cost reports, for invoice reconciliation: ``admin_api_key_encrypted``/``_last4``) is held the
same way, under the same keys, and rotated with them; the reconciliation reads it with
``provider_admin_credential`` (and where to send it with ``provider_admin_base_url``).

``FINOPS_ENCRYPTION_KEY`` holds one or more comma-separated Fernet keys, newest first
(``MultiFernet``): the first encrypts, any decrypts, so a new key is prepended, then
``rotate_secrets`` re-encrypts every stored key under it, then the old key is dropped. With
``DEBUG`` on and no key set, a development key is derived from ``SECRET_KEY`` (``make run``);
with ``DEBUG`` off the first encryption or decryption fails with ``ImproperlyConfigured``.

A token in a config file (``api_key_encrypted:`` of ``apply_config``) is a *reference* made by
``manage.py encrypt_secret --org SLUG``: it seals the organisation's slug with the key, so a
token copied from one organisation's file into another's does not hand the key to a provider
of the other organisation (``provider_key_unseal`` returns the slug for the caller to check).
"""

from __future__ import annotations

import base64
import hashlib
import logging
from dataclasses import dataclass, field
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from gateway.services.providers import provider_key_from_env

log = logging.getLogger(__name__)

KEY_HOWTO = (
    'make one with: python -c "from cryptography.fernet import Fernet; '
    'print(Fernet.generate_key().decode())"'
)
API_KEY_MAX = 500
LAST4_MIN_LENGTH = 12  # a shorter key shows no digits at all: four of eight would be half of it
_SEAL = "finops-provider-key/v1"


class SecretDecryptError(ValueError):
    """The token is not one that a key of ``FINOPS_ENCRYPTION_KEY`` made (a key dropped too
    early, a token from another installation, or not a token). The message never holds it."""

    def __init__(self, message: str = "") -> None:
        super().__init__(
            message
            or "the encrypted value cannot be decrypted with any key of FINOPS_ENCRYPTION_KEY "
            "(was it made under a key that is no longer listed?)"
        )


def _dev_key(secret_key: str) -> str:
    digest = hashlib.sha256(b"finops-dev-encryption|" + secret_key.encode()).digest()
    return base64.urlsafe_b64encode(digest).decode()


def encryption_keys() -> tuple[str, ...]:
    """The configured Fernet keys, newest first; raises ``ImproperlyConfigured`` when none is
    set and ``DEBUG`` was off when the settings loaded."""
    keys = tuple(k for k in getattr(settings, "FINOPS_ENCRYPTION_KEY", ()) if k)
    if keys:
        return keys
    if getattr(settings, "FINOPS_ENCRYPTION_DEV_KEY", False):
        return (_dev_key(settings.SECRET_KEY),)
    raise ImproperlyConfigured(
        "FINOPS_ENCRYPTION_KEY must be set when DEBUG is off (one or more comma-separated "
        f"Fernet keys, newest first) to store provider keys; {KEY_HOWTO}"
    )


@lru_cache(maxsize=8)
def _multi(keys: tuple[str, ...]) -> MultiFernet:
    try:
        return MultiFernet([Fernet(k.encode()) for k in keys])
    except ValueError as exc:  # the settings check the shape; this catches an override
        raise ImproperlyConfigured(f"FINOPS_ENCRYPTION_KEY: not a Fernet key; {KEY_HOWTO}") from exc


def _token_bytes(token: str) -> bytes:
    try:
        return token.strip().encode("ascii")
    except (AttributeError, UnicodeEncodeError):
        raise SecretDecryptError("not an encrypted value (a Fernet token is ASCII)") from None


def secret_encrypt(plain: str) -> str:
    """``plain`` encrypted under the newest key, as text (a Fernet token)."""
    return _multi(encryption_keys()).encrypt(plain.encode()).decode("ascii")


def secret_decrypt(token: str) -> str:
    """The text ``token`` holds; ``SecretDecryptError`` when no configured key made it."""
    try:
        return _multi(encryption_keys()).decrypt(_token_bytes(token)).decode()
    except (InvalidToken, UnicodeDecodeError):
        raise SecretDecryptError() from None


def secret_rotate(token: str) -> str:
    """``token`` re-encrypted under the newest key (``MultiFernet.rotate``)."""
    try:
        return _multi(encryption_keys()).rotate(_token_bytes(token)).decode("ascii")
    except InvalidToken:
        raise SecretDecryptError() from None


def secret_is_current(token: str) -> bool:
    """Whether the newest key alone decrypts ``token`` (``rotate_secrets`` leaves it be)."""
    try:
        Fernet(encryption_keys()[0].encode()).decrypt(_token_bytes(token))
    except (InvalidToken, SecretDecryptError):
        return False
    return True


# --- provider keys ----------------------------------------------------------------------------


def provider_key_problem(key: str) -> str | None:
    """Why ``key`` cannot be a provider API key (it is sent as a header), or None. The message
    never quotes the key."""
    if not key:
        return "must not be empty"
    if len(key) > API_KEY_MAX:
        return f"at most {API_KEY_MAX} characters"
    if any(ch.isspace() or not ch.isprintable() for ch in key):
        return "must not contain spaces, line breaks or control characters"
    return None


def provider_key_last4(key: str) -> str:
    """What the API and the admin show of a key: its last four characters, if it is long."""
    return key[-4:] if len(key) >= LAST4_MIN_LENGTH else ""


def provider_key_seal(*, org_slug: str, key: str) -> str:
    """A config-file reference to ``key``, good for organisation ``org_slug`` only."""
    return secret_encrypt(f"{_SEAL}\n{org_slug}\n{key}")


def provider_key_unseal(token: str) -> tuple[str, str]:
    """(organisation slug, key) of a reference made by ``provider_key_seal``."""
    parts = secret_decrypt(token).split("\n")
    if len(parts) != 3 or parts[0] != _SEAL or not parts[2]:
        raise SecretDecryptError(
            "not a provider-key reference: make one with manage.py encrypt_secret --org SLUG"
        )
    return parts[1], parts[2]


def provider_key_from_token(token: str, *, provider: str, what: str = "API key") -> str:
    """The credential sent for a stored key (``what``: "API key", "admin API key"), or "" when
    it cannot be decrypted: one provider with an unreadable key must not take its
    organisation's routing down. The warning names the provider, never the token or the key."""
    try:
        return secret_decrypt(token)
    except SecretDecryptError:
        log.warning(
            "provider %s: its stored %s cannot be decrypted with FINOPS_ENCRYPTION_KEY "
            "(a key dropped before rotate_secrets ran?); calling it without a credential",
            provider,
            what,
        )
    except ImproperlyConfigured as exc:
        log.error("provider %s: its stored %s cannot be read: %s", provider, what, exc)
    return ""


# --- the admin API (invoice reconciliation) ---------------------------------------------------


def provider_admin_credential(provider) -> str:
    """The key to send the provider's admin API (usage and cost reports): the organisation's own
    admin key (``admin_api_key_encrypted``, decrypted) or the operator's variable
    (``admin_api_key_env``, checked again against the rules of ``gateway.services.providers`` as
    it is read); "" when neither is set, the name is refused, or no configured key decrypts the
    token (each logs a warning naming the provider or the variable, never a value).

    Never the inference credential (``api_key_env``/``api_key_encrypted``): a tenant may point
    ``admin_base_url`` at a host of their own, so a fallback would hand them the operator's key.
    """
    if provider.admin_api_key_encrypted:
        label = f"{provider.slug} (org {provider.org_id})"  # no query for the org's slug
        return provider_key_from_token(
            provider.admin_api_key_encrypted, provider=label, what="admin API key"
        )
    return provider_key_from_env(provider.admin_api_key_env, what="provider admin credential")


def provider_admin_base_url(provider) -> str:
    """Where the admin API is called: ``admin_base_url``, or the provider's own ``base_url``
    (OpenAI and Anthropic serve both from one host). Both passed ``provider_base_url_check``
    when saved; connect through the egress-checked client (``gateway.egress``) all the same,
    since a host name may resolve elsewhere later."""
    return provider.admin_base_url or provider.base_url


# --- rotation ---------------------------------------------------------------------------------


# the provider fields holding Fernet tokens, and how a failure names them
TOKEN_FIELDS = {"api_key_encrypted": "", "admin_api_key_encrypted": " (admin API key)"}


@dataclass
class RotationResult:
    rotated: int = 0  # re-encrypted under the newest key (or would be, in a dry run)
    current: int = 0  # already under the newest key: left as they are
    failed: list[str] = field(default_factory=list)  # "org/provider" that no key decrypts


def provider_keys_rotate(*, dry_run: bool = False) -> RotationResult:
    """Re-encrypt every stored provider key (the inference key and the admin-API key) under the
    newest key of FINOPS_ENCRYPTION_KEY; the counts are of tokens, not providers.

    Idempotent: a key already under the newest key is left alone, so a second run rotates
    nothing. Each token is rewritten only if it is still the one read (a key set in the
    meantime wins). The keys themselves do not change, so no gateway needs to reload."""
    from gateway.models import Provider  # here: gateway.cache imports this module early

    result = RotationResult()
    for name, suffix in TOKEN_FIELDS.items():
        rows = Provider.objects.exclude(**{name: ""}).select_related("org").order_by("pk")
        for provider in rows.iterator():
            token = getattr(provider, name)
            if secret_is_current(token):
                result.current += 1
                continue
            try:
                fresh = secret_rotate(token)
            except SecretDecryptError:
                result.failed.append(f"{provider}{suffix}")
                continue
            if not dry_run:
                Provider.objects.filter(pk=provider.pk, **{name: token}).update(**{name: fresh})
            result.rotated += 1
    return result
