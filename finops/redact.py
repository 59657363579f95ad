"""The one redaction used for stored and logged customer text (evaluation pairs, payload logs):
every match of ``FINOPS_REDACT_PATTERNS`` is replaced by ``[REDACTED]``."""

from __future__ import annotations

import re
from functools import lru_cache

from django.conf import settings

MASK = "[REDACTED]"


@lru_cache(maxsize=8)
def _compiled(patterns: tuple[str, ...]) -> re.Pattern | None:
    return re.compile("|".join(f"(?:{p})" for p in patterns)) if patterns else None


def redact(text: str) -> str:
    pattern = _compiled(tuple(settings.FINOPS_REDACT_PATTERNS))
    return pattern.sub(MASK, text) if pattern is not None else text


def redact_value(value):
    """Redact every string inside a JSON-like value (messages, content parts)."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, list):
        return [redact_value(v) for v in value]
    if isinstance(value, dict):
        return {k: redact_value(v) for k, v in value.items()}
    return value
