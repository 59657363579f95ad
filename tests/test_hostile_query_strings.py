"""Hostile query strings get a 400 or a 404, never a 500: ids out of range (finops/ids.py; SQLite
overflows past 64 bits, PostgreSQL raises out of range) and NUL bytes (finops/middleware.py; no
text column can hold one)."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from finops.ids import MAX_ID, id_parse
from teams.models import Role
from tests import factories as f


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("7", 7),
        (str(MAX_ID), MAX_ID),
        (str(MAX_ID + 1), None),
        ("9" * 400, None),
        ("0", None),
        ("-3", None),
        ("١٢", None),  # Arabic-Indic digits pass str.isdigit
        ("12a", None),
        ("", None),
        (None, None),
    ],
)
def test_id_parse(value, expected):
    assert id_parse(value) == expected


@pytest.mark.django_db
@pytest.mark.parametrize("budget", ["75787682120918393786896220160", "١", "x"])
def test_alert_list_answers_a_hostile_budget_id_with_a_400(budget):
    org = f.make_org("acme")
    user = f.make_user("admin@acme.test")
    f.make_member(user, org, Role.ADMIN)
    client = APIClient()
    client.force_authenticate(user)
    response = client.get("/api/v1/alerts/", {"budget": budget})
    assert response.status_code == 400
    assert "budget" in response.json()


@pytest.mark.django_db
def test_catalog_reprice_with_a_huge_team_id_is_a_404(client):
    org = f.make_org("acme")
    user = f.make_user("admin@acme.test")
    f.make_member(user, org, Role.ADMIN)
    client.force_login(user)
    team = f.make_team(org, "search")
    url = f"/reports/orgs/{org.pk}/models/"
    assert client.get(url, {"team": team.pk}).status_code == 200
    assert client.get(url, {"team": "9" * 30}).status_code == 404


@pytest.mark.django_db
@pytest.mark.parametrize("query", ["status=%00", "kind=a%00b", "x%00=1", "action=%00"])
def test_a_nul_in_the_query_string_is_a_400_in_the_apis_shape(query):
    org = f.make_org("acme")
    user = f.make_user("admin@acme.test")
    f.make_member(user, org, Role.ADMIN)
    client = APIClient()
    client.force_authenticate(user)
    for path in ("/api/v1/alerts/", "/api/v1/audit/"):
        response = client.get(f"{path}?{query}")
        assert response.status_code == 400
        assert response.json() == {"detail": "The query string contains a NUL character."}


@pytest.mark.django_db
def test_a_nul_in_a_pages_query_string_is_a_plain_400(client):
    response = client.get("/accounts/login/?next=%00")
    assert response.status_code == 400
    assert response["Content-Type"].startswith("text/plain")
