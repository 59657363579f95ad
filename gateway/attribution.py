"""Who a call is for: team and key from the key; feature, endpoint and end user from the request.

Attribution never drops a call: an unknown feature is recorded (and created unclaimed for a lead
to claim), up to ``FINOPS_NEW_FEATURES_PER_KEY`` new names per key; past that cap the call is
attributed to the feature ``_other``.

The cap is held in two steps, so that the hot path makes no query. ``labels`` counts down the
names the key had left when its record was loaded: a first, per-process bound (several
processes each see the whole allowance). The ledger writer then creates the names with
``features_create``, atomically across processes, and relabels to ``_other`` every event of a
name refused there before it is written.
"""

from __future__ import annotations

from collections.abc import Iterable
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


def features_create(*, named: Iterable[tuple[int, str, int]], cap: int) -> set[tuple[int, str]]:
    """Blocking (the ledger thread): create the features first named by traffic, given as
    ``(team id, slug, key id)``, each in a transaction of its own; return the ``(key id, slug)``
    pairs refused because the key already created ``cap`` features (or is gone).

    Atomic across processes: the key's row is locked (``SELECT … FOR UPDATE`` on PostgreSQL; on
    SQLite every write transaction is ``IMMEDIATE``, so writers queue on the database lock),
    then the name is looked up again and the key's features counted before one is created, so
    two processes never both take the last place. A name that exists already costs no place and
    is never refused; two processes creating one name under two keys meet the unique
    ``(team, slug)`` constraint and make one row. Deleting a feature frees its key's place.
    """
    from django.db import IntegrityError

    from teams.models import Feature

    refused: set[tuple[int, str]] = set()
    for team_id, slug, key_id in named:
        if Feature.objects.filter(team_id=team_id, slug=slug).exists():
            continue  # there already (another process, a lead): it takes no place
        try:
            allowed = _feature_create_within_cap(team_id, slug, key_id, cap)
        except IntegrityError:
            # created meanwhile under another key's lock, or the team is gone
            allowed = Feature.objects.filter(team_id=team_id, slug=slug).exists()
        if not allowed:
            refused.add((key_id, slug))
    return refused


def _feature_create_within_cap(team_id: int, slug: str, key_id: int, cap: int) -> bool:
    from django.db import transaction

    from teams.models import Feature, VirtualKey

    with transaction.atomic():
        locked = VirtualKey.objects.select_for_update().filter(pk=key_id, team_id=team_id)
        if not list(locked.values_list("pk", flat=True)):
            return False
        if Feature.objects.filter(team_id=team_id, slug=slug).exists():
            return True  # another process created it while this one waited for the lock
        if Feature.objects.filter(created_by_key_id=key_id).count() >= cap:
            return False
        # bulk_create sends no post_save: a name seen in traffic must not drop every process's
        # key cache (the processes that saw it have it already)
        Feature.objects.bulk_create(
            [
                Feature(
                    team_id=team_id, slug=slug, name=slug, claimed=False, created_by_key_id=key_id
                )
            ]
        )
    return True
