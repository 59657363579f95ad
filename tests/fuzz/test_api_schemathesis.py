"""Property-based fuzzing of the REST API against its own OpenAPI schema (schemathesis).

The schema is the one drf-spectacular serves at ``/api/v1/schema/``, generated in-process; every
operation is called through Django's WSGI app (so the calls hit the test database inside the
test's transaction) as an org admin authenticated with a DRF token. Each operation must never
answer 5xx, and whatever it answers must match its documented status codes, content type and
response schema. The example budget is the fuzz profile's (``tests/fuzz/profiles.py``).
"""

from __future__ import annotations

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from drf_spectacular.generators import SchemaGenerator
from hypothesis import HealthCheck, given
from rest_framework.authtoken.models import Token
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
)

from teams.models import Role
from tests import factories as f
from tests.fuzz.profiles import fuzz


def _load_schema():
    # The same document /api/v1/schema/ serves (that view is covered by tests/teams); built
    # directly so collection needs no database access.
    document = SchemaGenerator().get_schema(request=None, public=True)
    loaded = schemathesis.openapi.from_dict(document)
    loaded.app = get_wsgi_application()
    return loaded


schema = _load_schema()

CHECKS = [
    not_a_server_error,
    content_type_conformance,
    response_schema_conformance,
]


@pytest.fixture
def _keep_connection():
    """Django's WSGI handler closes the DB connection when a response finishes, which would
    end the test's transaction; its test client detaches that hook the same way."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def admin_token(db, _keep_connection) -> str:
    """An admin of ``acme`` with a team, a feature, a key and a budget to find, and a second
    org ``globex`` whose rows must never come back."""
    org = f.make_org("acme")
    team = f.make_team(org, "search")
    f.make_feature(team, "summarize")
    f.make_key(team, "search-svc")
    f.make_budget(org, scope="team", team=team)
    f.make_model(org, "gpt-4o-mini")
    user = f.make_user("admin@acme.test")
    f.make_member(user, org, Role.ADMIN)
    other = f.make_org("globex")
    f.make_key(f.make_team(other, "search"), "globex-svc")
    return Token.objects.create(user=user).key


# One pytest test per operation (ids like ``GET /api/v1/teams/``), parametrized by pytest
# itself: schemathesis' own ``parametrize`` gives all of them a single node id, which
# pytest-xdist would run only once.
OPERATIONS = [result.ok() for result in schema.get_all_operations()]


@pytest.mark.parametrize("operation", OPERATIONS, ids=lambda operation: operation.label)
def test_api_operation_conforms_to_its_schema(operation, admin_token):
    @fuzz(max_examples=10, suppress=HealthCheck)
    @given(case=operation.as_strategy())
    def conforms(case):
        case.call_and_validate(headers={"Authorization": f"Token {admin_token}"}, checks=CHECKS)

    conforms()
