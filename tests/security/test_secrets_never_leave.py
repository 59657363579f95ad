"""Secrets never leave: a virtual-key secret (``sk-fo-…``) is shown once, in the response that
minted or rotated it, and nowhere else — not in logs, other responses, pages, emails, the
admin; a provider credential is never shown at all.

This is the in-process run (API, keys page, admin, dashboards, an alert email) with every log
record captured at DEBUG; ``test_secrets_never_leave_live`` is the run over real HTTP against the
live gateway, whose log file is read back afterwards.
"""

from __future__ import annotations

import logging
import re
from datetime import timedelta

import pytest
from django.core import mail
from django.test import override_settings
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from reports.services import budget_alerts_evaluate, usage_rollup
from teams.models import Role, VirtualKey
from tests import factories as f
from tests.reports.ledger import event

# a whole secret; its first characters (the lookup prefix, ``sk-fo-`` + 12) are public and
# name the key in lists
SECRET_RE = re.compile(r"sk-fo-[A-Za-z0-9_-]{20,}")
PROVIDER_SECRET = "sk-prov-SENTINEL-7f3a9c"


def _body(response) -> str:
    raw = b"".join(response.streaming_content) if response.streaming else response.content
    return raw.decode("utf-8", "replace")


@pytest.mark.django_db
@override_settings(EMAIL_BACKEND="django.core.mail.backends.locmem.EmailBackend")
def test_key_secrets_are_shown_once_and_never_again(caplog, monkeypatch):
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("FINOPS_FUZZ_PROVIDER_KEY", PROVIDER_SECRET)
    org = f.make_org("acme")
    team = f.make_team(org, "search")
    provider = f.make_provider(org, "sim")
    provider.api_key_env = "FINOPS_FUZZ_PROVIDER_KEY"
    provider.save()
    model = f.make_model(org, "gpt-4o-mini", provider=provider)
    admin = f.make_user("admin@acme.test", is_staff=True, email="admin@acme.test")
    f.make_member(admin, org, Role.ADMIN)
    lead = f.make_user("lead@acme.test", is_staff=True, email="lead@acme.test")
    f.make_member(lead, org, Role.LEAD, team)
    api = APIClient()
    api.force_login(admin)

    shown: list[str] = []  # the responses allowed to show a secret (once each)
    seen: list[tuple[str, str]] = []  # everything else: (where, text)

    # mint through the API, rotate through the API, mint through the keys page
    response = api.post(
        "/api/v1/keys/", {"org": "acme", "team": "search", "name": "svc"}, format="json"
    )
    assert response.status_code == 201, response.content
    shown.append(_body(response))
    key_id = response.json()["id"]
    response = api.post(f"/api/v1/keys/{key_id}/rotate/", {}, format="json")
    assert response.status_code in (200, 201), response.content
    shown.append(_body(response))
    page = APIClient()
    page.force_login(lead)
    response = page.post(f"/teams/{team.pk}/keys/", {"action": "mint", "name": "page-svc"})
    assert response.status_code == 200, response.status_code
    shown.append(_body(response))
    secrets = [m for text in shown for m in SECRET_RE.findall(text)]
    assert len(secrets) >= 3, shown
    for text in shown:
        found = set(SECRET_RE.findall(text))
        assert len(found) == 1, found  # the one new secret, and no other
    # the same secret may be printed more than once in one page (value + copy button), but a
    # response shows only its own new secret
    distinct = set(secrets)
    assert len(distinct) == 3

    # spend and a budget alert email
    f.make_budget(
        org, scope="team", team=team, limit="0.01", alert_thresholds=[50], recipients=["o@a.test"]
    )
    key = VirtualKey.objects.get(pk=key_id)
    event(
        org=org,
        team=team,
        key_id=key.pk,
        input_cost="0.05",
        output_cost="0",
        started_at=timezone.now() - timedelta(minutes=5),
    )
    usage_rollup()
    budget_alerts_evaluate(now=timezone.now())
    assert mail.outbox, "the budget alert email was not sent"
    for message in mail.outbox:
        seen.append(
            ("email", message.subject + message.body + "".join(a[0] for a in message.alternatives))
        )

    # every read a user can make
    for path in (
        "/api/v1/keys/",
        f"/api/v1/keys/{key_id}/",
        "/api/v1/providers/",
        f"/api/v1/providers/{provider.pk}/",
        "/api/v1/models/",
        f"/api/v1/models/{model.pk}/",
        "/api/v1/audit/",
        "/api/v1/alerts/",
        "/api/v1/teams/",
        "/",
        f"/teams/{team.pk}/keys/",
        "/reports/",
        f"/reports/orgs/{org.pk}/",
        f"/reports/orgs/{org.pk}/data.json",
        f"/reports/teams/{team.pk}/",
        f"/reports/teams/{team.pk}/data.json",
        reverse("admin:teams_virtualkey_changelist"),
        reverse("admin:teams_virtualkey_change", args=[key_id]),
        reverse("admin:gateway_provider_changelist"),
        reverse("admin:gateway_provider_change", args=[provider.pk]),
        reverse("admin:teams_auditentry_changelist"),
    ):
        response = api.get(path)
        assert response.status_code in (200, 302), (path, response.status_code)
        seen.append((path, _body(response)))
    for record in caplog.records:
        seen.append((f"log:{record.name}", record.getMessage() + str(record.args)))

    for where, text in seen:
        for secret in distinct:
            assert secret not in text, f"a key secret leaked into {where}"
            assert secret[-12:] not in text, f"the tail of a key secret leaked into {where}"
        assert PROVIDER_SECRET not in text, f"the provider credential leaked into {where}"
        assert not SECRET_RE.search(text), f"something like a key secret is in {where}"
