"""The model catalog page: prices side by side with observed latency, throughput, errors and
volume, and a re-price of one team's recent traffic on another model; its tables (each a CSV
download) and its price-vs-latency chart. The figures are ``reports.pages.catalog_data``.
"""

from __future__ import annotations

from django import forms
from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import get_object_or_404, render

from finops.ids import id_parse
from finops.money import usd_exact
from gateway.models import LLMModel, ModelPrice
from reports.pages.catalog_data import (
    WINDOW_DAYS,
    ModelStats,
    Reprice,
    catalog_models,
    current_price,
    model_stats,
    per_mtok,
    per_mtok_label,
    reprice_team,
    window_days,
)
from reports.tables import Column, Table, csv_or_none
from teams.selectors import org_list_for_user, team_list_for_user

# --- tables --------------------------------------------------------------------------------------


CATALOG_COLUMNS = (
    Column("model", "Model"),
    Column("provider", "Provider"),
    Column("mode", "Mode"),
    Column("input", "Input $/Mtok", numeric=True, kind="per_mtok"),
    Column("cached_input", "Cached input $/Mtok", numeric=True, kind="per_mtok"),
    Column("cache_write", "Cache write $/Mtok", numeric=True, kind="per_mtok"),
    Column("output", "Output $/Mtok", numeric=True, kind="per_mtok"),
    Column("context_window", "Context window", numeric=True),
    Column("max_output", "Max output", numeric=True),
    Column("p50_ms", "Latency p50 ms", numeric=True),
    Column("p95_ms", "Latency p95 ms", numeric=True),
    Column("throughput", "Output tok/s", numeric=True),
    Column("error_rate", "Error rate %", numeric=True, kind="pct"),
    Column("requests", "Requests", numeric=True),
    Column("tokens", "Tokens", numeric=True),
    Column("spend", "Spend USD", numeric=True, kind="usd"),
)


def _rounded(value: float | None) -> str:
    return "" if value is None else f"{value:.1f}"


def _or_blank(value) -> str:
    return "" if value is None else str(value)


def catalog_table(models: list[LLMModel], stats: dict[str, ModelStats]) -> Table:
    """One row per catalog model (prices as billed: a missing cache price is the input rate),
    plus a row per model name seen in traffic but no longer in the catalog."""
    rows = []
    for model in models:
        price = current_price(model)
        rows.append(_catalog_row(model.name, stats.get(model.name), model=model, price=price))
    known = {m.name for m in models}
    for name in sorted(set(stats) - known):
        rows.append(_catalog_row(name or "(unknown)", stats[name], model=None, price=None))
    return Table(
        name="models",
        title="Models, prices and observed traffic",
        columns=CATALOG_COLUMNS,
        rows=rows,
    )


def _catalog_row(
    name: str, s: ModelStats | None, *, model: LLMModel | None, price: ModelPrice | None
) -> dict:
    row: dict = {"model": name}
    if model is not None:
        row.update(
            provider=model.provider.slug,
            mode=model.mode,
            context_window=_or_blank(model.context_window),
            max_output=_or_blank(model.max_output_tokens),
        )
    else:
        row["provider"] = "not in catalog"
    if price is not None:
        row.update(
            input=per_mtok(price.input_usd_per_mtok),
            cached_input=per_mtok(
                price.cached_input_usd_per_mtok
                if price.cached_input_usd_per_mtok is not None
                else price.input_usd_per_mtok
            ),
            cache_write=per_mtok(
                price.cache_write_usd_per_mtok
                if price.cache_write_usd_per_mtok is not None
                else price.input_usd_per_mtok
            ),
            output=per_mtok(price.output_usd_per_mtok),
        )
    if s is not None:
        row.update(
            p50_ms=_rounded(s.p50_ms),
            p95_ms=_rounded(s.p95_ms),
            throughput=_or_blank(s.throughput),
            error_rate=_or_blank(s.error_rate),
            requests=s.requests,
            tokens=s.prompt_tokens + s.completion_tokens,
            spend=usd_exact(s.cost),
        )
    return row


def catalog_chart(models: list[LLMModel], stats: dict[str, ModelStats]) -> list[dict]:
    """Points for the price-vs-latency chart: blended price ($/Mtok, input+output) vs p50.
    Prices are sent as strings; the chart script turns them into numbers for plotting only."""
    points = []
    for model in models:
        price = current_price(model)
        s = stats.get(model.name)
        if price is None or s is None or s.p50_ms is None:
            continue
        points.append(
            {
                "model": model.name,
                "input": per_mtok(price.input_usd_per_mtok),
                "output": per_mtok(price.output_usd_per_mtok),
                "p50_ms": round(s.p50_ms, 1),
                "p95_ms": round(s.p95_ms or 0, 1),
                "requests": s.requests,
            }
        )
    return points


REPRICE_COLUMNS = (
    Column("source", "Source model"),
    Column("prompt_tokens", "Prompt tokens", numeric=True),
    Column("cached_tokens", "Cached tokens", numeric=True),
    Column("cache_write_tokens", "Cache-write tokens", numeric=True),
    Column("completion_tokens", "Completion tokens", numeric=True),
    Column("actual", "Actual USD", numeric=True, kind="usd"),
    Column("repriced", "On target USD", numeric=True, kind="usd"),
    Column("difference", "Difference USD", numeric=True, kind="usd"),
)


def reprice_table(reprice: Reprice) -> Table:
    rows = [
        {
            "source": r.source,
            "prompt_tokens": r.prompt_tokens,
            "cached_tokens": r.cached_tokens,
            "cache_write_tokens": r.cache_write_tokens,
            "completion_tokens": r.completion_tokens,
            "actual": usd_exact(r.actual),
            "repriced": usd_exact(r.repriced),
            "difference": usd_exact(r.difference),
        }
        for r in reprice.rows
    ]
    if reprice.rows:
        rows.append(
            {
                "source": "Total",
                "prompt_tokens": sum(r.prompt_tokens for r in reprice.rows),
                "cached_tokens": sum(r.cached_tokens for r in reprice.rows),
                "cache_write_tokens": sum(r.cache_write_tokens for r in reprice.rows),
                "completion_tokens": sum(r.completion_tokens for r in reprice.rows),
                "actual": usd_exact(reprice.actual),
                "repriced": usd_exact(reprice.repriced),
                "difference": usd_exact(reprice.difference),
            }
        )
    return Table(
        name="reprice",
        title=f"Team {reprice.team.slug} on {reprice.target.name}",
        columns=REPRICE_COLUMNS,
        rows=rows,
    )


# --- the page ------------------------------------------------------------------------------------


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
