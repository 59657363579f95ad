"""The typed primitives of validation: each checks one value and records ``path: message``.

A ``Checker`` keeps going after an error, so one run reports every problem in the file; each
check returns the cleaned value, or ``None`` when it recorded an error. ``join`` builds the
paths (``teams[0].budgets[1].limit_usd``) that every message starts with.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal, InvalidOperation
from typing import Any

from django.core.exceptions import ValidationError
from django.utils.text import slugify

from gateway.models import validate_model_name
from provisioning.config.spec import LIMIT_MAX, SLUG_MAX


def join(path: str, *keys: str | int) -> str:
    """``path`` extended by each key in turn: ``[i]`` for an index, ``.key`` for a key."""
    for key in keys:
        if isinstance(key, int):
            path = f"{path}[{key}]"
        elif path:
            path = f"{path}.{key}"
        else:
            path = key
    return path


def messages(exc: ValidationError) -> str:
    """A Django ``ValidationError`` as one line."""
    if hasattr(exc, "message_dict"):
        return "; ".join(m for msgs in exc.message_dict.values() for m in msgs)
    return "; ".join(exc.messages)


class Checker:
    """Structural checks that record ``path: message`` and keep going, so one run reports all."""

    def __init__(self) -> None:
        self.errors: list[str] = []

    def err(self, path: str, message: str) -> None:
        self.errors.append(f"{path}: {message}")

    def mapping(
        self, value: Any, path: str, *, required: tuple[str, ...], optional: tuple[str, ...] = ()
    ) -> dict | None:
        if not isinstance(value, dict):
            self.err(path or "(file)", "expected a mapping")
            return None
        for key in value:
            if key not in required and key not in optional:
                allowed = ", ".join((*required, *optional))
                self.err(join(path, str(key)), f"unknown key (allowed: {allowed})")
        for key in required:
            if key not in value:
                self.err(join(path, key), "required")
        return value

    def items(self, value: Any, path: str) -> list:
        if value is None:
            return []
        if not isinstance(value, list):
            self.err(path, "expected a list")
            return []
        return value

    def text(self, value: Any, path: str, *, default: str | None = None, max_len: int = 500):
        if value is None and default is not None:
            return default
        if isinstance(value, dt.date):  # an unquoted 2024-10-21 is a date to YAML
            value = value.isoformat()
        if not isinstance(value, str) or not value.strip():
            self.err(path, "expected a non-empty string")
            return None
        if len(value) > max_len:
            self.err(path, f"longer than {max_len} characters")
            return None
        return value.strip()

    def slug(self, value: Any, path: str) -> str | None:
        raw = self.text(value, path)
        if raw is None:
            return None
        slug = slugify(raw)
        if not slug:
            self.err(path, f"{raw!r} has no letters or digits to make an identifier from")
            return None
        if len(slug) > SLUG_MAX:
            self.err(path, f"identifier longer than {SLUG_MAX} characters")
            return None
        return slug

    def model_name(self, value: Any, path: str) -> str | None:
        raw = self.text(value, path, max_len=128)
        if raw is None:
            return None
        try:
            validate_model_name(raw)
        except ValidationError as exc:
            self.err(path, messages(exc))
            return None
        return raw

    def choice(self, value: Any, path: str, choices: type, *, default: str | None = None):
        if value is None and default is not None:
            return default
        allowed = [c.value for c in choices]
        if value not in allowed:
            self.err(path, f"{value!r} is not one of {', '.join(allowed)}")
            return None
        return value

    def integer(self, value: Any, path: str, *, minimum: int = 0, maximum: int | None = None):
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            self.err(path, "expected a whole number")
            return None
        if value < minimum or (maximum is not None and value > maximum):
            upper = f" and {maximum}" if maximum is not None else ""
            self.err(
                path, f"must be between {minimum}{upper}" if upper else f"must be >= {minimum}"
            )
            return None
        return value

    def positive_integer(self, value: Any, path: str) -> int | None:
        """A limit: a whole number from 1 (0 would read as "no limit" in the gateway)."""
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            self.err(path, "must be a positive integer")
            return None
        if value > LIMIT_MAX:
            self.err(path, f"must be at most {LIMIT_MAX}")
            return None
        return value

    def boolean(self, value: Any, path: str) -> bool | None:
        if not isinstance(value, bool):  # "yes" / 1 are not guessed at
            self.err(path, "must be true or false")
            return None
        return value

    def money(self, value: Any, path: str, *, places: int, digits: int) -> Decimal | None:
        """Money is a quoted decimal string: a YAML float has already lost exactness."""
        if isinstance(value, bool) or value is None:
            self.err(path, "not a decimal")
            return None
        if isinstance(value, int | float):
            self.err(path, f'not a decimal string: quote money as a string ("{value}")')
            return None
        if not isinstance(value, str):
            self.err(path, "not a decimal")
            return None
        try:
            amount = Decimal(value.strip())
        except InvalidOperation:
            self.err(path, "not a decimal")
            return None
        if not amount.is_finite():
            self.err(path, "not a decimal")
            return None
        if amount < 0:
            self.err(path, "must not be negative")
            return None
        exponent = amount.as_tuple().exponent
        if isinstance(exponent, int) and -exponent > places:
            self.err(path, f"at most {places} decimal places")
            return None
        if amount.adjusted() >= digits - places:
            self.err(path, "too large")
            return None
        return amount
