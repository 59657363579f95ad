"""The one redaction used for stored and logged customer text (evaluation pairs, payload logs,
stored Responses conversations): every match of ``FINOPS_REDACT_PATTERNS`` is replaced by
``[REDACTED]``.

The patterns run on RE2 (``google-re2``: linear time, a DFA over all patterns at once) — about
0.7 ms for a 400 KB prompt where Python's ``re`` takes 32 ms, the difference between storing a
coding agent's context on every turn and not. A pattern RE2 cannot compile (lookarounds,
backreferences) falls back to ``re`` for the whole set, with a warning.
"""

from __future__ import annotations

import logging
import re
from functools import lru_cache

from django.conf import settings

log = logging.getLogger(__name__)
MASK = "[REDACTED]"


@lru_cache(maxsize=8)
def _compiled(patterns: tuple[str, ...]):
    if not patterns:
        return None
    joined = "|".join(f"(?:{p})" for p in patterns)
    try:
        import re2

        return re2.compile(joined)
    except Exception as exc:  # noqa: BLE001 - not RE2 syntax (or no RE2): Python's engine
        log.warning("FINOPS_REDACT_PATTERNS: using Python's re, slower (%s)", type(exc).__name__)
        return re.compile(joined)


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
