"""The demo organisation's past: ``days`` of traffic through the product's own write path.

The ledger rows (``provisioning.demo_traffic``, request ids ``demo-…``) are written with the
ledger writer's prepared INSERT (``gateway.ledger._insert``); then come the real jobs: the rollups
(``usage_rollup``), the router's shadow pairs with judge labels, a finished experiment, the
providers' own reports (the ledger's figures plus ~4 % the gateway never saw, source ``csv``)
and the alert job run at the end of every past day (thresholds, forecasts, the anomaly,
statements), its emails sent to Django's in-memory outbox rather than the console.

Reloading replaces the history: the demo org's ``demo-`` rows, pairs, demo reports and alerts
are deleted and generated again from the seed, so a second load gives the same figures, not
twice as many. Real traffic of the demo org (other request ids) is kept.
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from django.db import transaction
from django.test.utils import override_settings
from django.utils import timezone

from evaluation.models import EvalPair, Experiment
from gateway.ledger import _insert
from gateway.models import LLMModel, Provider, Router, UsageEvent
from gateway.pricing import Price
from gateway.services.routing import router_scorer_get
from provisioning.demo_traffic import (
    DEMO_PREFIX,
    EXPERIMENT,
    EXPERIMENT_SHARE,
    STREAMS,
    Context,
    Generator,
    plan_for,
    router_prompts,
)
from reports.invoices.figures import Figure
from reports.invoices.pull import figures_store
from reports.models import BudgetAlert, ProviderReportPull, ReportSource, TokenType
from reports.periods import local_date, local_midnight, org_zone
from reports.services.alerts import budget_alerts_evaluate
from reports.services.rollup import usage_rollup
from teams.models import Feature, Organization, Team, VirtualKey
from teams.services import key_mint

DEFAULT_SEED = 20
UNMETERED = Decimal("0.04")  # what the providers bill beyond the ledger: unmetered traffic
REPORT_DAYS = 60
REPORT_FILE = "demo-provider-report.csv"
KEY_NAME = "demo-history"
_BATCH = 5000
DAILY_ALERT_DAYS = 35  # the alert job runs for each of the last 35 days, every third before
_LOCAL_MAIL = "django.core.mail.backends.locmem.EmailBackend"


@dataclass(frozen=True)
class HistoryResult:
    days: int
    rows: int
    pairs: int
    alerts: int
    report_rows: int
    seconds: float

    def __str__(self) -> str:
        return (
            f"{self.days} days of demo history: {self.rows} ledger rows (request ids demo-…), "
            f"{self.pairs} labelled router pairs, {self.alerts} alerts, "
            f"{self.report_rows} provider report rows ({self.seconds:.1f} s)"
        )


def _price(model: LLMModel) -> Price:
    """The model's oldest catalog price: a freshly applied config dates its prices to the load,
    after the history it prices."""
    row = model.prices.order_by("effective_from").first()
    return Price.per_mtok(
        effective_from=row.effective_from,
        input_usd_per_mtok=row.input_usd_per_mtok,
        output_usd_per_mtok=row.output_usd_per_mtok,
        cached_input_usd_per_mtok=row.cached_input_usd_per_mtok,
        cache_write_usd_per_mtok=row.cache_write_usd_per_mtok,
        batch_input_usd_per_mtok=row.batch_input_usd_per_mtok,
        batch_output_usd_per_mtok=row.batch_output_usd_per_mtok,
    )


def _keys(org: Organization, teams: dict[str, Team]) -> dict[str, int]:
    """One ``demo-history`` key per team: the history's calls are attributed to it."""
    out = {}
    for slug, team in teams.items():
        key = VirtualKey.objects.filter(team=team, name=KEY_NAME, revoked_at__isnull=True).first()
        out[slug] = key.pk if key is not None else key_mint(team=team, name=KEY_NAME).key.pk
    return out


def _context(org: Organization) -> tuple[Context, Router]:
    team_slugs = {s.team for s in STREAMS}
    teams = {t.slug: t for t in Team.objects.filter(org=org, slug__in=team_slugs)}
    missing = team_slugs - set(teams)
    if missing:
        raise ValueError(f"the demo history needs the teams {sorted(missing)} (config/demo.yaml)")
    models = {m.name: m for m in LLMModel.objects.filter(org=org).select_related("provider")}
    router = Router.objects.select_related("strong", "weak").get(org=org, name="smart")
    scorer = router_scorer_get(router=router)
    ctx = Context(
        org_id=org.pk,
        team_ids={slug: t.pk for slug, t in teams.items()},
        key_ids=_keys(org, teams),
        models={n: (m.upstream_model or m.name, m.provider.slug) for n, m in models.items()},
        prices={n: _price(m) for n, m in models.items()},
        router=router.name,
        strong=router.strong.name,
        weak=router.weak.name,
        threshold=router.threshold,
        prompts=router_prompts(scorer.score),
    )
    return ctx, router


def _clear(org: Organization) -> None:
    UsageEvent.objects.filter(org_id=org.pk, request_id__startswith=DEMO_PREFIX).delete()
    EvalPair.objects.filter(org_id=org.pk, request_id__startswith=DEMO_PREFIX).delete()
    ProviderReportPull.objects.filter(org_id=org.pk, filename=REPORT_FILE).delete()
    # the alerts of a demo org are the history's (re-evaluated below from the new rows)
    BudgetAlert.objects.filter(org=org).delete()


def _pairs_store(org: Organization, router: Router, pairs: list[dict], *, now) -> int:
    expires = now + timedelta(days=max(1, router.pair_retention_days))
    EvalPair.objects.bulk_create(
        [
            EvalPair(
                org_id=org.pk,
                router=router,
                expires_at=expires,
                strong_model=router.strong.name,
                weak_model=router.weak.name,
                strong_answer="(demo) the strong model's answer",
                weak_answer="(demo) the weak model's answer",
                judge_model=router.strong.name,
                judged_at=p["created_at"],
                **p,
            )
            for p in pairs
        ],
        batch_size=1000,
    )
    return len(pairs)


def _experiment(org: Organization) -> None:
    """The finished A/B test whose arms the history's support/triage rows carry."""
    Experiment.objects.update_or_create(
        org=org,
        name=EXPERIMENT,
        defaults={
            "route": "gpt-4o",
            "candidate": LLMModel.objects.get(org=org, name="gpt-4o-mini"),
            "share": EXPERIMENT_SHARE,
            "feature": Feature.objects.get(team__org=org, team__slug="support", slug="triage"),
            "active": False,
        },
    )


def _reports(org: Organization, figures: dict, *, first, today) -> int:
    """The providers' own day × model × token figures: the ledger's plus the unmetered part."""
    start = max(first, today - timedelta(days=REPORT_DAYS))
    stored = 0
    for provider in Provider.objects.filter(org=org).order_by("slug"):
        rows = [
            Figure(
                day=day,
                model=model,
                token_type=token_type,
                tokens=int(tokens * (1 + UNMETERED)),
                cost_usd=(cost * (1 + UNMETERED)).quantize(Decimal("0.000001")),
                requests=int(requests * (1 + UNMETERED)),
            )
            for (slug, day, model, token_type), (tokens, cost, requests) in sorted(figures.items())
            if slug == provider.slug and start <= day < today
        ]
        if rows:
            figures_store(
                provider=provider,
                source=ReportSource.CSV,
                start=start,
                end=today,
                figures=rows,
                filename=REPORT_FILE,
            )
            stored += len(rows)
    return stored


def _tally(figures: dict, rows: list[dict]) -> None:
    for r in rows:
        if r["cache_hit"] or r["status"] != "ok":
            continue
        day = r["started_at"].astimezone(UTC).date()
        base = (r["provider"], day, r["upstream_model"])
        parts = (
            (TokenType.INPUT, r["prompt_tokens"] - r["cached_tokens"], r["input_cost"]),
            (TokenType.CACHED_INPUT, r["cached_tokens"], r["cached_input_cost"]),
            (TokenType.OUTPUT, r["completion_tokens"], r["output_cost"]),
        )
        for token_type, tokens, cost in parts:
            if tokens:
                tally = figures[(*base, token_type)]
                tally[0] += tokens
                tally[1] += cost
                tally[2] += 1 if token_type == TokenType.INPUT else 0


def demo_history_load(
    org: Organization, *, days: int = 90, seed: int = DEFAULT_SEED, now: datetime | None = None
) -> HistoryResult:
    """Replace the demo org's generated history with ``days`` past days (and today so far)."""
    began = time.monotonic()
    now = now or timezone.now()
    tz = org_zone(org)
    today = local_date(now, tz)
    plan = plan_for(today=today, days=days)
    with transaction.atomic():
        _clear(org)
        if days <= 0:
            usage_rollup()
            return HistoryResult(0, 0, 0, 0, 0, time.monotonic() - began)
        ctx, router = _context(org)
        gen = Generator(ctx, plan, seed=seed, now=now, tz=tz)
        figures: dict = defaultdict(lambda: [0, Decimal(0), 0])
        rows = 0
        for _, day_rows in gen.days():
            day_rows.sort(key=lambda r: r["started_at"])
            _tally(figures, day_rows)
            for i in range(0, len(day_rows), _BATCH):
                _insert(day_rows[i : i + _BATCH])
            rows += len(day_rows)
        usage_rollup(since=plan.first)
        pairs = _pairs_store(org, router, gen.pairs, now=now)
        _experiment(org)
    # the alert job as it ran at the end of each past day, then now (each run commits its own);
    # the providers' reports arrive before the last run only: reconciling them every day
    # would double the load's time for alerts that the last run records as well
    with override_settings(EMAIL_BACKEND=_LOCAL_MAIL):
        for i in range(days):
            day = plan.first + timedelta(days=i)
            if days - i > DAILY_ALERT_DAYS and i % 3 and day.day != 1:
                continue  # earlier on, every third day: a crossing is recorded a day or two late
            budget_alerts_evaluate(
                now=local_midnight(day + timedelta(days=1), tz) - timedelta(minutes=5)
            )
        report_rows = _reports(org, figures, first=plan.first, today=now.astimezone(UTC).date())
        budget_alerts_evaluate(now=now)
    alerts = BudgetAlert.objects.filter(org=org).count()
    return HistoryResult(days, rows, pairs, alerts, report_rows, time.monotonic() - began)
