"""The API docs render in a real browser from the project's own static files, with no request
to another origin (Swagger UI used to load from a CDN and the page stayed blank offline).

Skipped when ``/usr/bin/chromium`` is absent (``apt-get install chromium``; ``.ci/run`` does it).
"""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from tests.browser.test_login_browser import CHROMIUM, CHROMIUM_ARGS, PASSWORD

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs /usr/bin/chromium"),
]


@pytest.fixture
def browser_page():
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.set_default_timeout(15_000)
            yield page
        finally:
            browser.close()


@pytest.fixture
def docs_reader(transactional_db):
    from teams.models import Role
    from tests import factories as f

    org = f.make_org("acme")
    user = f.make_user("admin@acme.test", password=PASSWORD)
    f.make_member(user, org, Role.ADMIN)
    return user


def test_swagger_ui_renders_from_own_static_files(live_server, docs_reader, browser_page):
    page = browser_page
    own = urlsplit(live_server.url).netloc
    foreign: list[str] = []

    def _watch(request):
        netloc = urlsplit(request.url).netloc
        if netloc and netloc != own:
            foreign.append(request.url)

    page.on("request", _watch)
    page.goto(f"{live_server.url}/accounts/login/")
    page.fill("input[name=username]", "admin@acme.test")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}/")

    page.goto(f"{live_server.url}/api/v1/docs/")
    page.wait_for_selector(".swagger-ui .info .title")
    assert page.evaluate("typeof SwaggerUIBundle") == "function"
    assert "LLM FinOps API" in page.locator(".swagger-ui .info .title").inner_text()
    page.wait_for_selector(".swagger-ui .opblock")  # the schema was fetched and rendered
    assert foreign == []
