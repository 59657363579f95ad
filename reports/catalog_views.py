"""The model catalog page: prices side by side with observed latency, throughput, errors and
volume, and a re-price of one team's recent traffic on another model."""

from __future__ import annotations

from django import forms
from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import get_object_or_404, render

from finops.ids import id_parse
from reports.services.catalog_page import (
    WINDOW_DAYS,
    catalog_chart,
    catalog_models,
    catalog_table,
    current_price,
    model_stats,
    per_mtok_label,
    reprice_table,
    reprice_team,
    window_days,
)
from reports.tables import csv_or_none
from teams.selectors import org_list_for_user, team_list_for_user


class RepriceForm(forms.Form):
    team = forms.ModelChoiceField(queryset=None, empty_label="Choose a team")
    target = forms.ChoiceField(label="Target model", choices=())

    def __init__(self, *args, teams, targets: list[str], **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["team"].queryset = teams
        self.fields["target"].choices = [("", "Choose a model")] + [(n, n) for n in targets]


@login_required
def catalog(request, org_id: int):
    """Every role of the organisation may read the catalog; another org is a 404. Traffic
    figures cover what the viewer may read (whole org for admin/finance, own teams otherwise)."""
    user = request.user
    org = get_object_or_404(org_list_for_user(user), pk=org_id)
    first, last = window_days(org)
    models = catalog_models(user, org=org)
    stats = model_stats(user, org=org, first=first, last=last)
    tables = [catalog_table(models, stats)]

    teams = team_list_for_user(user).filter(org=org).order_by("slug")
    priced = {m.name: m for m in models if current_price(m) is not None}
    reprice = None
    form = RepriceForm(teams=teams, targets=sorted(priced))
    if "team" in request.GET or "target" in request.GET:
        team_id = request.GET.get("team", "")
        if team_id and not ((pk := id_parse(team_id)) and teams.filter(pk=pk).exists()):
            raise Http404("No such team.")  # another team or org: not a form error, a 404
        form = RepriceForm(request.GET, teams=teams, targets=sorted(priced))
        if form.is_valid():
            reprice = reprice_team(
                user,
                team=form.cleaned_data["team"],
                target=priced[form.cleaned_data["target"]],
                first=first,
                last=last,
            )
            tables.append(reprice_table(reprice))

    download = csv_or_none(request, tables, f"{org.slug}-catalog")
    if download is not None:
        return download
    return render(
        request,
        "reports/catalog.html",
        {
            "org": org,
            "first": first,
            "last": last,
            "window_days": WINDOW_DAYS,
            "catalog": tables[0],
            "chart": catalog_chart(models, stats),
            "form": form,
            "reprice": reprice,
            "reprice_table": tables[1] if reprice is not None else None,
            "target_prices": per_mtok_label(reprice.price) if reprice is not None else "",
        },
    )
