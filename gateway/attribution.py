"""Who a call is for: team and key from the key; feature, endpoint and end user from the request.

Attribution never drops a call: an unknown feature is recorded (and created unclaimed for a lead
to claim), up to ``FINOPS_NEW_FEATURES_PER_KEY`` new names per key; past that cap the call is
attributed to the feature ``_other``.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.utils.text import slugify

from gateway.http import header
from gateway.records import KeyRecord

OVERFLOW_FEATURE = "_other"
_slugs: dict[str, str] = {}


@dataclass(slots=True)
class Labels:
    feature: str
    endpoint: str
    end_user: str


def _slug(value: str) -> str:
    cached = _slugs.get(value)
    if cached is None:
        cached = slugify(value)[:64]
        if len(_slugs) < 50_000:
            _slugs[value] = cached
    return cached


def _text(value, limit: int) -> str:
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if not isinstance(value, str):
        return ""
    # no control characters in stored labels (they end up in CSVs and logs)
    return "".join(ch for ch in value.strip() if ch.isprintable())[:limit]


def labels(scope, body: dict, record: KeyRecord, ledger) -> Labels:
    metadata = body.get("metadata") if isinstance(body.get("metadata"), dict) else {}
    raw_feature = header(scope, b"x-finops-feature") or metadata.get("feature") or ""
    feature = _slug(_text(raw_feature, 200)) or record.default_feature
    if feature and feature not in record.features:
        if record.new_features_left > 0:
            record.new_features_left -= 1
            record.features.add(feature)
            ledger.feature_named(record.team_id, feature, record.key_id)
        else:
            feature = OVERFLOW_FEATURE
    endpoint = _text(header(scope, b"x-finops-endpoint") or metadata.get("endpoint") or "", 200)
    return Labels(feature=feature, endpoint=endpoint, end_user=_text(body.get("user") or "", 200))
