from __future__ import annotations

from django.conf import settings
from django.contrib.auth import views as auth_views

from teams.forms import InvitePasswordResetForm


class PasswordResetView(auth_views.PasswordResetView):
    """Links in the email point at ``SITE_URL``, never at whatever Host the request carried."""

    form_class = InvitePasswordResetForm

    def form_valid(self, form):
        self.extra_email_context = {"site_url": settings.SITE_URL}
        return super().form_valid(form)
