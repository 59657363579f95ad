"""Invoice reconciliation's reads: the providers (and their imports and reported figures) a
user may reconcile. The invoice is the organisation's, so only its admins and finance people
read it (a team lead does not: provider totals reveal every team's spend)."""

from __future__ import annotations

from django.db.models import QuerySet

from gateway.models import Provider
from reports.models import ProviderReportPull, ReconciliationPolicy
from teams.selectors import access_for_user


def _whole_org_ids(user) -> list[int]:
    access = access_for_user(user)
    return [o for o in access.org_roles if access.reads_whole_org(o)]


def reconciliation_provider_list_for_user(user) -> QuerySet[Provider]:
    return Provider.objects.filter(org_id__in=_whole_org_ids(user)).select_related("org")


def report_pull_list_for_user(user) -> QuerySet[ProviderReportPull]:
    return ProviderReportPull.objects.filter(org_id__in=_whole_org_ids(user)).select_related(
        "provider", "org"
    )


def reconciliation_policy_list_for_user(user) -> QuerySet[ReconciliationPolicy]:
    return ReconciliationPolicy.objects.filter(org_id__in=_whole_org_ids(user))
