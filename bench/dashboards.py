"""Dashboard benchmark (PostgreSQL): the organisation overview, a team page and their JSON
endpoints over 5,000,000 ledger rows spread over 90 days. Target: under 300 ms server-side.

Creates a throwaway database next to ``DATABASE_URL`` (default
``postgres://postgres@127.0.0.1:5432/postgres``; a database name in the URL is only used to
find the server), migrates it, seeds the ledger in SQL (``INSERT … SELECT`` over
``generate_series``, in chunks), runs the rollup, then requests each page through Django's test
``Client`` (logged in as an org admin and as a team lead): 3 warm-up requests, then ``--n``
timed ones; prints the median and p95 and the SQL queries per request, and drops the database.

    .venv/bin/python bench/dashboards.py [--rows 5000000] [--days 90] [--n 20] [--keep]

The seeded traffic: 3 organisations (UTC, Asia/Kolkata, America/New_York) with 10, 6 and 4
teams, 3 keys and 4 features per team, 3 endpoints per feature, 6 models on 3 providers, one
call in ten from one of 200 end users, 10% shadow calls, 5% failures, 3% second attempts.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.rollup import MODELS, _with_db, create_database, drop_database  # noqa: E402

ORGS = (("bench-a", "UTC", 10), ("bench-b", "Asia/Kolkata", 6), ("bench-c", "America/New_York", 4))
CHUNK = 500_000


def world() -> dict:
    """Orgs, teams, keys and people through the ORM; the ledger only needs their ids."""
    from teams.models import Membership, Organization, Role, Team, VirtualKey
    from tests import factories as f

    out = {"teams": [], "orgs": []}
    for slug, tz, n_teams in ORGS:
        org = Organization.objects.create(slug=slug, name=slug, timezone=tz)
        out["orgs"].append(org)
        for t in range(n_teams):
            team = Team.objects.create(org=org, slug=f"team{t}", name=f"Team {t}")
            keys = [
                VirtualKey.objects.create(org=org, team=team, name=f"{team.slug}-svc{k}").pk
                for k in range(3)
            ]
            out["teams"].append((org.pk, team.pk, team.slug, keys))
    org = out["orgs"][0]
    first_team = Team.objects.get(org=org, slug="team0")
    out["admin"] = f.make_user("admin@bench.test")
    out["lead"] = f.make_user("lead@bench.test")
    Membership.objects.create(user=out["admin"], org=org, role=Role.ADMIN)
    Membership.objects.create(user=out["lead"], org=org, team=first_team, role=Role.LEAD)
    f.make_budget(org, scope="org", limit="5000")
    f.make_budget(org, scope="team", team=first_team, limit="400")
    f.make_budget(org, scope="team", team=first_team, period="week", limit="100")
    out["org_id"], out["team_id"] = org.pk, first_team.pk
    return out


SEED_SQL = """
INSERT INTO gateway_usageevent (
    event_id, request_id, attempt, started_at, ended_at, org_id, team_id, key_id, feature,
    endpoint, end_user, api, requested_model, model, upstream_model, provider, status,
    http_status, error_code, prompt_tokens, completion_tokens, cached_tokens, cache_write_tokens,
    input_cost, cached_input_cost, cache_write_cost, output_cost, cost, latency_ms, streamed,
    estimated, router, router_scorer, router_decision, shadow, budget_action, inserted_at)
SELECT
    gen_random_uuid(), 'bench-' || g, CASE WHEN r.a < 0.03 THEN 2 ELSE 1 END,
    r.ts, r.ts + r.lat * interval '1 millisecond', t.org_id, t.team_id,
    t.keys[1 + floor(r.k * 3)::int],
    t.slug || '-f' || r.f, '/' || t.slug || '-f' || r.f || '/e' || r.e,
    CASE WHEN r.u < 0.9 THEN '' ELSE 'user' || floor((r.u - 0.9) * 2000)::int END,
    'chat.completions', m.name, m.name, m.name, m.provider,
    CASE WHEN r.ok THEN 'ok' ELSE 'error' END, CASE WHEN r.ok THEN 200 ELSE 503 END, '',
    r.prompt, r.completion, 0, 0,
    round(m.price_in * r.prompt / 1000000, 12), 0, 0,
    CASE WHEN r.ok THEN round(m.price_out * r.completion / 1000000, 12) ELSE 0 END,
    round(m.price_in * r.prompt / 1000000, 12)
        + CASE WHEN r.ok THEN round(m.price_out * r.completion / 1000000, 12) ELSE 0 END,
    r.lat, false, false, '', '', '', r.shadow, '', r.ts + (r.lat + 300) * interval '1 millisecond'
FROM generate_series(%(first)s, %(last)s) AS g
CROSS JOIN LATERAL (
    SELECT
        %(start)s::timestamptz + random() * %(span)s * interval '1 second' AS ts,
        random() AS a, random() AS k, floor(random() * 4)::int AS f,
        floor(random() * 3)::int AS e, random() AS u, random() > 0.05 AS ok,
        random() < 0.10 AS shadow,
        20 + floor(random() * 3980)::int AS prompt, floor(random() * 800)::int AS completion,
        -- log-normal latency (Box-Muller), median ~550 ms
        least(200000, exp(6.3 + 0.8 * sqrt(-2 * ln(1 - random()))
                       * cos(2 * pi() * random())))::int AS lat,
        floor(random() * %(n_teams)s)::int AS tn, floor(random() * %(n_models)s)::int AS mn,
        g AS tie
) AS r
JOIN bench_team t ON t.n = r.tn
JOIN bench_model m ON m.n = r.mn
"""


def seed(rows: int, *, teams, start, days: int) -> float:
    from django.db import connection, transaction

    began = time.monotonic()
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE TEMP TABLE bench_team (n int, org_id bigint, team_id bigint, slug text,"
            " keys bigint[])"
        )
        for n, (org_id, team_id, slug, keys) in enumerate(teams):
            cursor.execute(
                "INSERT INTO bench_team VALUES (%s, %s, %s, %s, %s)",
                [n, org_id, team_id, slug, keys],
            )
        cursor.execute(
            "CREATE TEMP TABLE bench_model (n int, name text, provider text, price_in numeric,"
            " price_out numeric)"
        )
        for n, (name, provider, price_in, price_out) in enumerate(MODELS):
            cursor.execute(
                "INSERT INTO bench_model VALUES (%s, %s, %s, %s, %s)",
                [n, name, provider, price_in, price_out],
            )
        for first in range(1, rows + 1, CHUNK):
            with transaction.atomic():
                cursor.execute(
                    SEED_SQL,
                    {
                        "first": first,
                        "last": min(rows, first + CHUNK - 1),
                        "start": start,
                        "span": days * 86400 - 120,
                        "n_teams": len(teams),
                        "n_models": len(MODELS),
                    },
                )
            print(f"  seeded {min(rows, first + CHUNK - 1):,} rows", flush=True)
        cursor.execute("ANALYZE gateway_usageevent")
    return time.monotonic() - began


def _existing() -> dict:
    from django.contrib.auth import get_user_model

    from teams.models import Organization, Team

    users = get_user_model().objects
    org = Organization.objects.get(slug=ORGS[0][0])
    return {
        "admin": users.get(username="admin@bench.test"),
        "lead": users.get(username="lead@bench.test"),
        "org_id": org.pk,
        "team_id": Team.objects.get(org=org, slug="team0").pk,
    }


def timed(client, url: str, n: int) -> tuple[float, float, int, int]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    for _ in range(3):
        response = client.get(url)
        assert response.status_code == 200, (url, response.status_code)
    samples = []
    for _ in range(n):
        began = time.perf_counter()
        client.get(url)
        samples.append((time.perf_counter() - began) * 1000)
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)
    samples.sort()
    p95 = samples[min(len(samples) - 1, int(round(0.95 * len(samples))) - 1)]
    return statistics.median(samples), p95, len(queries), len(response.content)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=5_000_000)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--n", type=int, default=20, help="timed requests per URL")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    parser.add_argument("--reuse", metavar="NAME", help="time again on a database kept before")
    args = parser.parse_args()

    base = os.environ.get("DATABASE_URL") or "postgres://postgres@127.0.0.1:5432/postgres"
    if urlsplit(base).scheme not in ("postgres", "postgresql", "pgsql"):
        sys.exit("bench/dashboards.py needs PostgreSQL: set DATABASE_URL=postgres://…")
    name = args.reuse or f"finops_bench_dash_{os.getpid()}"
    if not args.reuse:
        create_database(base, name)
    os.environ["DATABASE_URL"] = _with_db(base, name)
    os.environ.setdefault("FINOPS_VAR_DIR", tempfile.mkdtemp(prefix="finops-bench-"))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "finops.settings")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    try:
        import django

        django.setup()
        from datetime import UTC, datetime, timedelta

        from django.core.management import call_command
        from django.db import connection
        from django.test import Client
        from django.test.utils import setup_test_environment

        from gateway.models import UsageEvent
        from reports.models import DailyDimensionSpend, DailySpend, HourlySpend
        from reports.services import usage_rollup

        setup_test_environment()
        now = datetime.now(UTC).replace(microsecond=0)
        if args.reuse:
            w = _existing()
        else:
            call_command("migrate", verbosity=0)
            w = world()
            seconds = seed(
                args.rows, teams=w["teams"], start=now - timedelta(days=args.days), days=args.days
            )
            print(f"seeded {args.rows:,} ledger rows over {args.days} days in {seconds:.1f} s")
            began = time.monotonic()
            result = usage_rollup()
            with connection.cursor() as cursor:
                cursor.execute("VACUUM ANALYZE reports_dailyspend")
                cursor.execute("VACUUM ANALYZE reports_hourlyspend")
                cursor.execute("VACUUM ANALYZE reports_dailydimensionspend")
            print(f"rollup: {time.monotonic() - began:.1f} s ({result.events:,} events)")
        ledger = UsageEvent.objects.count()
        days = DailySpend.objects.count()
        org_days = DailySpend.objects.filter(org_id=w["org_id"]).count()
        marginals = DailyDimensionSpend.objects.count()
        org_marginals = DailyDimensionSpend.objects.filter(org_id=w["org_id"]).count()
        print(
            f"{ledger:,} ledger rows -> {HourlySpend.objects.count():,} hour rows, "
            f"{days:,} day rows ({org_days:,} in the benchmarked org), {marginals:,} "
            f"day-by-dimension rows ({org_marginals:,}) read by the pages"
        )
        print(f"load average before timing: {Path('/proc/loadavg').read_text().strip()}")

        admin, lead = Client(), Client()
        admin.force_login(w["admin"])
        lead.force_login(w["lead"])
        overview = f"/reports/orgs/{w['org_id']}/"
        team = f"/reports/teams/{w['team_id']}/"
        cases = [
            ("overview page, month to date", admin, overview),
            ("overview JSON, month to date", admin, overview + "data.json"),
            ("overview page, last 30 days", admin, overview + "?range=30d"),
            ("overview JSON, last 30 days", admin, overview + "data.json?range=30d"),
            ("overview page, quarter to date", admin, overview + "?range=qtd"),
            ("team page (lead), month to date", lead, team),
            ("team JSON (lead), month to date", lead, team + "data.json"),
            ("team page (lead), last 30 days", lead, team + "?range=30d"),
            ("team JSON (lead), last 30 days", lead, team + "data.json?range=30d"),
            ("team page (admin), last 90 days", admin, team + f"?start={(now - timedelta(days=89)).date()}"),
        ]  # fmt: skip
        print(f"\n{'request':<36} {'median':>9} {'p95':>9} {'queries':>8} {'bytes':>9}")
        worst = 0.0
        for label, client, url in cases:
            median, p95, queries, size = timed(client, url, args.n)
            worst = max(worst, p95)
            print(f"{label:<36} {median:7.1f}ms {p95:7.1f}ms {queries:>8} {size:>9,}")
        print(
            f"\ntarget: every p95 < 300 ms {'met' if worst < 300 else 'MISSED'} (worst {worst:.1f} ms)"
        )
        print(f"load average after timing: {Path('/proc/loadavg').read_text().strip()}")
    finally:
        from django.db import connections

        connections.close_all()
        if args.keep or args.reuse:
            print(f"kept database {name}")
        else:
            drop_database(base, name)


if __name__ == "__main__":
    main()
