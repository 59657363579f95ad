"""Rollup benchmark (PostgreSQL): a full rollup of 1,000,000 ledger rows, then an incremental
minute with 10,000 new events. Targets: under 30 s and under 2 s.

Creates a throwaway database next to ``DATABASE_URL`` (default
``postgres://postgres@127.0.0.1:5432/postgres``), migrates it, seeds the ledger with COPY,
times ``usage_rollup()`` twice, checks the rollups against the ledger and drops the database.

    .venv/bin/python bench/rollup.py [--rows 1000000] [--new 10000] [--days 30] [--keep]

The seeded traffic: 3 organisations (UTC, Asia/Kolkata, America/New_York), 24 teams, 2 keys and
3 features per team, 4 endpoints per feature, 6 models on 3 providers, ~2,000 end users (half
the calls carry none), 10% shadow calls, 5% failures, a second attempt on 3% of requests.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

MODELS = [  # name, provider, USD per Mtok in, out
    ("gpt-4o", "openai", "2.50", "10.00"),
    ("gpt-4o-mini", "openai", "0.15", "0.60"),
    ("claude-sonnet", "anthropic", "3.00", "15.00"),
    ("claude-haiku", "anthropic", "0.80", "4.00"),
    ("azure-gpt-4o", "azure", "2.50", "10.00"),
    ("text-embedding-3-small", "openai", "0.02", "0"),
]
MTOK = Decimal(1_000_000)


def _with_db(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, ""))


def create_database(base_url: str, name: str) -> None:
    import psycopg

    with psycopg.connect(_with_db(base_url, "postgres"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')


def drop_database(base_url: str, name: str) -> None:
    import psycopg

    with psycopg.connect(_with_db(base_url, "postgres"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def world():
    """Orgs, teams, keys (ids only matter to the ledger) created through the ORM."""
    from teams.models import Organization, Team, VirtualKey

    out = []
    for slug, tz, n_teams in (
        ("bench-a", "UTC", 16),
        ("bench-b", "Asia/Kolkata", 5),
        ("bench-c", "America/New_York", 3),
    ):
        org = Organization.objects.create(slug=slug, name=slug, timezone=tz)
        teams = []
        for t in range(n_teams):
            team = Team.objects.create(org=org, slug=f"team{t}", name=f"Team {t}")
            keys = [
                VirtualKey.objects.create(org=org, team=team, name=f"{team.slug}-svc{k}").pk
                for k in range(2)
            ]
            features = [f"{team.slug}-f{i}" for i in range(3)]
            teams.append((team.pk, keys, features))
        out.append((org.pk, n_teams, teams))
    return out


def ledger_columns():
    from gateway.models import UsageEvent

    return [f for f in UsageEvent._meta.concrete_fields if not f.primary_key]


def seed(n: int, *, orgs, start: datetime, span: timedelta, rng: random.Random) -> float:
    """COPY ``n`` ledger rows started within ``span`` from ``start``; returns seconds."""
    from django.db import connection

    from gateway.models import UsageEvent

    fields = ledger_columns()
    names = [f.column for f in fields]
    defaults = {f.attname: f.get_default() for f in fields}
    weights = [n_teams for _, n_teams, _ in orgs]
    users = [f"user{i}" for i in range(2000)]
    began = time.monotonic()
    table = connection.ops.quote_name(UsageEvent._meta.db_table)
    cols = ", ".join(connection.ops.quote_name(c) for c in names)
    with connection.cursor() as cursor:
        raw = cursor.cursor  # psycopg's own cursor, for COPY
        with raw.copy(f"COPY {table} ({cols}) FROM STDIN") as copy:
            for _ in range(n):
                org_id, _n, teams = rng.choices(orgs, weights=weights)[0]
                team_id, keys, features = rng.choice(teams)
                feature = rng.choice(features)
                model, provider, price_in, price_out = rng.choice(MODELS)
                prompt = rng.randint(20, 4000)
                completion = rng.randint(0, 800)
                ok = rng.random() > 0.05
                input_cost = Decimal(price_in) * prompt / MTOK
                output_cost = Decimal(price_out) * completion / MTOK if ok else Decimal(0)
                started = start + timedelta(seconds=rng.random() * span.total_seconds())
                latency = int(rng.lognormvariate(6.3, 0.8))
                row = dict(defaults)
                row.update(
                    event_id=uuid.uuid4(),
                    request_id=uuid.uuid4().hex,
                    attempt=2 if rng.random() < 0.03 else 1,
                    started_at=started,
                    ended_at=started + timedelta(milliseconds=latency),
                    org_id=org_id,
                    team_id=team_id,
                    key_id=rng.choice(keys),
                    feature=feature,
                    endpoint=f"/{feature}/e{rng.randint(0, 3)}",
                    end_user=rng.choice(users) if rng.random() < 0.5 else "",
                    model=model,
                    upstream_model=model,
                    requested_model=model,
                    provider=provider,
                    status="ok" if ok else "error",
                    http_status=200 if ok else 503,
                    prompt_tokens=prompt,
                    completion_tokens=completion,
                    input_cost=input_cost,
                    output_cost=output_cost,
                    cost=input_cost + output_cost,
                    latency_ms=latency,
                    shadow=rng.random() < 0.10,
                    inserted_at=started + timedelta(milliseconds=latency + 300),
                )
                copy.write_row([row[f.attname] for f in fields])
    return time.monotonic() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--new", type=int, default=10_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    args = parser.parse_args()

    base = os.environ.get("DATABASE_URL") or "postgres://postgres@127.0.0.1:5432/postgres"
    if urlsplit(base).scheme not in ("postgres", "postgresql", "pgsql"):
        sys.exit("bench/rollup.py needs PostgreSQL: set DATABASE_URL=postgres://…")
    name = f"finops_bench_rollup_{os.getpid()}"
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
        from django.db.models import Sum

        from gateway.models import UsageEvent
        from reports.models import DailySpend, HourlySpend
        from reports.services import spend_reconcile, usage_rollup

        call_command("migrate", verbosity=0)
        rng = random.Random(1)
        orgs = world()
        now = datetime.now(UTC).replace(microsecond=0)
        seconds = seed(
            args.rows,
            orgs=orgs,
            start=now - timedelta(days=args.days),
            span=timedelta(days=args.days) - timedelta(minutes=2),
            rng=rng,
        )
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")
        print(f"seeded {args.rows:,} ledger rows over {args.days} days in {seconds:.1f} s")

        began = time.monotonic()
        full = usage_rollup()
        full_s = time.monotonic() - began
        hours, days = HourlySpend.objects.count(), DailySpend.objects.count()
        print(
            f"full rollup:        {full_s:6.2f} s  ({full.events:,} events -> {hours:,} hour rows, {days:,} day rows)"
        )

        seed(
            args.new,
            orgs=orgs,
            start=now - timedelta(minutes=1),
            span=timedelta(minutes=1),
            rng=rng,
        )
        began = time.monotonic()
        incremental = usage_rollup()
        inc_s = time.monotonic() - began
        print(
            f"incremental minute: {inc_s:6.2f} s  ({incremental.events:,} events, {incremental.hours} hour and {incremental.days} day buckets recomputed)"
        )

        ledger = UsageEvent.objects.filter(shadow=False).aggregate(s=Sum("cost"))["s"]
        rolled = DailySpend.objects.aggregate(s=Sum("cost"))["s"]
        first = (now - timedelta(days=args.days + 1)).date()
        report = spend_reconcile(start=first, end=(now + timedelta(days=1)).date())
        ok = ledger == rolled and all(r.ok for r in report)
        print(
            f"reconciled with the ledger: {'yes' if ok else 'NO'} (production spend {ledger} USD)"
        )
        print(
            f"targets: full < 30 s {'met' if full_s < 30 else 'MISSED'}; incremental < 2 s {'met' if inc_s < 2 else 'MISSED'}"
        )
    finally:
        from django.db import connections

        connections.close_all()
        if args.keep:
            print(f"kept database {name}")
        else:
            drop_database(base, name)


if __name__ == "__main__":
    main()
