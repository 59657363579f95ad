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


# --- keys page (issue 7): mint, rotate, revoke ---------------------------------------------------

from django import forms  # noqa: E402
from django.utils import timezone  # noqa: E402

from teams.models import Feature, Team, VirtualKey  # noqa: E402

LIMIT_MAX = 2_147_483_647  # PositiveIntegerField


def _limit(label: str) -> forms.IntegerField:
    return forms.IntegerField(
        label=label, required=False, min_value=1, max_value=LIMIT_MAX, help_text="Empty: no limit."
    )


def _callable_names(team: Team) -> list[str]:
    """Names a key may be restricted to: the org's models, groups and routers."""
    from gateway.models import LLMModel, ModelGroup, Router

    org = team.org_id
    names = set(LLMModel.objects.filter(org_id=org, active=True).values_list("name", flat=True))
    names |= set(ModelGroup.objects.filter(org_id=org).values_list("name", flat=True))
    names |= set(Router.objects.filter(org_id=org).values_list("name", flat=True))
    return sorted(names)


class KeyMintForm(forms.Form):
    """A new key of one team. ``expires_at`` is read in the organisation's timezone (the view
    activates it while validating)."""

    name = forms.CharField(max_length=200, help_text="Usually the service that will use it.")
    default_feature = forms.ModelChoiceField(
        queryset=Feature.objects.none(),
        required=False,
        empty_label="(none)",
        help_text="Spend is attributed to it when a call names no feature.",
    )
    allowed_models = forms.MultipleChoiceField(
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="None ticked: every model of the organisation.",
    )
    rpm_limit = _limit("Requests per minute")
    tpm_limit = _limit("Tokens per minute")
    max_parallel = _limit("Max parallel calls")
    expires_at = forms.DateTimeField(
        label="Expires at",
        required=False,
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
        help_text="Optional; in the organisation's timezone.",
    )

    def __init__(self, *args, team: Team, **kwargs):
        super().__init__(*args, **kwargs)
        self.team = team
        self.fields["default_feature"].queryset = Feature.objects.filter(team=team).order_by("slug")
        self.fields["allowed_models"].choices = [(n, n) for n in _callable_names(team)]

    def clean_name(self) -> str:
        name = self.cleaned_data["name"].strip()
        if VirtualKey.objects.filter(team=self.team, name=name, revoked_at__isnull=True).exists():
            raise forms.ValidationError("This team already has a usable key with this name.")
        return name

    def clean_expires_at(self):
        value = self.cleaned_data.get("expires_at")
        if value is not None and value <= timezone.now():
            raise forms.ValidationError("Must be in the future.")
        return value


class _TeamKeyForm(forms.Form):
    key = forms.ModelChoiceField(
        queryset=VirtualKey.objects.none(),
        widget=forms.HiddenInput,
        error_messages={"invalid_choice": "No such usable key in this team."},
    )

    def __init__(self, *args, team: Team, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["key"].queryset = VirtualKey.objects.filter(team=team, revoked_at__isnull=True)


class KeyRotateForm(_TeamKeyForm):
    pass


class KeyRevokeForm(_TeamKeyForm):
    confirm = forms.BooleanField(
        label="Yes, revoke it: calls with this key fail from now on.",
        error_messages={"required": "Tick the box to confirm the revocation."},
    )
