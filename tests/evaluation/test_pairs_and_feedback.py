"""Pairs are stored redacted and expire; reviewers label them within their scope; a key gives
feedback only on its own requests."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from evaluation.models import EvalPair, Feedback
from evaluation.services.feedback import FeedbackError, feedback_record
from evaluation.services.pairs import pair_review, pair_store, pairs_purge
from teams.models import AuditEntry, Role
from tests import factories as f
from tests.reports.ledger import event


def store(org, team, request_id="r-1", **kw):
    defaults = dict(
        org_id=org.pk,
        team_id=team.pk,
        key_id=None,
        router_id=None,
        request_id=request_id,
        messages=[{"role": "user", "content": "Mail bob@example.com my key sk-abcdef123456789"}],
        router_score=0.7,
        served="strong",
        strong_model="big",
        weak_model="small",
        strong_answer="Sent to bob@example.com.",
        weak_answer="Card 4111 1111 1111 1111 noted.",
        strong_cost=Decimal("0.002"),
        weak_cost=Decimal("0.0001"),
        retention_days=7,
    )
    defaults.update(kw)
    return pair_store(**defaults)


@pytest.mark.django_db
def test_pairs_are_redacted_before_they_are_written(settings):
    org, team = f.make_org("pairs"), None
    team = f.make_team(org, "search")
    pair = store(org, team)
    stored = EvalPair.objects.get(pk=pair.pk)
    text = str(stored.messages) + stored.strong_answer + stored.weak_answer
    for secret in ("bob@example.com", "sk-abcdef123456789", "4111 1111 1111 1111"):
        assert secret not in text
    assert text.count("[REDACTED]") == 4
    # configured patterns replace the defaults
    settings.FINOPS_REDACT_PATTERNS = [r"Mail"]
    other = store(org, team, request_id="r-2")
    assert other.messages[0]["content"].startswith("[REDACTED] bob@example.com")
    assert store(org, team, request_id="r-2") is None  # one pair per request


@pytest.mark.django_db
def test_pairs_expire_after_their_retention():
    org = f.make_org("pairs")
    team = f.make_team(org, "search")
    store(org, team, request_id="old", retention_days=1)
    store(org, team, request_id="new", retention_days=30)
    assert pairs_purge(now=timezone.now() + timedelta(days=2)) == 1
    assert list(EvalPair.objects.values_list("request_id", flat=True)) == ["new"]


@pytest.mark.django_db
def test_a_reviewer_label_wins_over_the_judge_and_is_audited():
    org = f.make_org("pairs")
    team = f.make_team(org, "search")
    lead = f.make_user("lead@pairs.test")
    f.make_member(lead, org, Role.LEAD, team)
    pair = store(org, team)
    EvalPair.objects.filter(pk=pair.pk).update(judge_strong=0.9, judge_weak=0.88)
    pair.refresh_from_db()
    assert pair.needs_strong() is False
    pair_review(pair=pair, needs_strong=True, actor=lead)
    pair.refresh_from_db()
    assert pair.needs_strong() is True and pair.reviewed_by == lead
    assert AuditEntry.objects.filter(action="pair.reviewed", actor=lead).exists()


@pytest.mark.django_db
def test_pair_selectors_scope_by_team_and_org():
    from evaluation.selectors import pair_list_for_user

    org, other_org = f.make_org("pairs"), f.make_org("other")
    team, other_team = f.make_team(org, "search"), f.make_team(org, "ads")
    lead, finance, stranger = (f.make_user(u) for u in ("l@p.t", "f@p.t", "s@o.t"))
    f.make_member(lead, org, Role.LEAD, team)
    f.make_member(finance, org, Role.FINANCE)
    f.make_member(stranger, other_org, Role.ADMIN)
    store(org, team, request_id="mine")
    store(org, other_team, request_id="theirs")
    ids = lambda u: set(pair_list_for_user(u).values_list("request_id", flat=True))  # noqa: E731
    assert ids(lead) == {"mine"}
    assert ids(finance) == {"mine", "theirs"}
    assert ids(stranger) == set()


@pytest.mark.django_db
def test_feedback_only_for_the_keys_own_requests():
    org = f.make_org("fb")
    team = f.make_team(org, "search")
    mine, theirs = f.make_key(team, "mine").key, f.make_key(team, "theirs").key
    event(org=org, team=team, key_id=mine.pk, request_id="req-mine", model="small")
    event(org=org, team=team, key_id=theirs.pk, request_id="req-theirs")
    pair = store(org, team, request_id="req-mine")

    feedback = feedback_record(
        org_id=org.pk, key_id=mine.pk, body={"request_id": "req-mine", "score": 0.25}
    )
    assert (feedback.score, feedback.model) == (0.25, "small")
    pair.refresh_from_db()
    assert pair.feedback_score == 0.25
    # a second score replaces the first
    feedback_record(org_id=org.pk, key_id=mine.pk, body={"request_id": "req-mine", "score": 1})
    assert Feedback.objects.get(request_id="req-mine").score == 1.0

    for request_id in ("req-theirs", "req-unknown"):
        with pytest.raises(FeedbackError) as exc:
            feedback_record(
                org_id=org.pk, key_id=mine.pk, body={"request_id": request_id, "score": 1}
            )
        assert (exc.value.status, exc.value.code) == (404, "request_not_found")
    assert not Feedback.objects.filter(request_id="req-theirs").exists()


@pytest.mark.parametrize(
    "body, param",
    [
        ([], None),
        ({"score": 1}, "request_id"),
        ({"request_id": "x", "score": "1"}, "score"),
        ({"request_id": "x", "score": True}, "score"),
        ({"request_id": "x", "score": 1.5}, "score"),
        ({"request_id": "x", "score": float("nan")}, "score"),
        ({"request_id": "x" * 65, "score": 1}, "request_id"),
        ({"request_id": "x", "score": 1, "comment": 3}, "comment"),
    ],
)
def test_bad_feedback_is_a_400_naming_the_field(body, param):
    from evaluation.services.feedback import feedback_validate

    with pytest.raises(FeedbackError) as exc:
        feedback_validate(body)
    assert exc.value.status == 400 and exc.value.param == param
