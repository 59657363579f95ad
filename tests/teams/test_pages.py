"""HTML pages of the control plane: login/logout, password reset by email, the home page."""

from __future__ import annotations

import re

from django.contrib.auth import get_user_model
from django.core import mail
from django.test import override_settings
from django.urls import reverse

from teams.models import Role
from tests import factories as f
from tests.base import TwoOrgsTestCase

PASSWORD = "pw-Test-12345"  # the factories' default


@override_settings(
    EMAIL_BACKEND="django.core.mail.backends.locmem.EmailBackend",
    SITE_URL="https://finops.example.test",
)
class LoginTests(TwoOrgsTestCase):
    def test_home_requires_login(self):
        response = self.client.get(reverse("home"))
        self.assertRedirects(response, f"{reverse('login')}?next=/", fetch_redirect_response=False)

    def test_login_with_the_right_password_opens_home(self):
        page = self.client.get(reverse("login"))
        self.assertContains(page, 'name="password"')
        self.assertContains(page, "<label>Email ")  # users sign in with their email address
        self.assertNotContains(page, "Username")
        self.assertContains(page, reverse("password_reset"))
        response = self.client.post(
            reverse("login"), {"username": "lead@acme.test", "password": PASSWORD}, follow=True
        )
        self.assertEqual(response.redirect_chain[-1][0], reverse("home"))
        self.assertContains(response, "Welcome, lead@acme.test")

    def test_login_with_a_wrong_password_fails(self):
        response = self.client.post(
            reverse("login"), {"username": "lead@acme.test", "password": "nope"}
        )
        self.assertEqual(response.status_code, 200)
        self.assertContains(response, "Your email and password didn")
        self.assertNotIn("_auth_user_id", self.client.session)

    def test_logout_is_post_only(self):
        self.client.force_login(self.lead_a)
        self.assertEqual(self.client.get(reverse("logout")).status_code, 405)
        self.assertIn("_auth_user_id", self.client.session)
        home = self.client.get(reverse("home"))
        self.assertContains(home, f'action="{reverse("logout")}"')
        response = self.client.post(reverse("logout"))
        self.assertRedirects(response, reverse("login"), fetch_redirect_response=False)
        self.assertNotIn("_auth_user_id", self.client.session)
        self.assertEqual(self.client.get(reverse("home")).status_code, 302)


@override_settings(
    EMAIL_BACKEND="django.core.mail.backends.locmem.EmailBackend",
    SITE_URL="https://finops.example.test",
)
class PasswordResetTests(TwoOrgsTestCase):
    def _request_link(self, email: str) -> str:
        response = self.client.post(reverse("password_reset"), {"email": email})
        self.assertRedirects(response, reverse("password_reset_done"))
        self.assertEqual(len(mail.outbox), 1)
        message = mail.outbox[0]
        self.assertEqual(message.to, [email.lower()])
        match = re.search(r"https://finops\.example\.test(/accounts/reset/\S+/)", message.body)
        self.assertIsNotNone(match, message.body)
        return match.group(1)

    def test_reset_email_link_sets_a_new_password(self):
        self.lead_a.email = "lead@acme.test"
        self.lead_a.save()
        path = self._request_link("lead@acme.test")
        self.assertIn("LLM FinOps", mail.outbox[0].subject)
        form = self.client.get(path, follow=True)  # Django swaps the token for a session marker
        self.assertContains(form, "Choose a new password")
        set_url = form.redirect_chain[-1][0]
        done = self.client.post(
            set_url,
            {"new_password1": "a-Fresh-pass-987", "new_password2": "a-Fresh-pass-987"},
            follow=True,
        )
        self.assertContains(done, "Password set")
        self.assertTrue(self.client.login(username="lead@acme.test", password="a-Fresh-pass-987"))
        again = self.client.get(path, follow=True)  # a link works once
        self.assertContains(again, "no longer works")

    def test_user_without_a_usable_password_can_set_one(self):
        user = get_user_model().objects.create(
            username="newlead@acme.test", email="newlead@acme.test"
        )
        user.set_unusable_password()
        user.save()
        f.make_member(user, self.org_a, Role.LEAD, self.team_a)
        path = self._request_link("NewLead@acme.test")
        set_url = self.client.get(path, follow=True).redirect_chain[-1][0]
        self.client.post(
            set_url, {"new_password1": "First-pass-4321", "new_password2": "First-pass-4321"}
        )
        user.refresh_from_db()
        self.assertTrue(user.check_password("First-pass-4321"))

    def test_unknown_or_inactive_address_gets_no_email_but_the_same_page(self):
        for email in ("nobody@nowhere.test", "inactive@acme.test"):
            if email.startswith("inactive"):
                f.make_user(email, email=email, is_active=False)
            response = self.client.post(reverse("password_reset"), {"email": email})
            self.assertRedirects(response, reverse("password_reset_done"))
        self.assertEqual(mail.outbox, [])

    def test_bad_token_is_refused(self):
        response = self.client.get(
            reverse("password_reset_confirm", kwargs={"uidb64": "MQ", "token": "bad-token"})
        )
        self.assertContains(response, "no longer works")


class HomeTests(TwoOrgsTestCase):
    def test_home_shows_own_orgs_and_roles_only(self):
        self.client.force_login(self.admin_a)
        page = self.client.get(reverse("home"))
        self.assertContains(page, "acme")
        self.assertContains(page, "Admin")
        self.assertContains(page, "Admin (organisation)")  # org admins read every team
        self.assertNotContains(page, "globex")
        self.assertNotContains(page, "Globex")

    def test_team_lead_sees_own_team_role_and_not_other_org(self):
        self.client.force_login(self.lead_b)
        page = self.client.get(reverse("home"))
        self.assertContains(page, "Globex")
        self.assertContains(page, "Team lead")
        self.assertNotContains(page, "acme")
        self.assertNotContains(page, "Acme")

    def test_member_sees_only_own_team(self):
        self.client.force_login(self.member_a)
        teams = [row["team"] for row in self.client.get(reverse("home")).context["teams"]]
        self.assertEqual(teams, [self.team_a])

    def test_outsider_sees_no_org(self):
        self.client.force_login(self.outsider)
        page = self.client.get(reverse("home"))
        self.assertContains(page, "not a member of any organisation")
        self.assertNotContains(page, "acme")

    def test_home_links_to_api_docs_and_admin_for_staff(self):
        self.client.force_login(self.member_a)
        page = self.client.get(reverse("home"))
        self.assertContains(page, reverse("api-docs"))
        self.assertNotContains(page, reverse("admin:index"))
        self.client.force_login(self.superuser)
        page = self.client.get(reverse("home"))
        self.assertContains(page, reverse("admin:index"))
        self.assertContains(page, "Globex")
        self.assertContains(page, "Acme")
