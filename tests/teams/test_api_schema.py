"""The role matrix in docs/api.md is the one the code enforces, and the OpenAPI schema builds
without warnings."""

from __future__ import annotations

from io import StringIO
from pathlib import Path

from django.conf import settings
from django.core.management import call_command
from django.test import TestCase

from teams.permissions import permission_matrix_markdown


class DocsAndSchemaTests(TestCase):
    def test_docs_role_matrix_matches_the_permission_rules(self):
        docs = (Path(settings.BASE_DIR) / "docs" / "api.md").read_text()
        self.assertIn(permission_matrix_markdown(), docs)

    def test_openapi_schema_generates_and_validates_without_warnings(self):
        out = StringIO()
        call_command("spectacular", "--validate", "--fail-on-warn", stdout=out)
        schema = out.getvalue()
        for path in (
            "/api/v1/keys/{id}/rotate/",
            "/api/v1/models/{id}/prices/",
            "/api/v1/budgets/",
            "/api/v1/audit/",
        ):
            self.assertIn(path, schema)
