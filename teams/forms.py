"""HTML forms of the control plane."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.forms import PasswordResetForm


class InvitePasswordResetForm(PasswordResetForm):
    """Django's reset form, except that it also reaches active users *without* a usable
    password: people added by ``apply_config`` (team leads) are created that way on purpose and
    set their first password through this very flow. Unknown addresses still get no email and
    the same "check your inbox" page, so the form does not reveal who has an account."""

    def get_users(self, email):
        User = get_user_model()
        field = User.get_email_field_name()
        users = User._default_manager.filter(**{f"{field}__iexact": email, "is_active": True})
        return (u for u in users if (getattr(u, field) or "").casefold() == email.casefold())
