"""Django admin for the control plane, scoped to the organisations a staff user belongs to.

Every admin here inherits ``ScopedAdmin``: its querysets come from ``teams.selectors`` (a row the
user may not read is not there: its change page answers 404), its write permissions come from
``teams.permissions`` (the same rules as the API), foreign-key choices are limited to what the
user may manage, and every change is recorded in the audit log, through the services where they
exist (``ServiceAdmin``: teams, features, budgets, the catalog's providers, models and routers;
members and keys call theirs too). Superusers act as ``admin`` of every organisation through
those same selectors.

Keys are minted, revoked and rotated through ``teams.services``; a secret is rendered once in the
response to the request that created it and is never stored anywhere it could be read again.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.validators import validate_email
from django.db import transaction
from django.db.models import Q, QuerySet
from django.http import Http404, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html

from gateway.models import LLMModel, Provider
from teams import cache_services, selectors, services
from teams.admin_forms import CommaSeparatedField, KeyForm
from teams.audit import audit_record, audited_delete
from teams.models import (
    AuditEntry,
    Budget,
    CachePolicy,
    Feature,
    KeySecret,
    Membership,
    Organization,
    Team,
    VirtualKey,
)
from teams.permissions import Subject, may_manage, may_manage_anywhere, may_manage_object


def _snapshot_value(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return [_snapshot_value(v) for v in value]
    return value


def model_snapshot(obj: Any) -> dict:
    """A JSON-safe snapshot of an object's own fields for the audit log (related objects by
    name). Nothing secret lives on the models an admin edits; digests are skipped anyway."""
    data = {}
    for f in obj._meta.concrete_fields:
        if f.primary_key or f.name in ("created_at", "updated_at", "digest"):
            continue
        if f.is_relation:
            related = getattr(obj, f.name)
            data[f.name] = str(related) if related is not None else None
        else:
            data[f.name] = _snapshot_value(f.value_from_object(obj))
    return data


class ScopedAdmin(admin.ModelAdmin):
    """The one admin base: tenant scoping, role permissions, scoped choices, audit."""

    subject: Subject
    audit_name: str = ""
    # when set, only whole-organisation readers (admin, finance) see the model (the audit log)
    whole_org_readers_only = False

    # --- scoping ------------------------------------------------------------------------
    def scoped_queryset(self, request) -> QuerySet:
        raise NotImplementedError

    def get_queryset(self, request):
        qs = self.scoped_queryset(request)
        ordering = self.get_ordering(request)
        return qs.order_by(*ordering) if ordering else qs

    def get_object(self, request, object_id, from_field=None):
        """Another tenant's object (or none) is a 404, not a redirect that confirms nothing."""
        obj = super().get_object(request, object_id, from_field)
        if obj is None:
            raise Http404("No such object.")
        return obj

    # --- permissions --------------------------------------------------------------------
    @staticmethod
    def access(request) -> selectors.Access:
        return selectors.access_for_user(request.user)

    def _staff_with_access(self, request) -> bool:
        user = request.user
        if not (user.is_active and user.is_staff):
            return False
        if user.is_superuser:
            return True  # even before any organisation exists
        access = self.access(request)
        if self.whole_org_readers_only:
            return any(access.reads_whole_org(o) for o in access.org_ids)
        return bool(access.org_ids)

    def has_module_permission(self, request) -> bool:
        return self._staff_with_access(request)

    def has_view_permission(self, request, obj=None) -> bool:
        # Which rows are visible is decided by get_queryset (and get_object's 404).
        return self._staff_with_access(request)

    def has_add_permission(self, request) -> bool:
        return self._staff_with_access(request) and may_manage_anywhere(
            self.access(request), self.subject
        )

    def has_change_permission(self, request, obj=None) -> bool:
        if not self._staff_with_access(request):
            return False
        access = self.access(request)
        if obj is None:
            return may_manage_anywhere(access, self.subject)
        return may_manage_object(access, self.subject, obj)

    def has_delete_permission(self, request, obj=None) -> bool:
        return self.has_change_permission(request, obj)

    # --- choices ------------------------------------------------------------------------
    def manageable(self, request) -> tuple[set[int], set[int]]:
        """(org ids, team ids) where this user may manage the admin's subject."""
        access = self.access(request)
        orgs = {
            o for o in access.org_ids if may_manage(access, self.subject, org_id=o, team_id=None)
        }
        teams = {
            t
            for t, o in access.team_orgs.items()
            if may_manage(access, self.subject, org_id=o, team_id=t)
        }
        return orgs, teams

    def choices_for(self, request, model) -> QuerySet | None:
        orgs, teams = self.manageable(request)
        access = self.access(request)
        reach = orgs | {access.team_orgs[t] for t in teams}
        if model is Organization:
            return Organization.objects.filter(id__in=orgs)
        if model is Team:
            return Team.objects.filter(Q(org_id__in=orgs) | Q(id__in=teams)).select_related("org")
        if model is Feature:
            return Feature.objects.filter(
                Q(team__org_id__in=orgs) | Q(team_id__in=teams)
            ).select_related("team", "team__org")
        if model is VirtualKey:
            return VirtualKey.objects.filter(Q(org_id__in=orgs) | Q(team_id__in=teams))
        if model in (Provider, LLMModel):
            return model.objects.filter(org_id__in=reach).select_related("org")
        return None

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        queryset = self.choices_for(request, db_field.related_model)
        if queryset is not None:
            kwargs["queryset"] = queryset
            if db_field.related_model is Organization and queryset.count() == 1:
                kwargs.setdefault("initial", queryset.first().pk)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def get_readonly_fields(self, request, obj=None):
        fields = list(super().get_readonly_fields(request, obj))
        if obj is not None and "org" in [f.name for f in self.model._meta.fields]:
            fields.append("org")  # objects never move between organisations
        return fields

    # --- audit --------------------------------------------------------------------------
    def snapshot(self, obj) -> dict:
        return model_snapshot(obj)

    def org_of(self, obj) -> Organization | None:
        return getattr(obj, "org", None)

    def save_model(self, request, obj, form, change):
        if not may_manage_object(self.access(request), self.subject, obj):
            raise PermissionDenied
        before = None
        if change:
            before = self.snapshot(type(obj).objects.get(pk=obj.pk))
        request._finops_audit_before = before
        super().save_model(request, obj, form, change)

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        obj = form.instance
        before = getattr(request, "_finops_audit_before", None)
        after = self.snapshot(obj)
        if change and before == after:
            return
        audit_record(
            actor=request.user,
            org=self.org_of(obj),
            action=f"{self.audit_name}.{'updated' if change else 'created'}",
            obj=obj,
            before=before,
            after=after,
        )

    def delete_model(self, request, obj):
        audited_delete(
            obj,
            actor=request.user,
            org=self.org_of(obj),
            action=f"{self.audit_name}.deleted",
            snapshot=self.snapshot,
        )

    def get_deleted_objects(self, objs, request):
        """Keys are never deleted on their own (they are revoked), but they go with their team
        or organisation, whose delete service decides whether that is allowed."""
        deleted, model_count, perms_needed, protected = super().get_deleted_objects(objs, request)
        perms_needed.discard(str(VirtualKey._meta.verbose_name))
        return deleted, model_count, perms_needed, protected

    @transaction.atomic
    def delete_queryset(self, request, queryset):
        # One audit entry per object (and each object's own delete rules), all or nothing.
        for obj in queryset:
            if not self.has_delete_permission(request, obj):
                raise PermissionDenied
            self.delete_model(request, obj)

    def delete_view(self, request, object_id, extra_context=None):
        try:
            return super().delete_view(request, object_id, extra_context)
        except ValidationError as exc:
            self.message_user(request, "; ".join(exc.messages), messages.ERROR)
            url = reverse(
                f"admin:{self.opts.app_label}_{self.opts.model_name}_change", args=[object_id]
            )
            return HttpResponseRedirect(url)

    def response_action(self, request, queryset):
        try:
            return super().response_action(request, queryset)
        except ValidationError as exc:
            self.message_user(request, "; ".join(exc.messages), messages.ERROR)
            return HttpResponseRedirect(request.get_full_path())


class ServiceAdmin(ScopedAdmin):
    """A ``ScopedAdmin`` whose writes go through the services (they validate, save and audit).
    The add form's fields are the create service's keyword arguments; the change form holds only
    what the update service accepts (the rest read-only) and the changed fields are passed, as
    the model's ``clean`` left them on the form's instance (a budget's team from its feature)."""

    service_arg: str  # the keyword the update and delete services take the object by
    create_service: Callable[..., Any]  # staticmethod(services.x_create) and so on
    update_service: Callable[..., Any]
    delete_service: Callable[..., Any]

    def save_model(self, request, obj, form, change):
        if not may_manage_object(self.access(request), self.subject, obj):
            raise PermissionDenied
        if change:
            changes = {name: getattr(obj, name) for name in form.changed_data}
            if changes:
                fresh = type(obj).objects.get(pk=obj.pk)  # the before snapshot is the stored row
                self.update_service(**{self.service_arg: fresh}, actor=request.user, **changes)
            return
        values = {name: getattr(obj, name) for name in form.fields}
        self.adopt(obj, self.create_service(actor=request.user, **values))

    @staticmethod
    def adopt(obj, saved) -> None:
        """The form's unsaved instance becomes the row the service created (messages, log)."""
        obj.pk = saved.pk
        obj.refresh_from_db()
        obj._state.adding = False

    def save_related(self, request, form, formsets, change):
        admin.ModelAdmin.save_related(self, request, form, formsets, change)  # audited already

    def delete_model(self, request, obj):
        self.delete_service(**{self.service_arg: obj}, actor=request.user)


# --- organisations, teams, members -----------------------------------------------------------


@admin.register(Organization)
class OrganizationAdmin(ScopedAdmin):
    subject = Subject.ORG
    audit_name = "org"
    list_display = ("slug", "name", "timezone", "currency", "created_at")
    search_fields = ("slug", "name")
    readonly_fields = ("currency", "created_at")

    def scoped_queryset(self, request):
        return selectors.org_list_for_user(request.user)

    def get_readonly_fields(self, request, obj=None):
        fields = list(super().get_readonly_fields(request, obj))
        return [*fields, "slug"] if obj is not None else fields

    def has_add_permission(self, request) -> bool:
        return request.user.is_active and request.user.is_superuser  # a platform operation

    def has_delete_permission(self, request, obj=None) -> bool:
        return request.user.is_active and request.user.is_superuser

    def org_of(self, obj):
        return obj

    def save_model(self, request, obj, form, change):
        if change:
            super().save_model(request, obj, form, change)
            return
        if not request.user.is_superuser:
            raise PermissionDenied
        request._finops_audit_before = None
        obj.save()

    def delete_model(self, request, obj):
        audited_delete(
            obj, actor=request.user, org=None, action="org.deleted", snapshot=self.snapshot
        )


def _limit_field(label: str, help_text: str) -> forms.IntegerField:
    # PositiveIntegerField accepts 0, which the gateway would read as "no limit": say so instead.
    return forms.IntegerField(
        label=label, min_value=1, required=False, help_text=f"{help_text} Empty: no limit."
    )


class TeamForm(forms.ModelForm):
    rpm_limit = _limit_field("RPM limit", "Requests per minute, all of the team's keys together.")
    tpm_limit = _limit_field("TPM limit", "Tokens per minute, all of the team's keys together.")
    max_parallel = _limit_field("Max parallel", "Calls in flight, all of the team's keys together.")

    class Meta:
        model = Team
        fields = ("org", "slug", "name", "rpm_limit", "tpm_limit", "max_parallel")


@admin.register(Team)
class TeamAdmin(ServiceAdmin):
    subject = Subject.TEAM
    audit_name = "team"
    service_arg = "team"
    create_service = staticmethod(services.team_create)
    update_service = staticmethod(services.team_update)
    delete_service = staticmethod(services.team_delete)
    form = TeamForm
    list_display = ("slug", "name", "org", "rpm_limit", "tpm_limit", "max_parallel", "created_at")
    list_filter = (("org", admin.RelatedOnlyFieldListFilter),)
    search_fields = ("slug", "name", "org__slug")
    prepopulated_fields = {"slug": ("name",)}

    def scoped_queryset(self, request):
        return selectors.team_list_for_user(request.user)

    def get_readonly_fields(self, request, obj=None):
        fields = list(super().get_readonly_fields(request, obj))
        return [*fields, "slug"] if obj is not None else fields  # keys and config refer to it

    def get_prepopulated_fields(self, request, obj=None):
        return {} if obj is not None else self.prepopulated_fields


class MembershipAddForm(forms.ModelForm):
    username = forms.CharField(
        label="User",
        max_length=150,
        help_text="Username or e-mail address; a new user is created without a password "
        "(they set one through the password-reset flow).",
    )

    class Meta:
        model = Membership
        fields = ("username", "org", "team", "role")

    def clean(self):
        data = super().clean()
        username, org, team = data.get("username"), data.get("org"), data.get("team")
        if username and org:
            existing = Membership.objects.filter(
                user__username__iexact=username.strip(), org=org, team=team
            )
            if existing.exists():
                where = f"team {team.slug}" if team else org.slug
                raise ValidationError(f"{username} already has a role in {where}")
        return data


@admin.register(Membership)
class MembershipAdmin(ScopedAdmin):
    subject = Subject.MEMBERSHIP
    audit_name = "member"
    list_display = ("user", "role", "org", "team", "created_at")
    list_filter = ("role", ("org", admin.RelatedOnlyFieldListFilter))
    search_fields = ("user__username", "user__email", "team__slug", "org__slug")
    list_select_related = ("user", "org", "team")

    def scoped_queryset(self, request):
        return selectors.membership_list_for_user(request.user)

    def get_form(self, request, obj=None, change=False, **kwargs):
        if obj is None:
            kwargs["form"] = MembershipAddForm
        return super().get_form(request, obj, change=change, **kwargs)

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["username", "org", "team", "role"]
        return ["user", "org", "team", "role", "created_at"]

    def get_readonly_fields(self, request, obj=None):
        return ["user", "org", "created_at"] if obj is not None else []

    def save_model(self, request, obj, form, change):
        if not may_manage_object(self.access(request), self.subject, obj):
            raise PermissionDenied
        data = form.cleaned_data
        if change:
            fresh = Membership.objects.get(pk=obj.pk)
            saved = services.membership_update(
                membership=fresh, actor=request.user, role=data["role"], team=data.get("team")
            )
        else:
            user = services.user_get_or_create(email_or_username=data["username"].strip())
            saved = services.membership_add(
                actor=request.user,
                org=data["org"],
                user=user,
                role=data["role"],
                team=data.get("team"),
            )
        obj.pk, obj.user = saved.pk, saved.user

    def save_related(self, request, form, formsets, change):
        pass  # the services above recorded the change

    def delete_model(self, request, obj):
        services.membership_remove(membership=obj, actor=request.user)


# --- features ----------------------------------------------------------------------------


class ClaimedFilter(admin.SimpleListFilter):
    title = "status"
    parameter_name = "status"

    def lookups(self, request, model_admin):
        return [("unclaimed", "Unclaimed (seen in traffic)"), ("claimed", "Claimed")]

    def queryset(self, request, queryset):
        if self.value() == "unclaimed":
            return queryset.filter(claimed=False)
        if self.value() == "claimed":
            return queryset.filter(claimed=True)
        return queryset


@admin.register(Feature)
class FeatureAdmin(ServiceAdmin):
    subject = Subject.FEATURE
    audit_name = "feature"
    service_arg = "feature"
    create_service = staticmethod(services.feature_create)
    update_service = staticmethod(services.feature_update)
    delete_service = staticmethod(services.feature_delete)
    list_display = ("slug", "name", "team", "claimed", "created_by_key", "created_at")
    list_filter = (ClaimedFilter, ("team", admin.RelatedOnlyFieldListFilter))
    search_fields = ("slug", "name", "team__slug")
    list_select_related = ("team", "team__org", "created_by_key")
    readonly_fields = ("created_by_key", "created_at")
    actions = ["claim"]

    def scoped_queryset(self, request):
        return selectors.feature_list_for_user(request.user)

    def get_readonly_fields(self, request, obj=None):
        fields = list(super().get_readonly_fields(request, obj))
        # the ledger attributes spend by slug, so a feature keeps its team and slug
        return [*fields, "team", "slug"] if obj is not None else fields

    def org_of(self, obj):
        return obj.team.org

    @admin.action(description="Claim selected features")
    def claim(self, request, queryset):
        access = self.access(request)
        claimed = 0
        for feature in queryset.filter(claimed=False):
            if not may_manage_object(access, self.subject, feature):
                raise PermissionDenied
            services.feature_update(feature=feature, actor=request.user, claimed=True)
            claimed += 1
        self.message_user(request, f"Claimed {claimed} feature(s).", messages.SUCCESS)


# --- keys --------------------------------------------------------------------------------


class KeySecretInline(admin.TabularInline):
    """The key's secrets by lookup prefix and validity only; never a digest."""

    model = KeySecret
    fields = ("hint", "created_at", "superseded_at", "valid_until")
    readonly_fields = fields
    extra = 0
    can_delete = False
    verbose_name = "secret"

    @admin.display(description="secret")
    def hint(self, obj) -> str:
        return str(obj)

    def has_view_permission(self, request, obj=None) -> bool:
        return True  # the parent admin decides who sees the key

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class KeyStatusFilter(admin.SimpleListFilter):
    title = "status"
    parameter_name = "status"

    def lookups(self, request, model_admin):
        return [("active", "Active"), ("revoked", "Revoked"), ("expired", "Expired")]

    def queryset(self, request, queryset):
        now = timezone.now()
        if self.value() == "active":
            return queryset.filter(revoked_at__isnull=True).filter(
                Q(expires_at__isnull=True) | Q(expires_at__gt=now)
            )
        if self.value() == "revoked":
            return queryset.filter(revoked_at__isnull=False)
        if self.value() == "expired":
            return queryset.filter(revoked_at__isnull=True, expires_at__lte=now)
        return queryset


@admin.register(VirtualKey)
class VirtualKeyAdmin(ScopedAdmin):
    subject = Subject.KEY
    audit_name = "key"
    form = KeyForm
    list_display = (
        "name",
        "hint",
        "team",
        "status",
        "default_feature",
        "expires_at",
        "last_used_at",
        "created_at",
    )
    list_filter = (
        KeyStatusFilter,
        ("org", admin.RelatedOnlyFieldListFilter),
        ("team", admin.RelatedOnlyFieldListFilter),
    )
    search_fields = ("name", "team__slug", "secrets__lookup")
    list_select_related = ("org", "team", "default_feature")
    inlines = [KeySecretInline]
    actions = ["revoke", "rotate"]

    def get_inlines(self, request, obj):
        return self.inlines if obj is not None else []

    def scoped_queryset(self, request):
        return selectors.key_list_for_user(request.user).distinct()

    def get_fields(self, request, obj=None):
        fields = list(KeyForm.Meta.fields)
        if obj is not None:
            fields += ["org", "revoked_at", "last_used_at", "created_by", "created_at"]
        return fields

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return []
        return ["team", "org", "revoked_at", "last_used_at", "created_by", "created_at"]

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # keys are revoked, not deleted: the audit trail and ledger keep their id

    @admin.display(description="key")
    def hint(self, obj) -> str:
        return obj.display_hint

    @admin.display(description="status")
    def status(self, obj) -> str:
        if obj.revoked_at:
            return "revoked"
        return "active" if obj.is_active() else "expired"

    def save_model(self, request, obj, form, change):
        access = self.access(request)
        data = form.cleaned_data
        if change:
            if not may_manage_object(access, self.subject, obj):
                raise PermissionDenied
            fresh = VirtualKey.objects.get(pk=obj.pk)
            changed = {f: data[f] for f in form.changed_data if f in KeyForm.Meta.fields}
            changed.pop("team", None)
            if changed:
                services.key_update(key=fresh, actor=request.user, **changed)
            return
        team = data["team"]
        if not may_manage(access, self.subject, org_id=team.org_id, team_id=team.pk):
            raise PermissionDenied
        minted = services.key_mint(
            team=team,
            name=data["name"],
            actor=request.user,
            default_feature=data.get("default_feature"),
            allowed_models=data.get("allowed_models") or [],
            fallbacks=data.get("fallbacks") or [],
            default_model=data.get("default_model") or "",
            rpm_limit=data.get("rpm_limit"),
            tpm_limit=data.get("tpm_limit"),
            max_parallel=data.get("max_parallel"),
            expires_at=data.get("expires_at"),
        )
        obj.pk, obj.org = minted.key.pk, minted.key.org
        obj._state.adding = False
        request._finops_minted = [minted]

    def save_related(self, request, form, formsets, change):
        # key_mint / key_update recorded the change; the secrets inline is read-only.
        admin.ModelAdmin.save_related(self, request, form, formsets, change)

    def response_add(self, request, obj, post_url_continue=None):
        minted = getattr(request, "_finops_minted", None)
        if not minted:
            return super().response_add(request, obj, post_url_continue)
        return self._secret_page(request, minted, title="Key minted")

    def _secret_page(self, request, minted, *, title: str):
        """The only place a secret is ever shown: in the response to the request that made it,
        not stored in a message, a session or a cache."""
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": title,
            "minted": [
                {
                    "key": m.key,
                    "secret": m.secret,
                    "url": reverse("admin:teams_virtualkey_change", args=[m.key.pk]),
                }
                for m in minted
            ],
        }
        response = TemplateResponse(request, "admin/teams/virtualkey/secret.html", context)
        response["Cache-Control"] = "no-store"
        return response

    @admin.action(description="Revoke selected keys")
    def revoke(self, request, queryset):
        access = self.access(request)
        revoked = 0
        for key in queryset.filter(revoked_at__isnull=True):
            if not may_manage_object(access, self.subject, key):
                raise PermissionDenied
            services.key_revoke(key=key, actor=request.user)
            revoked += 1
        self.message_user(request, f"Revoked {revoked} key(s).", messages.SUCCESS)

    @admin.action(description="Rotate selected keys (shows the new secrets once)")
    def rotate(self, request, queryset):
        access = self.access(request)
        keys = list(queryset)
        for key in keys:
            if not may_manage_object(access, self.subject, key):
                raise PermissionDenied
        if any(k.revoked_at for k in keys):
            self.message_user(request, "A revoked key cannot be rotated.", messages.ERROR)
            return None
        minted = [services.key_rotate(key=key, actor=request.user) for key in keys]
        if not minted:
            return None
        return self._secret_page(request, minted, title="Keys rotated")


# --- budgets -----------------------------------------------------------------------------


def _email(value: str) -> str:
    try:
        validate_email(value)
    except ValidationError as exc:
        raise ValueError(f"{value!r} is not an e-mail address") from exc
    return value


class BudgetForm(forms.ModelForm):
    alert_thresholds = CommaSeparatedField(
        item=int,
        label="Alert thresholds (%)",
        help_text="Comma-separated whole percentages, e.g. 50, 80, 100.",
    )
    recipients = CommaSeparatedField(item=_email, help_text="Comma-separated e-mail addresses.")

    class Meta:
        model = Budget
        fields = (
            "org",
            "scope",
            "team",
            "feature",
            "key",
            "period",
            "limit_usd",
            "action",
            "downgrade_to",
            "fail_open",
            "alert_thresholds",
            "recipients",
        )

    # Who owns what (scope, team, feature, key, downgrade target) is Budget.clean's, which the
    # form runs (full_clean) and so does every budget service.


@admin.register(Budget)
class BudgetAdmin(ServiceAdmin):
    subject = Subject.BUDGET
    audit_name = "budget"
    service_arg = "budget"
    create_service = staticmethod(services.budget_create)
    update_service = staticmethod(services.budget_update)
    delete_service = staticmethod(services.budget_delete)
    form = BudgetForm
    list_display = (
        "__str__",
        "org",
        "scope",
        "period",
        "limit_usd",
        "action",
        "fail_open",
        "updated_at",
    )
    list_filter = (
        "scope",
        "period",
        "action",
        "fail_open",
        ("org", admin.RelatedOnlyFieldListFilter),
    )
    search_fields = ("team__slug", "feature__slug", "key__name")

    def scoped_queryset(self, request):
        return selectors.budget_list_for_user(request.user)

    def get_readonly_fields(self, request, obj=None):
        fields = list(super().get_readonly_fields(request, obj))
        # what a budget limits is what it is (its counters are its own): budget_update keeps it
        return [*fields, "scope", "team", "feature", "key"] if obj is not None else fields


# --- response cache policies -----------------------------------------------------------


@admin.register(CachePolicy)
class CachePolicyAdmin(ServiceAdmin):
    subject = Subject.CACHE
    audit_name = "cache_policy"
    service_arg = "policy"
    create_service = staticmethod(cache_services.cache_policy_create)
    update_service = staticmethod(cache_services.cache_policy_update)
    delete_service = staticmethod(cache_services.cache_policy_delete)
    fields = ("org", "scope", "team", "feature", "key", "model_name", *cache_services.EDITABLE)
    list_display = ("__str__", "org", "scope", "enabled", "ttl_seconds", "tools", "updated_at")
    list_filter = ("scope", "enabled", "tools", ("org", admin.RelatedOnlyFieldListFilter))
    search_fields = ("team__slug", "feature__slug", "key__name", "model_name")

    def scoped_queryset(self, request):
        return selectors.cache_policy_list_for_user(request.user)

    def get_readonly_fields(self, request, obj=None):
        fields = list(super().get_readonly_fields(request, obj))
        # a policy's target is what it is: cache_policy_update changes what it allows only
        return [*fields, "scope", "team", "feature", "key", "model_name"] if obj else fields


# --- audit log ---------------------------------------------------------------------------


@admin.register(AuditEntry)
class AuditEntryAdmin(ScopedAdmin):
    subject = Subject.AUDIT
    whole_org_readers_only = True
    list_display = ("created_at", "org", "actor_label", "action", "object_type", "object_repr")
    list_filter = ("action", "object_type", ("org", admin.RelatedOnlyFieldListFilter))
    search_fields = ("actor_label", "action", "object_repr", "object_id")
    date_hierarchy = "created_at"
    fields = (
        "created_at",
        "org",
        "actor_label",
        "action",
        "object_type",
        "object_id",
        "object_repr",
        "before_json",
        "after_json",
    )
    readonly_fields = fields

    def scoped_queryset(self, request):
        return selectors.audit_list_for_user(request.user)

    @admin.display(description="before")
    def before_json(self, obj):
        return format_html("<pre>{}</pre>", json.dumps(obj.before, indent=2, sort_keys=True))

    @admin.display(description="after")
    def after_json(self, obj):
        return format_html("<pre>{}</pre>", json.dumps(obj.after, indent=2, sort_keys=True))

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
