"""Model forms of the control-plane admin (``teams.admin``): list fields edited as text, and the
virtual key's form with the checks the services make, shown as field errors instead of a 500."""

from __future__ import annotations

from django import forms
from django.core.exceptions import ValidationError

from teams import services
from teams.models import VirtualKey


class CommaSeparatedField(forms.CharField):
    """A list stored in a JSONField, edited as ``a, b, c``."""

    def __init__(self, *, item=str, **kwargs):
        kwargs.setdefault("required", False)
        super().__init__(**kwargs)
        self.item = item

    def prepare_value(self, value):
        if isinstance(value, list | tuple):
            return ", ".join(str(v) for v in value)
        return value

    def to_python(self, value):
        if isinstance(value, list):
            return value
        text = super().to_python(value) or ""
        items = [part.strip() for part in text.split(",") if part.strip()]
        try:
            return [self.item(part) for part in items]
        except ValueError as exc:
            raise ValidationError(f"not a comma-separated list ({exc})") from exc

    def has_changed(self, initial, data) -> bool:
        try:
            return list(initial or []) != self.to_python(data)
        except ValidationError:
            return True


class KeyForm(forms.ModelForm):
    allowed_models = CommaSeparatedField(
        label="Allowed models",
        help_text="Comma-separated model, group or router names; empty allows all.",
    )
    fallbacks = CommaSeparatedField(
        label="Fallback models",
        help_text="Comma-separated chat models tried in order when the requested one fails.",
    )

    class Meta:
        model = VirtualKey
        fields = (
            "team",
            "name",
            "default_feature",
            "allowed_models",
            "default_model",
            "fallbacks",
            "rpm_limit",
            "tpm_limit",
            "max_parallel",
            "expires_at",
        )

    def clean(self):
        data = super().clean()
        team = data.get("team") or (self.instance.team if self.instance.pk else None)
        feature = data.get("default_feature")
        if team is not None and feature is not None and feature.team_id != team.pk:
            self.add_error("default_feature", "belongs to another team")
        if team is not None and data.get("fallbacks"):
            try:
                data["fallbacks"] = services.key_fallbacks_clean(
                    org=team.org, names=data["fallbacks"]
                )
            except ValueError as exc:
                self.add_error("fallbacks", str(exc))
        if team is not None:
            for field, message in services.key_model_fields_errors(
                org=team.org, fields=data
            ).items():
                self.add_error(field, message)
        return data
