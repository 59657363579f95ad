"""Invoice reconciliation benchmark (PostgreSQL): a month of ledger rows against the providers'
own reports, as the "Invoice vs ledger" page and ``GET /api/v1/reconciliation/`` read it.

Seeds the ledger like ``bench/rollup.py`` (COPY into a throwaway database), imports one report
per provider whose figures are the ledger's day x model x token type sums plus 5 % traffic that
bypassed the gateway (and one model billed 10 % above the catalog), then times the
reconciliation by day x model, by model, and the price suggestions, and checks the split adds
up to the difference exactly.

    .venv/bin/python bench/reconcile.py [--rows 500000] [--days 30] [--keep]
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from rollup import MODELS, _with_db, create_database, drop_database, seed, world  # noqa: E402

MTOK = Decimal(1_000_000)


def _provider_figures(provider, start, end):
    """Per day x model x token type: the ledger's tokens and cost, plus 5 % bypass traffic; the
    first model billed 10 % above its catalog price."""
    from django.db.models import Sum
    from django.db.models.functions import TruncDate

    from gateway.models import UsageEvent
    from reports.invoices.figures import Figure

    rows = (
        UsageEvent.objects.filter(
            org_id=provider.org_id, provider=provider.slug, started_at__gte=start, started_at__lt=end
        )
        .annotate(day=TruncDate("started_at", tzinfo=UTC))
        .values("day", "upstream_model")
        .annotate(p=Sum("prompt_tokens"), o=Sum("completion_tokens"), ic=Sum("input_cost"),
                  oc=Sum("output_cost"))
    )  # fmt: skip
    drifting = next(m for m, p, _, _ in MODELS if p == provider.slug)
    out = []
    for r in rows:
        factor = Decimal("1.10") if r["upstream_model"] == drifting else Decimal(1)
        for kind, tokens, cost in (("input", r["p"], r["ic"]), ("output", r["o"], r["oc"])):
            tokens = int(tokens * 105 // 100)
            cost = Decimal(cost) * Decimal("1.05") * factor
            out.append(Figure(r["day"], model=r["upstream_model"], token_type=kind, tokens=tokens,
                              cost_usd=cost.quantize(Decimal("1e-9")), account="proj_main"))  # fmt: skip
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=500_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    base = os.environ.get("DATABASE_URL") or "postgres://postgres@127.0.0.1:5432/postgres"
    if urlsplit(base).scheme not in ("postgres", "postgresql", "pgsql"):
        sys.exit("bench/reconcile.py needs PostgreSQL: set DATABASE_URL=postgres://…")
    name = f"finops_bench_reconcile_{os.getpid()}"
    create_database(base, name)
    os.environ["DATABASE_URL"] = _with_db(base, name)
    os.environ.setdefault("FINOPS_VAR_DIR", tempfile.mkdtemp(prefix="finops-bench-"))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "finops.settings")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    try:
        import django

        django.setup()
        from django.core.management import call_command
        from django.db import connection

        from gateway.models import LLMModel, ModelPrice, Provider
        from reports.invoices.drift import price_suggestions
        from reports.invoices.pull import figures_store
        from reports.invoices.reconcile import org_reconcile, totals

        call_command("migrate", verbosity=0)
        rng = random.Random(1)
        orgs = world()
        now = datetime.now(UTC).replace(microsecond=0)
        start = now - timedelta(days=args.days)
        seconds = seed(args.rows, orgs=orgs, start=start, span=timedelta(days=args.days), rng=rng)
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")
        org_id = orgs[0][0]
        providers = [
            Provider.objects.create(
                org_id=org_id, slug=slug, kind=kind, base_url=f"https://{slug}.example.com/v1"
            )
            for slug, kind in (("openai", "openai"), ("anthropic", "anthropic"), ("azure", "azure"))
        ]
        by_slug = {p.slug: p for p in providers}
        for model, slug, price_in, price_out in MODELS:  # the catalog the suggestions name
            m = LLMModel.objects.create(org_id=org_id, provider=by_slug[slug], name=model,
                                        upstream_model=model)  # fmt: skip
            ModelPrice.objects.create(model=m, effective_from=start - timedelta(days=1),
                                      input_usd_per_mtok=Decimal(price_in),
                                      output_usd_per_mtok=Decimal(price_out))  # fmt: skip
        first, end_day = start.date(), now.date() + timedelta(days=1)
        lo = datetime.combine(first, datetime.min.time(), UTC)
        hi = datetime.combine(end_day, datetime.min.time(), UTC)
        figures = 0
        for p in providers:
            made = _provider_figures(p, lo, hi)
            figures += len(made)
            figures_store(provider=p, source="csv", start=first, end=end_day, figures=made)
        print(f"seeded {args.rows:,} ledger rows over {args.days} days in {seconds:.1f} s; "
              f"{figures:,} provider figures on {len(providers)} providers")  # fmt: skip
        timings = defaultdict(list)
        for _ in range(3):
            for group in (("day", "model"), ("model",)):
                began = time.perf_counter()
                rows = org_reconcile(providers, first, end_day, group)
                timings[",".join(group)].append(time.perf_counter() - began)
            began = time.perf_counter()
            suggestions = [s for p in providers for s in price_suggestions(p, first, end_day)]
            timings["suggestions"].append(time.perf_counter() - began)
        t = totals(rows)
        split = t["unmetered"] - t["over_metered"] + t["price_drift"] + t["matched"]
        for label, values in timings.items():
            print(f"reconcile by {label:12s}: best {min(values) * 1000:7.1f} ms of {len(values)}")
        print(f"provider {t['provider_cost']:.6f} USD, ledger {t['ledger_cost']:.6f} USD, "
              f"unmetered {t['unmetered']:.6f}, price drift {t['price_drift']:.6f}; "
              f"split adds up: {'yes' if split == t['difference'] else 'NO'}; "
              f"{len(suggestions)} price suggestion(s)")  # fmt: skip
    finally:
        if not args.keep:
            from django.db import connections

            connections.close_all()
            drop_database(base, name)


if __name__ == "__main__":
    main()
