"""Django admin for the gateway configuration and the usage ledger, tenant-scoped like the
control plane (``teams.admin.ScopedAdmin``).

Providers show the *name* of the environment variable holding their credential, never a value,
or take the organisation's own key in a password box that shows nothing back (it is stored
encrypted; the page says only whether one is set, and its last four characters); the admin-API
credential (invoice reconciliation) the same way, beside it.
Prices are history: existing rows are read-only and a change is a new row. The ledger is
read-only. Providers, models and routers save through ``gateway.services.catalog`` (as the API
and the config files do: one set of rules, one audit entry per change); groups, whose members
and fallbacks are inlines, keep the admin's own save and audit.
"""

from __future__ import annotations

from django import forms
from django.contrib import admin
from django.core.exceptions import ImproperlyConfigured, PermissionDenied, ValidationError
from django.db import models
from django.db.models import OuterRef, Q, Subquery
from django.forms.models import BaseInlineFormSet
from django.utils import timezone
from django.utils.decorators import method_decorator
from django.views.decorators.debug import sensitive_post_parameters

from gateway.models import (
    Batch,
    GroupFallback,
    GroupMember,
    LLMModel,
    ModelGroup,
    ModelPrice,
    Provider,
    Router,
    UsageEvent,
)
from gateway.services import catalog
from gateway.services.credentials import (
    API_KEY_MAX,
    SecretDecryptError,
    provider_key_problem,
    secret_decrypt,
)
from gateway.services.providers import is_operator, provider_key_from_env
from teams import selectors
from teams.admin import ScopedAdmin, ServiceAdmin, model_snapshot
from teams.models import Organization, Team
from teams.permissions import Subject, may_manage_object


def _https_url_field(db_field, **kwargs):
    if isinstance(db_field, models.URLField):
        kwargs.setdefault("assume_scheme", "https")
    return db_field.formfield(**kwargs)


def _key_field(label: str, help_text: str) -> forms.CharField:
    return forms.CharField(
        label=label,
        required=False,
        strip=True,
        max_length=API_KEY_MAX,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text=help_text,
    )


class ProviderForm(forms.ModelForm):
    """The provider with its own keys (inference, admin API): each typed into a password box
    that never shows a value back, kept when left blank, removed with its checkbox; the
    catalog service encrypts them."""

    api_key = _key_field(
        "API key",
        "The organisation's own key for this provider; leave blank to keep; the key is stored "
        "encrypted and never shown.",
    )
    clear_api_key = forms.BooleanField(
        label="Clear the key", required=False, help_text="Remove the stored key."
    )
    admin_api_key = _key_field(
        "Admin API key",
        "The organisation's own admin-API key (usage and cost reports, for invoice "
        "reconciliation); leave blank to keep; stored encrypted and never shown.",
    )
    clear_admin_api_key = forms.BooleanField(
        label="Clear the admin key", required=False, help_text="Remove the stored admin key."
    )

    class Meta:
        model = Provider
        formfield_callback = _https_url_field  # the admin's own callback overrides it too
        fields = (
            "org",
            "slug",
            "kind",
            "base_url",
            "api_key_env",
            "api_version",
            "responses_api",
            "publisher",
            "invoice_issuer",
            "admin_base_url",
            "admin_api_key_env",
        )

    def _key_clean(self, key: str) -> str:
        value = self.cleaned_data.get(key) or ""
        problem = provider_key_problem(value) if value else None
        if problem:
            raise ValidationError(problem)  # never quotes the key
        return value

    def clean_api_key(self) -> str:
        return self._key_clean("api_key")

    def clean_admin_api_key(self) -> str:
        return self._key_clean("admin_api_key")

    def clean(self):
        data = super().clean()
        for key in catalog.PROVIDER_KEYS:
            value, clear = data.get(key), data.get(f"clear_{key}")
            env = data.get(f"{key}_env", getattr(self.instance, f"{key}_env"))
            if value and clear:
                self.add_error(f"clear_{key}", "type a new key or clear the stored one, not both")
            elif value and env:
                self.add_error(
                    key, f"this provider reads {key}_env; a provider has one or the other"
                )
            elif clear:
                # the model's own check then sees it gone (an operator may switch to a variable)
                setattr(self.instance, f"{key}_encrypted", "")
        return data

    def key_change(self, key: str = "api_key") -> str | None:
        """What the service is to do with ``key``: a new one, "" to clear it, None to keep."""
        if self.cleaned_data.get(f"clear_{key}"):
            return ""
        return self.cleaned_data.get(key) or None


_KEY_FIELDS = tuple(f for key in catalog.PROVIDER_KEYS for f in (key, f"clear_{key}"))


@admin.register(Provider)
class ProviderAdmin(ServiceAdmin):
    subject = Subject.PROVIDER
    audit_name = "provider"
    service_arg = "provider"
    create_service = staticmethod(catalog.provider_create)
    update_service = staticmethod(catalog.provider_update)
    delete_service = staticmethod(catalog.provider_delete)
    form = ProviderForm
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}
    list_display = (
        "slug",
        "org",
        "kind",
        "base_url",
        "api_key_env",
        "stored_key",
        "credential_set",
        "stored_admin_key",
    )
    list_filter = ("kind", ("org", admin.RelatedOnlyFieldListFilter))
    search_fields = ("slug", "base_url", "publisher", "invoice_issuer")
    fields = (
        "org",
        "slug",
        "kind",
        "base_url",
        "api_key_env",
        "stored_key",
        "api_key",
        "clear_api_key",
        "api_version",
        "responses_api",
        "publisher",
        "invoice_issuer",
        "admin_base_url",
        "admin_api_key_env",
        "stored_admin_key",
        "admin_api_key",
        "clear_admin_api_key",
    )
    _NOT_ON_ADD = (  # nothing is stored yet
        "stored_key",
        "clear_api_key",
        "stored_admin_key",
        "clear_admin_api_key",
    )

    def scoped_queryset(self, request):
        return selectors.org_scoped(request.user, Provider.objects.select_related("org"))

    def get_fields(self, request, obj=None):
        fields = list(super().get_fields(request, obj))
        if obj is None:
            fields = [f for f in fields if f not in self._NOT_ON_ADD]
        return fields

    def get_readonly_fields(self, request, obj=None):
        fields = [*super().get_readonly_fields(request, obj), "stored_key", "stored_admin_key"]
        if obj is not None:
            fields.append("slug")  # models and config refer to it
        if not is_operator(request.user):
            # a server variable is the operators' to name (gateway/services/providers.py), and a
            # provider holding one is theirs to move; the org's own keys are its admins' to set
            fields += ["api_key_env", "admin_api_key_env"]
            if obj is not None and obj.api_key_env:
                fields += ["base_url", "kind"]
            if obj is not None and obj.admin_api_key_env:
                fields += ["base_url", "kind", "admin_base_url"]  # the admin key goes there
        return list(dict.fromkeys(fields))

    @method_decorator(sensitive_post_parameters(*catalog.PROVIDER_KEYS))
    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        return super().changeform_view(request, object_id, form_url, extra_context)

    def snapshot(self, obj) -> dict:
        return catalog.provider_snapshot(obj)  # never the token

    def save_model(self, request, obj, form, change):
        if not may_manage_object(self.access(request), self.subject, obj):
            raise PermissionDenied
        keys = {key: form.key_change(key) for key in catalog.PROVIDER_KEYS}
        if change:
            changes = {n: getattr(obj, n) for n in form.changed_data if n not in _KEY_FIELDS}
            changes.update({key: value for key, value in keys.items() if value is not None})
            if changes:
                fresh = Provider.objects.get(pk=obj.pk)  # the before snapshot is the stored row
                catalog.provider_update(provider=fresh, actor=request.user, **changes)
            return
        values = {n: getattr(obj, n) for n in form.fields if n not in _KEY_FIELDS}
        self.adopt(obj, catalog.provider_create(actor=request.user, **keys, **values))

    @admin.display(description="API key")
    def stored_key(self, obj) -> str:
        """Whether the provider holds its own key, with its last four characters at most."""
        return catalog.provider_key_label(obj)

    @admin.display(description="admin API key")
    def stored_admin_key(self, obj) -> str:
        """Whether the provider holds its own admin-API key, with its last four at most."""
        return catalog.provider_key_label(obj, "admin_api_key")

    @admin.display(boolean=True, description="credential set")
    def credential_set(self, obj) -> bool:
        """Whether the gateway would find a credential; its value is never displayed."""
        if obj.api_key_encrypted:
            try:
                return bool(secret_decrypt(obj.api_key_encrypted))
            except (SecretDecryptError, ImproperlyConfigured):
                return False
        return bool(provider_key_from_env(obj.api_key_env))


class PriceHistoryInline(admin.TabularInline):
    """Prices already recorded: read-only, because cost history must never be rewritten."""

    model = ModelPrice
    fields = (
        "effective_from",
        "input_usd_per_mtok",
        "output_usd_per_mtok",
        "cached_input_usd_per_mtok",
        "cache_write_usd_per_mtok",
        "batch_input_usd_per_mtok",
        "batch_output_usd_per_mtok",
        "source",
    )
    readonly_fields = fields
    extra = 0
    can_delete = False
    verbose_name_plural = "price history"

    def has_view_permission(self, request, obj=None) -> bool:
        return True  # the parent admin decides who sees the model

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class NewPriceFormSet(BaseInlineFormSet):
    """A new price starts now (the default) or later, and after every price already recorded; a
    new model is created with its first price (``catalog.model_create``)."""

    def clean(self):
        super().clean()
        model = self.instance
        if model.pk is None and not any(form.has_changed() for form in self.forms):
            raise ValidationError("a new model needs its first price")
        latest = model.prices.order_by("-effective_from").first() if model.pk else None
        for form in self.forms:
            if not form.has_changed() or "effective_from" not in form.changed_data:
                continue  # left at its default: effective when saved
            when = form.cleaned_data.get("effective_from")
            if when is None:
                continue
            if when < timezone.now():
                form.add_error("effective_from", "prices cannot be back-dated")
            elif latest is not None and when <= latest.effective_from:
                form.add_error("effective_from", "must be after the latest price")


class NewPriceInline(admin.TabularInline):
    """Add a price from a date on; the row before it keeps applying until then."""

    model = ModelPrice
    formset = NewPriceFormSet
    fields = (
        "effective_from",
        "input_usd_per_mtok",
        "output_usd_per_mtok",
        "cached_input_usd_per_mtok",
        "cache_write_usd_per_mtok",
        "batch_input_usd_per_mtok",
        "batch_output_usd_per_mtok",
    )
    extra = 1
    max_num = 1
    can_delete = False
    verbose_name = "new price"
    verbose_name_plural = "add a price"

    def get_queryset(self, request):
        return ModelPrice.objects.none()

    def _may_edit(self, request, obj) -> bool:
        if obj is None:
            return True  # the model's own add permission was already checked
        return may_manage_object(selectors.access_for_user(request.user), Subject.MODEL, obj)

    def has_view_permission(self, request, obj=None) -> bool:
        return self._may_edit(request, obj)

    def has_add_permission(self, request, obj=None) -> bool:
        return self._may_edit(request, obj)

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class NameFreeForm(forms.ModelForm):
    """Clients call models, groups and routers by name: one name means one thing per org."""

    def clean(self):
        data = super().clean()
        org = data.get("org") or (self.instance.org if self.instance.org_id else None)
        name = data.get("name") or self.instance.name
        if org is None or not name:
            return data
        for model in (LLMModel, ModelGroup, Router):
            rows = model.objects.filter(org=org, name=name)
            if isinstance(self.instance, model) and self.instance.pk:
                rows = rows.exclude(pk=self.instance.pk)
            if rows.exists():
                kind = model._meta.verbose_name
                self.add_error("name" if "name" in self.fields else None, f"already a {kind} name")
                break
        return data


@admin.register(LLMModel)
class LLMModelAdmin(ServiceAdmin):
    """Changes go through ``catalog.model_update``; a new model is created with the price of the
    "add a price" inline (``catalog.model_create``), once the inline is at hand (save_related).
    No catalog service deletes a model: that stays the admin's own, audited, delete."""

    subject = Subject.MODEL
    audit_name = "model"
    service_arg = "model"
    update_service = staticmethod(catalog.model_update)
    form = NameFreeForm
    list_display = (
        "name",
        "org",
        "provider",
        "upstream_model",
        "mode",
        "active",
        "input_price",
        "output_price",
    )
    list_filter = ("mode", "active", ("org", admin.RelatedOnlyFieldListFilter))
    search_fields = ("name", "upstream_model", "provider__slug")
    fields = (
        "org",
        "name",
        "provider",
        "upstream_model",
        "mode",
        "context_window",
        "max_output_tokens",
        "active",
    )
    inlines = [PriceHistoryInline, NewPriceInline]

    def scoped_queryset(self, request):
        return selectors.org_scoped(
            request.user, LLMModel.objects.select_related("org", "provider")
        )

    def get_readonly_fields(self, request, obj=None):
        fields = list(super().get_readonly_fields(request, obj))
        return [*fields, "name"] if obj is not None else fields  # budgets, keys use the name

    @admin.display(description="input $/Mtok")
    def input_price(self, obj):
        price = obj.price_at()
        return price.input_usd_per_mtok.normalize() if price else "-"

    @admin.display(description="output $/Mtok")
    def output_price(self, obj):
        price = obj.price_at()
        return price.output_usd_per_mtok.normalize() if price else "-"

    def save_model(self, request, obj, form, change):
        if change:
            super().save_model(request, obj, form, change)
        elif not may_manage_object(self.access(request), self.subject, obj):
            raise PermissionDenied

    def save_related(self, request, form, formsets, change):
        if change:
            super().save_related(request, form, formsets, change)
            return
        for formset in formsets:  # the admin's change message reads these
            formset.new_objects, formset.changed_objects, formset.deleted_objects = [], [], []
        new_prices = next(fs for fs in formsets if isinstance(fs, NewPriceFormSet))
        price_form = next(f for f in new_prices.forms if f.has_changed())  # the formset's rule
        values = {name: getattr(form.instance, name) for name in form.fields}
        model = catalog.model_create(
            actor=request.user, **values, **self._price(price_form), source="admin"
        )
        self.adopt(form.instance, model)
        new_prices.new_objects = list(model.prices.all())

    def delete_model(self, request, obj):
        ScopedAdmin.delete_model(self, request, obj)

    @staticmethod
    def _price(price_form) -> dict:
        data = price_form.cleaned_data
        return {
            "input_usd_per_mtok": data["input_usd_per_mtok"],
            "output_usd_per_mtok": data["output_usd_per_mtok"],
            "cached_input_usd_per_mtok": data.get("cached_input_usd_per_mtok"),
            "cache_write_usd_per_mtok": data.get("cache_write_usd_per_mtok"),
            "batch_input_usd_per_mtok": data.get("batch_input_usd_per_mtok"),
            "batch_output_usd_per_mtok": data.get("batch_output_usd_per_mtok"),
            "effective_from": (
                data["effective_from"] if "effective_from" in price_form.changed_data else None
            ),
        }

    def save_formset(self, request, form, formset, change):
        # The admin's change message reads these; existing prices are never changed.
        formset.new_objects, formset.changed_objects, formset.deleted_objects = [], [], []
        if not isinstance(formset, NewPriceFormSet):
            return None  # the price history is read-only
        for price_form in formset.forms:
            if not price_form.has_changed():
                continue
            price = catalog.model_price_add(
                model=form.instance, actor=request.user, **self._price(price_form), source="admin"
            )
            formset.new_objects.append(price)
        return None


class SameOrgFormSet(BaseInlineFormSet):
    """Members and fallbacks must be models of the group's own organisation."""

    def clean(self):
        super().clean()
        org_id = self.instance.org_id
        for form in self.forms:
            model = getattr(form, "cleaned_data", {}).get("model")
            if model is not None and org_id is not None and model.org_id != org_id:
                form.add_error("model", "belongs to another organisation")


class _GroupPartInline(admin.TabularInline):
    formset = SameOrgFormSet
    extra = 1

    def _may_edit(self, request, obj) -> bool:
        if obj is None:
            return True
        return may_manage_object(selectors.access_for_user(request.user), Subject.GROUP, obj)

    def has_view_permission(self, request, obj=None) -> bool:
        return True  # the parent admin decides who sees the group

    def has_add_permission(self, request, obj=None) -> bool:
        return self._may_edit(request, obj)

    def has_change_permission(self, request, obj=None) -> bool:
        return self._may_edit(request, obj)

    def has_delete_permission(self, request, obj=None) -> bool:
        return self._may_edit(request, obj)

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "model":
            access = selectors.access_for_user(request.user)
            orgs = [o for o in access.org_ids if access.is_org_admin(o)]
            kwargs["queryset"] = LLMModel.objects.filter(org_id__in=orgs).select_related("org")
        return super().formfield_for_foreignkey(db_field, request, **kwargs)


class GroupMemberInline(_GroupPartInline):
    model = GroupMember
    fields = ("model", "weight")


class GroupFallbackInline(_GroupPartInline):
    model = GroupFallback
    fields = ("model", "position")
    verbose_name_plural = "fallbacks (tried in position order after the members)"


@admin.register(ModelGroup)
class ModelGroupAdmin(ScopedAdmin):
    subject = Subject.GROUP
    audit_name = "group"
    form = NameFreeForm
    list_display = ("name", "org", "strategy", "member_names", "fallback_names")
    list_filter = ("strategy", ("org", admin.RelatedOnlyFieldListFilter))
    search_fields = ("name",)
    fields = ("org", "name", "strategy")
    inlines = [GroupMemberInline, GroupFallbackInline]

    def scoped_queryset(self, request):
        return selectors.org_scoped(
            request.user,
            ModelGroup.objects.select_related("org").prefetch_related(
                "members__model", "fallback_links__model"
            ),
        )

    @admin.display(description="members")
    def member_names(self, obj) -> str:
        return ", ".join(f"{m.model.name} x{m.weight}" for m in obj.members.all())

    @admin.display(description="fallbacks")
    def fallback_names(self, obj) -> str:
        return ", ".join(f.model.name for f in obj.fallback_links.all())

    def snapshot(self, obj) -> dict:
        data = model_snapshot(obj)
        data["members"] = sorted(
            [m.model.name, m.weight] for m in obj.members.select_related("model")
        )
        data["fallbacks"] = [f.model.name for f in obj.fallback_links.select_related("model")]
        return data


class RouterForm(NameFreeForm):
    class Meta:
        model = Router
        fields = ("org", "name", *catalog.ROUTER_EDITABLE)

    def clean(self):
        data = super().clean()
        org = data.get("org") or (self.instance.org if self.instance.org_id else None)
        for name in ("strong", "weak", "judge_model"):
            model = data.get(name)
            if org is not None and model is not None and model.org_id != org.pk:
                self.add_error(name, "belongs to another organisation")
        if data.get("strong") is not None and data.get("strong") == data.get("weak"):
            self.add_error("weak", "must differ from the strong model")
        return data


@admin.register(Router)
class RouterAdmin(ServiceAdmin):
    subject = Subject.ROUTER
    audit_name = "router"
    service_arg = "router"
    create_service = staticmethod(catalog.router_create)
    update_service = staticmethod(catalog.router_update)
    delete_service = staticmethod(catalog.router_delete)
    form = RouterForm
    list_display = ("name", "org", "strong", "weak", "scorer", "threshold", "shadow_rate")
    list_filter = ("scorer", ("org", admin.RelatedOnlyFieldListFilter))
    search_fields = ("name", "strong__name", "weak__name")

    def scoped_queryset(self, request):
        return selectors.org_scoped(
            request.user, Router.objects.select_related("org", "strong", "weak", "judge_model")
        )

    def get_readonly_fields(self, request, obj=None):
        fields = list(super().get_readonly_fields(request, obj))
        return [*fields, "name"] if obj is not None else fields  # clients call it by name


@admin.register(UsageEvent)
class UsageEventAdmin(ScopedAdmin):
    """The ledger, read-only: whole-org readers see their orgs' rows, others their teams'."""

    subject = Subject.MODEL  # unused: nothing here can be changed
    list_display = (
        "started_at",
        "request_id",
        "attempt",
        "org_slug",
        "team_slug",
        "feature",
        "model",
        "status",
        "prompt_tokens",
        "completion_tokens",
        "cost",
        "latency_ms",
        "shadow",
    )
    list_filter = ("status", "api", "streamed", "shadow", "estimated")
    search_fields = ("request_id", "feature", "endpoint", "model", "end_user")
    date_hierarchy = "started_at"
    show_full_result_count = False

    def scoped_queryset(self, request):
        access = selectors.access_for_user(request.user)
        whole = [o for o in access.org_ids if access.reads_whole_org(o)]
        return UsageEvent.objects.filter(
            Q(org_id__in=whole) | Q(team_id__in=list(access.team_roles))
        ).annotate(
            org_label=Subquery(Organization.objects.filter(pk=OuterRef("org_id")).values("slug")),
            team_label=Subquery(Team.objects.filter(pk=OuterRef("team_id")).values("slug")),
        )

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in UsageEvent._meta.fields]

    @admin.display(description="org", ordering="org_label")
    def org_slug(self, obj) -> str:
        return obj.org_label or str(obj.org_id)

    @admin.display(description="team", ordering="team_label")
    def team_slug(self, obj) -> str:
        return obj.team_label or "-"

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Batch)
class BatchAdmin(ScopedAdmin):
    """The Batch APIs' batches, read-only, scoped like the ledger: whole-org readers see their
    orgs' batches, others their teams'. The lines, prices and reservation stay out of view."""

    subject = Subject.MODEL  # unused: nothing here can be changed
    list_display = (
        "created_at",
        "batch_id",
        "api",
        "org",
        "team_label",
        "feature",
        "provider",
        "status",
        "reserved_usd",
        "cost_usd",
        "saved_usd",
        "metered_at",
    )
    list_filter = ("api", "status")
    search_fields = ("batch_id", "feature", "provider")
    date_hierarchy = "created_at"
    show_full_result_count = False
    fields = (
        "batch_id",
        "api",
        "org",
        "team_id",
        "key_id",
        "feature",
        "endpoint_label",
        "endpoint",
        "provider",
        "status",
        "request_counts",
        "metadata",
        "errors",
        "input_file_id",
        "output_file_id",
        "error_file_id",
        "reserved_usd",
        "cost_usd",
        "saved_usd",
        "input_tokens",
        "output_tokens",
        "created_at",
        "expires_at",
        "cancel_requested_at",
        "checked_at",
        "metered_at",
    )

    def scoped_queryset(self, request):
        access = selectors.access_for_user(request.user)
        whole = [o for o in access.org_ids if access.reads_whole_org(o)]
        return (
            Batch.objects.filter(Q(org_id__in=whole) | Q(team_id__in=list(access.team_roles)))
            .select_related("org")
            .defer("lines")
            .annotate(
                team_slug=Subquery(Team.objects.filter(pk=OuterRef("team_id")).values("slug"))
            )
        )

    def get_readonly_fields(self, request, obj=None):
        return self.fields

    @admin.display(description="team", ordering="team_slug")
    def team_label(self, obj) -> str:
        return getattr(obj, "team_slug", None) or "-"

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
