"""Evaluation in the admin: reviewers label pairs (the third source of labels next to the LLM
judge and the calling service's feedback); experiments are managed by org admins."""

from __future__ import annotations

from django.contrib import admin, messages

from evaluation.models import EvalPair, Experiment
from evaluation.selectors import experiment_list_for_user, pair_list_for_user
from evaluation.services.pairs import pair_review
from teams.admin import ScopedAdmin
from teams.permissions import Subject, may_manage_object


@admin.register(EvalPair)
class EvalPairAdmin(ScopedAdmin):
    subject = Subject.PAIR
    list_display = (
        "request_id",
        "router",
        "served",
        "strong_model",
        "weak_model",
        "judge_strong",
        "judge_weak",
        "feedback_score",
        "review_needs_strong",
        "created_at",
    )
    list_filter = ("served", "review_needs_strong")
    search_fields = ("request_id",)
    readonly_fields = [
        f.name for f in EvalPair._meta.fields if f.name not in ("review_needs_strong",)
    ]
    actions = ("mark_needs_strong", "mark_weak_enough", "clear_review")

    def scoped_queryset(self, request):
        return pair_list_for_user(request.user).select_related("router")

    def has_add_permission(self, request) -> bool:
        return False  # pairs come from shadow traffic only

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # they expire by retention

    def save_model(self, request, obj, form, change):
        if "review_needs_strong" in form.changed_data:
            fresh = EvalPair.objects.get(pk=obj.pk)
            pair_review(pair=fresh, needs_strong=obj.review_needs_strong, actor=request.user)

    def _review(self, request, queryset, verdict):
        access = self.access(request)
        done = 0
        for pair in queryset:
            if may_manage_object(access, self.subject, pair):
                pair_review(pair=pair, needs_strong=verdict, actor=request.user)
                done += 1
        self.message_user(request, f"{done} pair(s) labelled.", messages.SUCCESS)

    @admin.action(description="Label: needed the strong model")
    def mark_needs_strong(self, request, queryset):
        self._review(request, queryset, True)

    @admin.action(description="Label: the weak model was enough")
    def mark_weak_enough(self, request, queryset):
        self._review(request, queryset, False)

    @admin.action(description="Clear the reviewer's label")
    def clear_review(self, request, queryset):
        self._review(request, queryset, None)


@admin.register(Experiment)
class ExperimentAdmin(ScopedAdmin):
    subject = Subject.ROUTER
    list_display = ("name", "org", "route", "candidate", "share", "key", "feature", "active")
    list_filter = ("active",)

    def scoped_queryset(self, request):
        return experiment_list_for_user(request.user).select_related("org", "candidate")
