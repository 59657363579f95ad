"""Pages the product serves on its own: the API docs load nothing from another origin, the
favicon is answered, 404 and 500 are the product's pages (the login form's "Email" label is
checked in ``tests/teams/test_pages.py``)."""

from __future__ import annotations

import re

from django.test import TestCase, override_settings
from django.urls import reverse

from tests import factories as f
from tests.base import TwoOrgsTestCase

_FOREIGN = re.compile(r"""(?:src|href)\s*=\s*["']?(?:https?:)?//""", re.IGNORECASE)


class ApiDocsOfflineTests(TestCase):
    def test_api_docs_reference_only_same_origin_files(self):
        user = f.make_user("docs@acme.test")
        self.client.force_login(user)
        response = self.client.get("/api/v1/docs/")
        self.assertEqual(response.status_code, 200)
        html = response.content.decode()
        self.assertIn("swagger-ui-bundle.js", html)
        self.assertIn("/static/drf_spectacular_sidecar/", html)
        self.assertIsNone(_FOREIGN.search(html), _FOREIGN.search(html))
        self.assertNotIn("cdn.jsdelivr", html)
        self.assertNotIn("unpkg.com", html)

    def test_sidecar_bundle_is_served_from_static(self):
        response = self.client.get(
            "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js"
        )
        self.assertEqual(response.status_code, 200)


@override_settings(DEBUG=False)
class ErrorPageTests(TwoOrgsTestCase):
    def test_404_is_the_products_page_and_names_nothing(self):
        self.client.force_login(self.lead_a2)
        page = self.client.get(reverse("reports:statement-index", args=[self.team_a.pk]))
        self.assertEqual(page.status_code, 404)
        self.assertContains(page, "Page not found", status_code=404)
        self.assertContains(page, 'class="topbar"', status_code=404)  # the base layout
        self.assertContains(page, reverse("home"), status_code=404)
        self.assertNotContains(page, self.team_a.name, status_code=404)
        self.assertNotContains(page, "<details", status_code=404)

    def test_404_for_anonymous_visitors(self):
        page = self.client.get("/no-such-page/")
        self.assertContains(page, "Page not found", status_code=404)

    def test_500_page_renders_without_a_request(self):
        from django.template import loader

        html = loader.get_template("500.html").render({})
        self.assertIn("Something went wrong", html)
        self.assertIn('class="topbar"', html)

    def test_favicon_is_linked_and_served(self):
        response = self.client.get("/favicon.ico")
        self.assertEqual(response.status_code, 301)
        self.assertTrue(response["Location"].endswith("favicon.svg"))
        self.assertEqual(self.client.get(response["Location"]).status_code, 200)
        login = self.client.get(reverse("login"))
        self.assertContains(login, 'rel="icon"')


def _pdf_title(pdf: bytes) -> str:
    """The document title of a WeasyPrint PDF (its objects sit in compressed streams)."""
    import zlib

    for stream in re.finditer(rb"stream\r?\n(.*?)\r?\nendstream", pdf, re.S):
        try:
            data = zlib.decompress(stream.group(1))
        except zlib.error:
            continue
        match = re.search(rb"/Title\s*<feff([0-9a-fA-F]*)>", data)
        if match:
            return bytes.fromhex(match.group(1).decode()).decode("utf-16-be")
        match = re.search(rb"/Title\s*\(([^)]*)\)", data)
        if match:
            return match.group(1).decode("latin-1")
    return ""


class StatementPdfTests(TwoOrgsTestCase):
    def setUp(self):
        try:
            import weasyprint  # noqa: F401, PLC0415
        except (ImportError, OSError) as exc:
            self.skipTest(f"WeasyPrint cannot import here: {exc}")

    def _get(self, user, month: str):
        self.client.force_login(user)
        path = reverse("reports:team-statement", args=[self.team_a.pk, month])
        return self.client.get(path, {"format": "pdf"})

    def test_statement_pdf_of_the_open_month_is_a_draft_pdf_with_the_team(self):
        from django.utils import timezone

        month = timezone.now().strftime("%Y-%m")
        response = self._get(self.finance_a, month)
        self.assertEqual(response.status_code, 200)
        self.assertEqual(response["Content-Type"], "application/pdf")
        self.assertTrue(response.content.startswith(b"%PDF-"))
        self.assertIn(self.team_a.slug, _pdf_title(response.content))
        self.assertIn(month, _pdf_title(response.content))
        self.assertIn("-draft.pdf", response["Content-Disposition"])

    def test_statement_pdf_of_a_closed_month_is_not_a_draft(self):
        response = self._get(self.finance_a, "2020-01")
        self.assertTrue(response.content.startswith(b"%PDF-"))
        self.assertNotIn("draft", response["Content-Disposition"])
        self.assertIn("2020-01.pdf", response["Content-Disposition"])

    def test_statement_pdf_of_another_team_is_a_404(self):
        for user in (self.lead_a2, self.admin_b):
            with self.subTest(user=user.username):
                self.assertEqual(self._get(user, "2020-01").status_code, 404)
