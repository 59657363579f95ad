"""Sign-in is rate limited per address+username and per address; the HTTPS settings pass
``manage.py check --deploy`` while plain-HTTP loopback stays the default."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from django.core.cache import cache
from django.test import override_settings
from django.urls import reverse

from tests.base import TwoOrgsTestCase

PASSWORD = "pw-Test-12345"  # the factories' default
ROOT = Path(__file__).resolve().parents[2]


@override_settings(
    FINOPS_LOGIN_FAILURES_PER_USER=3,
    FINOPS_LOGIN_FAILURES_PER_ADDRESS=10,
    FINOPS_LOGIN_WINDOW_SECONDS=600,
)
class LoginThrottleTests(TwoOrgsTestCase):
    def setUp(self):
        cache.clear()

    def login(self, username="lead@acme.test", password=PASSWORD, addr="10.0.0.1"):
        return self.client.post(
            reverse("login"), {"username": username, "password": password}, REMOTE_ADDR=addr
        )

    def test_after_n_failures_even_the_right_password_is_refused_with_429(self):
        for _ in range(3):
            self.assertEqual(self.login(password="wrong").status_code, 200)
        blocked = self.login()
        self.assertEqual(blocked.status_code, 429)
        self.assertEqual(blocked["Retry-After"], "600")
        self.assertContains(blocked, "Too many failed sign-in attempts", status_code=429)
        self.assertNotIn("_auth_user_id", self.client.session)

    def test_other_users_and_addresses_are_not_blocked_by_one_users_failures(self):
        for _ in range(3):
            self.login(password="wrong")
        self.assertEqual(self.login(addr="10.0.0.2").status_code, 302)
        self.client.logout()
        self.assertEqual(self.login(username="admin@acme.test").status_code, 302)

    def test_a_success_clears_the_count(self):
        for _ in range(2):
            self.login(password="wrong")
        self.assertEqual(self.login().status_code, 302)
        self.client.logout()
        for _ in range(2):
            self.login(password="wrong")
        self.assertEqual(self.login().status_code, 302)

    def test_an_address_spraying_many_usernames_is_blocked(self):
        for i in range(10):
            self.login(username=f"nobody{i}@acme.test", password="wrong")
        self.assertEqual(self.login().status_code, 429)

    def test_the_admin_signs_in_through_the_throttled_page(self):
        response = self.client.get("/admin/login/?next=/admin/")
        self.assertEqual(response.status_code, 302)
        self.assertEqual(response["Location"], f"{reverse('login')}?next=/admin/")


def _check_deploy(**env) -> subprocess.CompletedProcess:
    full = {k: v for k, v in os.environ.items() if not k.startswith("FINOPS_HTTPS")}
    full.update(env)
    return subprocess.run(  # noqa: S603
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=full,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_check_deploy_is_clean_with_the_https_settings_on(tmp_path):
    result = _check_deploy(
        DEBUG="false",
        SECRET_KEY="s3cret-" + "k" * 40 + "-Zq9",
        FINOPS_KEY_PEPPER="pepper-" + "p" * 40,
        FINOPS_HTTPS="true",
        ALLOWED_HOSTS="finops.example.com",
        SITE_URL="https://finops.example.com",
        FINOPS_VAR_DIR=str(tmp_path),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_without_https_the_deploy_check_names_the_cookie_and_ssl_settings(tmp_path):
    result = _check_deploy(
        DEBUG="false",
        SECRET_KEY="s3cret-" + "k" * 40 + "-Zq9",
        FINOPS_KEY_PEPPER="pepper-" + "p" * 40,
        FINOPS_VAR_DIR=str(tmp_path),
    )
    # Loopback HTTP deployments still start; the check tells what HTTPS would change.
    assert "SESSION_COOKIE_SECURE" in result.stderr + result.stdout
