"""Soak: the whole product under steady open-loop load for a long time, then the books checked.

Runs, all on 127.0.0.1: a throwaway PostgreSQL database (``soak_<pid>``, created next to
``DATABASE_URL``, default ``postgres://postgres@127.0.0.1:5432/postgres``, migrated, dropped at
the end unless ``--keep``); Redis db ``--redis-db`` (9) on the server of ``REDIS_URL`` (default
``redis://127.0.0.1:6379``), cleared of the bench's keys at start and end; the upstream
simulator; two gateway processes (two separate ``uvicorn --workers 1`` servers on two ports, the
load split evenly between them, so each process's RSS is read from its own pid); a Celery worker
and beat on the Redis broker, rolling the ledger up every 10 s during the soak.

Load (docs/benchmarking.md): open loop, request *i* sent at ``t0 + i/rate``; a share of
streaming calls; budgets and rate limits on. Four keys: two plain ones under a team budget far
too large to refuse; ``capped`` under a small key ``block`` budget (sized to run out about half
way, so it refuses calls with ``budget_exceeded``) and ``limited`` with an rpm limit (so it
gets ``429 rate_limit_exceeded``). Those two refusals are the *intended* errors; anything else
(other statuses, stream errors, timeouts, resets, requests dropped for too many in flight) is
*unintended*.

Then: ledger rows vs the attempts the gateways reported (``x-finops-attempts`` summed over all
responses; a refused call has none), a final rollup and its totals (hourly and daily) vs the
ledger, exact Decimal equality; each gateway's RSS after warm-up and at the end; added latency
(gateway minus a direct pass at the same rate against the simulator, taken before the soak);
a few figures from ``/metrics``. Targets get PASS/FAIL and the exit code is 1 if one fails.

Placement: nothing is pinned (two gateways, PostgreSQL, Redis, Celery, the simulator and this
generator share the machine's cores), so latency figures include that contention.

    .venv/bin/python bench/soak.py [--duration 600] [--rate 200] [--stream-share 0.3]
                                   [--quick] [--keep] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import json
import math
import os
import platform
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gateway_overhead import ROOT, cpu_ticks, free_port, pct, wait_http  # noqa: E402
from rollup import _with_db, create_database, drop_database  # noqa: E402

MODEL = "gpt-4o-mini"
PRICE_IN, PRICE_OUT = Decimal("0.15"), Decimal("0.60")  # USD per Mtok
PROMPT = "Give me one sentence about cost control."
MAX_TOKENS = 16
# share of the traffic per key; "capped" and "limited" are the ones expected to be refused
KEYS = {"svc-a": 0.4, "svc-b": 0.4, "capped": 0.1, "limited": 0.1}
INTENDED = {"capped": "budget_exceeded", "limited": "rate_limit_exceeded"}
FEATURES = ("chat", "search", "summarise")
USERS = 50
MAX_IN_FLIGHT = 2000
CLIENT_TIMEOUT = 30.0
NAN = float("nan")
REDIS_PATTERNS = ("finops:*", ":1:*", "celery*", "_kombu*", "unacked*")


@dataclass(slots=True)
class Result:
    phase: str
    stream: bool
    key: str
    status: int  # -1: no HTTP answer (timeout, reset, dropped, unfinished)
    code: str  # the OpenAI error code, or what went wrong on the client side
    attempts: int
    ms: float  # service time: response end - send
    ttfb_ms: float  # first body byte - send
    at: float = 0.0  # seconds from the start of its phase to its send


# --- processes ----------------------------------------------------------------------------


def _die_with_parent() -> None:
    """In the child: its own process group (killed whole at the end), and SIGTERM if this
    bench dies without cleaning up."""
    os.setsid()
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class Procs:
    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.running: list[tuple[str, subprocess.Popen]] = []

    def start(self, name: str, cmd: list[str], env: dict) -> subprocess.Popen:
        log = (self.logs / f"{name}.log").open("wb")
        proc = subprocess.Popen(  # noqa: S603
            cmd,
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent,  # noqa: PLW1509 - no threads yet
        )
        log.close()
        self.running.append((name, proc))
        return proc

    def log(self, name: str) -> str:
        path = self.logs / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self, name: str, timeout: float = 30.0) -> None:
        for n, proc in self.running:
            if n == name:
                _stop_group(proc, timeout)

    def stop_all(self) -> None:
        for _, proc in reversed(self.running):
            _stop_group(proc, 20.0)


def _stop_group(proc: subprocess.Popen, timeout: float) -> None:
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)


def rss_mb(pid: int) -> float:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def wait_log(procs: Procs, name: str, needle: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while needle not in procs.log(name):
        if time.monotonic() > deadline:
            raise RuntimeError(f"{name} did not log {needle!r}:\n{procs.log(name)[-2000:]}")
        time.sleep(0.2)


# --- services -----------------------------------------------------------------------------


def redis_url_for(db: int) -> str:
    base = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379"
    parts = urlsplit(base)
    return urlunsplit((parts.scheme, parts.netloc, f"/{db}", "", ""))


def redis_clear(url: str) -> int:
    """Delete the keys the gateway, Django's cache and Celery leave in the bench's db."""
    import redis

    client = redis.Redis.from_url(url)
    deleted = 0
    try:
        for pattern in REDIS_PATTERNS:
            batch = list(client.scan_iter(match=pattern, count=1000))
            for i in range(0, len(batch), 1000):
                deleted += client.delete(*batch[i : i + 1000])
    finally:
        client.close()
    return deleted


def per_call_cost() -> Decimal:
    """What one call costs, from the simulator's documented arithmetic (prompt: 3 per message +
    ceil(len/4) + 3; completion: min(max_tokens, 16))."""
    prompt = 3 + math.ceil(len(PROMPT) / 4) + 3
    completion = min(MAX_TOKENS, 16)
    return (prompt * PRICE_IN + completion * PRICE_OUT) / Decimal(1_000_000)


def build_world(sim_url: str, *, rpm: int, capped_limit: Decimal) -> dict[str, str]:
    from django.core.management import call_command

    from gateway.models import LLMModel, ModelPrice, Provider
    from teams.models import Budget, Organization, Team
    from teams.services import key_mint

    call_command("migrate", verbosity=0)
    org = Organization.objects.create(slug="soak", name="Soak", timezone="UTC")
    main = Team.objects.create(org=org, slug="main", name="Main")
    capped = Team.objects.create(org=org, slug="capped", name="Capped")
    provider = Provider.objects.create(
        org=org, slug="sim", kind="openai", base_url=f"{sim_url}/v1", api_key_env="BENCH_SIM_KEY"
    )
    model = LLMModel.objects.create(org=org, provider=provider, name=MODEL, upstream_model=MODEL)
    ModelPrice.objects.create(
        model=model, input_usd_per_mtok=PRICE_IN, output_usd_per_mtok=PRICE_OUT
    )
    secrets = {
        "svc-a": key_mint(team=main, name="svc-a").secret,
        "svc-b": key_mint(team=main, name="svc-b").secret,
        "limited": key_mint(team=main, name="limited", rpm_limit=rpm).secret,
    }
    minted = key_mint(team=capped, name="capped")
    secrets["capped"] = minted.secret
    big = Decimal("1000000")
    for team in (main, capped):
        Budget.objects.create(
            org=org, scope="team", team=team, period="day", limit_usd=big, action="block"
        )
    Budget.objects.create(org=org, scope="org", period="month", limit_usd=big, action="alert")
    Budget.objects.create(
        org=org, scope="key", key=minted.key, period="day", limit_usd=capped_limit, action="block"
    )
    return secrets


# --- load ---------------------------------------------------------------------------------


def _error_code(data: bytes) -> str:
    try:
        return str(json.loads(data).get("error", {}).get("code") or "no_code")
    except (ValueError, AttributeError):
        return "not_json"


async def _one(session, url: str, headers: dict, body: bytes, spec, phase: str, out: list, t0):
    import aiohttp

    stream, key = spec
    status, code, attempts, ttfb = -1, "", 0, NAN
    sent = time.perf_counter()
    try:
        async with session.post(url, data=body, headers=headers) as r:
            status = r.status
            attempts = int(r.headers.get("x-finops-attempts") or 0)
            if stream and status == 200:
                tail, broken = b"", False
                async for chunk in r.content.iter_any():
                    if ttfb != ttfb:  # first chunk (nan != nan)
                        ttfb = (time.perf_counter() - sent) * 1000
                    broken = broken or b'data: {"error"' in chunk
                    tail = (tail + chunk)[-64:]
                if broken or not tail.rstrip().endswith(b"data: [DONE]"):
                    code = "stream_broken"
            else:
                data = await r.read()
                ttfb = (time.perf_counter() - sent) * 1000
                if status != 200:
                    code = _error_code(data)
    except TimeoutError:
        code = "client_timeout"
    except aiohttp.ClientError as exc:
        code = type(exc).__name__
    ms = (time.perf_counter() - sent) * 1000
    out.append(Result(phase, stream, key, status, code, attempts, ms, ttfb, sent - t0))


class Load:
    """Open-loop load over a set of targets (url, headers by key), bodies chosen per request."""

    def __init__(self, *, stream_share: float, seed: int = 7) -> None:
        self.rng = random.Random(seed)
        self.stream_share = stream_share
        self.results: list[Result] = []
        self.bodies = {
            (stream, u): json.dumps(
                {
                    "model": MODEL,
                    "messages": [{"role": "user", "content": PROMPT}],
                    "max_tokens": MAX_TOKENS,
                    "stream": stream,
                    "user": f"user{u}",
                }
            ).encode()
            for stream in (False, True)
            for u in range(USERS)
        }

    def spec(self, keys: list[str], weights: list[float]) -> tuple[bool, str]:
        return self.rng.random() < self.stream_share, self.rng.choices(keys, weights)[0]

    async def run(
        self, targets, keys: dict, phase: str, rate: float, seconds: float, progress=None
    ):
        """targets: list of (url, {key name: headers by feature}); request i goes to target
        i % len(targets). Returns the elapsed seconds."""
        import aiohttp

        connector = aiohttp.TCPConnector(limit=0)
        timeout = aiohttp.ClientTimeout(total=CLIENT_TIMEOUT)
        names, weights = list(keys), list(keys.values())
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
            tasks: set = set()
            n = int(rate * seconds)
            t0 = time.perf_counter()
            next_report = t0 + 60
            for i in range(n):
                delay = t0 + i / rate - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                stream, key = self.spec(names, weights)
                if len(tasks) >= MAX_IN_FLIGHT:
                    self.results.append(
                        Result(phase, stream, key, -1, "dropped", 0, NAN, NAN, i / rate)
                    )
                    continue
                url, headers = targets[i % len(targets)]
                feature = self.rng.randrange(len(FEATURES))
                body = self.bodies[(stream, self.rng.randrange(USERS))]
                task = asyncio.create_task(
                    _one(
                        session,
                        url,
                        headers[key][feature],
                        body,
                        (stream, key),
                        phase,
                        self.results,
                        t0,
                    )
                )
                tasks.add(task)
                task.add_done_callback(tasks.discard)
                if progress is not None and time.perf_counter() >= next_report:
                    next_report += 60
                    progress(time.perf_counter() - t0, len(tasks))
            if tasks:
                _, pending = await asyncio.wait(set(tasks), timeout=CLIENT_TIMEOUT + 5)
                for task in pending:
                    task.cancel()
                    self.results.append(
                        Result(phase, False, "?", -1, "unfinished", 0, NAN, NAN, seconds)
                    )
            return time.perf_counter() - t0


def classify(r: Result) -> str:
    """ok, intended (an expected refusal) or unintended."""
    if r.status == 200 and not r.code:
        return "ok"
    if r.status == 429 and INTENDED.get(r.key) == r.code:
        return "intended"
    return "unintended"


# --- metrics ------------------------------------------------------------------------------


def scrape(url: str) -> dict:
    import httpx
    from prometheus_client.parser import text_string_to_metric_families

    out = {"requests_total": 0.0, "requests_by_code": {}, "ledger_buffer_events": 0.0}
    out.update(spool_bytes=0.0, attempts_total=0.0, spooled_events_total=0.0)
    text = httpx.get(f"{url}/metrics", timeout=10).text
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == "finops_gateway_requests_total":
                out["requests_total"] += s.value
                code = s.labels.get("code", "?")
                out["requests_by_code"][code] = out["requests_by_code"].get(code, 0) + s.value
            elif s.name == "finops_ledger_buffer_events":
                out["ledger_buffer_events"] += s.value
            elif s.name == "finops_ledger_spool_bytes":
                out["spool_bytes"] += s.value
            elif s.name == "finops_gateway_attempts_total":
                out["attempts_total"] += s.value
            elif s.name == "finops_ledger_spooled_events_total":
                out["spooled_events_total"] += s.value
    return out


# --- the books ----------------------------------------------------------------------------


def books() -> dict:
    """A final rollup, then its totals vs the ledger's."""
    from django.db.models import Count, Q, Sum

    from gateway.models import CounterDrift, UsageEvent
    from reports.models import DailySpend, HourlySpend
    from reports.services.rollup import usage_rollup

    final = usage_rollup()
    ledger = UsageEvent.objects.filter(shadow=False).aggregate(
        attempts=Count("id"), requests=Count("id", filter=Q(attempt=1)), cost=Sum("cost")
    )
    sums = {"attempts": Sum("attempts"), "requests": Sum("requests"), "cost": Sum("cost")}
    hourly = HourlySpend.objects.aggregate(**sums)
    daily = DailySpend.objects.aggregate(**sums)
    for d in (ledger, hourly, daily):
        d["cost"] = d["cost"] or Decimal(0)
        d["attempts"] = d["attempts"] or 0
        d["requests"] = d["requests"] or 0
    cent = Decimal("0.01")
    exact = hourly == ledger and daily == ledger
    to_cent = all(
        d["attempts"] == ledger["attempts"]
        and d["requests"] == ledger["requests"]
        and d["cost"].quantize(cent) == ledger["cost"].quantize(cent)
        for d in (hourly, daily)
    )
    return {
        "rows": UsageEvent.objects.count(),
        "ledger": ledger,
        "hourly": hourly,
        "daily": daily,
        "hour_buckets": HourlySpend.objects.values("hour").distinct().count(),
        "exact": exact,
        "to_the_cent": to_cent,
        "final_rollup": str(final),
        "counter_drifts": CounterDrift.objects.count(),
    }


def periodic_rollups(worker_log: str) -> tuple[int, int]:
    """(runs, runs that rolled new events) of the beat-scheduled rollup, from the worker log."""
    runs = busy_or_empty = 0
    for line in worker_log.splitlines():
        if "reports.tasks.rollup_task" in line and "succeeded" in line:
            runs += 1
            if "'0 new events" in line or "busy" in line:
                busy_or_empty += 1
    return runs, runs - busy_or_empty


# --- main ---------------------------------------------------------------------------------


def main() -> int:  # noqa: C901 - one linear script
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=float, default=600.0, help="soak seconds")
    parser.add_argument("--rate", type=float, default=200.0, help="requests per second")
    parser.add_argument("--stream-share", type=float, default=0.3)
    parser.add_argument("--warmup", type=float, default=10.0, help="unrecorded warm-up seconds")
    parser.add_argument(
        "--direct-seconds", type=float, default=20.0, help="direct pass (0: none, no latency)"
    )
    parser.add_argument("--redis-db", type=int, default=9)
    parser.add_argument("--quick", action="store_true", help="30 s at 50 req/s (a smoke run)")
    parser.add_argument("--keep", action="store_true", help="keep the database and the logs")
    parser.add_argument("--json", action="store_true", help="print a machine-readable summary")
    args = parser.parse_args()
    if args.quick:
        args.duration, args.rate, args.warmup, args.direct_seconds = 30.0, 50.0, 5.0, 10.0
    if not 0 <= args.stream_share <= 1 or args.rate <= 0 or args.duration <= 0:
        parser.error("--stream-share must be in [0, 1], --rate and --duration positive")
    say = (lambda *a, **k: None) if args.json else print

    def note(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    base = os.environ.get("DATABASE_URL") or "postgres://postgres@127.0.0.1:5432/postgres"
    if urlsplit(base).scheme not in ("postgres", "postgresql", "pgsql"):
        note("bench/soak.py needs PostgreSQL: set DATABASE_URL=postgres://…")
        return 2
    redis_url = redis_url_for(args.redis_db)
    db_name = f"soak_{os.getpid()}"
    tmp = Path(tempfile.mkdtemp(prefix="h_soak_"))
    for sub in ("logs", "bench", "gw0", "gw1", "celery"):
        (tmp / sub).mkdir()
    db_url = _with_db(base, db_name)
    env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    env.update(
        PYTHONUNBUFFERED="1",
        DJANGO_SETTINGS_MODULE="finops.settings",
        DATABASE_URL=db_url,
        REDIS_URL=redis_url,
        CELERY_BROKER_URL=redis_url,
        BENCH_SIM_KEY="sk-sim",
        LOG_LEVEL="WARNING",
    )
    procs = Procs(tmp / "logs")
    created = False

    def on_term(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    began = time.monotonic()
    try:
        sim_port = free_port()
        sim_cmd = [sys.executable, "-m", "simulator", "--port", str(sim_port)]
        sim_cmd += ["--latency-ms", "20", "--chunk-delay-ms", "10", "--chunks", "20"]
        procs.start("simulator", sim_cmd, env)
        sim_url = f"http://127.0.0.1:{sim_port}"
        cleared = redis_clear(redis_url)
        create_database(base, db_name)
        created = True
        os.environ.update(env, FINOPS_VAR_DIR=str(tmp / "bench"))
        import django

        django.setup()
        from django.db import connections

        total_seconds = args.warmup + args.duration
        capped_calls = KEYS["capped"] * args.rate * total_seconds
        capped_limit = (per_call_cost() * Decimal(capped_calls) / 2).quantize(Decimal("0.000001"))
        rpm = max(1, int(KEYS["limited"] * args.rate * min(total_seconds, 60) / 2))

        wait_http(f"{sim_url}/_sim/health")
        secrets = build_world(sim_url, rpm=rpm, capped_limit=capped_limit)
        connections.close_all()

        # everything starts at once; then each is waited for
        gateways = []
        for i in range(2):
            port = free_port()
            cmd = [sys.executable, "-m", "finops.serve"]
            cmd += ["--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
            cmd += ["--loop", "uvloop", "--http", "httptools", "--lifespan", "on"]
            cmd += [
                "--no-access-log",
                "--log-level",
                "warning",
                "--timeout-graceful-shutdown",
                "20",
            ]
            proc = procs.start(f"gw{i}", cmd, dict(env, FINOPS_VAR_DIR=str(tmp / f"gw{i}")))
            gateways.append((proc, f"http://127.0.0.1:{port}"))
        celery_env = dict(
            env,
            FINOPS_VAR_DIR=str(tmp / "celery"),
            FINOPS_ROLLUP_INTERVAL_SECONDS="10",
            FINOPS_BUDGET_CHECK_INTERVAL_SECONDS="30",
            FINOPS_RECONCILE_INTERVAL_SECONDS="60",
        )
        celery = [sys.executable, "-m", "celery", "-A", "finops"]
        procs.start(
            "celery-worker",
            [*celery, "worker", "--pool", "solo", "--loglevel", "INFO", "-n", "soak@%h"]
            + ["--without-gossip", "--without-mingle", "--without-heartbeat"],
            celery_env,
        )
        schedule = str(tmp / "celery" / "celerybeat-schedule")
        procs.start(
            "celery-beat",
            [*celery, "beat", "--loglevel", "INFO", "--schedule", schedule],
            celery_env,
        )
        for _, url in gateways:
            wait_http(f"{url}/healthz")
        wait_log(procs, "celery-worker", "ready.")
        note(f"set up in {time.monotonic() - began:.0f} s (database, world, 2 gateways, Celery)")

        try:
            import uvloop

            uvloop.install()
        except ImportError:
            pass
        load = Load(stream_share=args.stream_share)
        if args.direct_seconds > 0:
            headers = {"authorization": "Bearer sk-sim", "content-type": "application/json"}
            direct = [(f"{sim_url}/v1/chat/completions", {k: [headers] * 3 for k in KEYS})]
            note(f"direct pass: {args.direct_seconds:.0f} s at {args.rate:.0f} req/s")
            asyncio.run(load.run(direct, KEYS, "direct", args.rate, args.direct_seconds))
            time.sleep(2)

        targets = []
        for _, url in gateways:
            by_key = {
                name: [
                    {
                        "authorization": f"Bearer {secret}",
                        "content-type": "application/json",
                        "x-finops-feature": feature,
                        "x-finops-endpoint": f"/soak/{feature}",
                    }
                    for feature in FEATURES
                ]
                for name, secret in secrets.items()
            }
            targets.append((f"{url}/v1/chat/completions", by_key))
        note(f"warm-up: {args.warmup:.0f} s at {args.rate:.0f} req/s")
        asyncio.run(load.run(targets, KEYS, "warmup", args.rate, args.warmup))
        rss_start = [rss_mb(p.pid) for p, _ in gateways]
        cpu_start = [cpu_ticks(p.pid) for p, _ in gateways]
        me_start = os.times()

        def progress(elapsed: float, in_flight: int) -> None:
            soak = [r for r in load.results if r.phase == "soak"]
            kinds = Counter(classify(r) for r in soak)
            rss = ", ".join(f"{rss_mb(p.pid):.0f}" for p, _ in gateways)
            note(
                f"  t={elapsed:4.0f}s answered {len(soak)} ok {kinds['ok']} intended "
                f"{kinds['intended']} unintended {kinds['unintended']} in flight {in_flight} "
                f"RSS MB {rss}"
            )

        note(
            f"soak: {args.duration:.0f} s at {args.rate:.0f} req/s, {args.stream_share:.0%} streaming"
        )
        soak_elapsed = asyncio.run(
            load.run(targets, KEYS, "soak", args.rate, args.duration, progress)
        )
        me_end = os.times()
        rss_end = [rss_mb(p.pid) for p, _ in gateways]
        cpu_end = [cpu_ticks(p.pid) for p, _ in gateways]
        metrics = [scrape(url) for _, url in gateways]

        # stop the gateways (they drain their ledger buffers), then Celery, then the books
        for i in range(2):
            procs.stop(f"gw{i}")
        time.sleep(1)
        spool_left = sum(
            p.stat().st_size for i in range(2) for p in (tmp / f"gw{i}" / "spool").glob("*.jsonl")
        )
        procs.stop("celery-beat")
        procs.stop("celery-worker")
        runs, busy_runs = periodic_rollups(procs.log("celery-worker"))
        book = books()
        connections.close_all()

        # --- figures ------------------------------------------------------------------------
        gw = [r for r in load.results if r.phase in ("warmup", "soak")]
        soak = [r for r in gw if r.phase == "soak"]
        kinds = {r_id: classify(r) for r_id, r in enumerate(gw)}
        intended = Counter(r.code for i, r in enumerate(gw) if kinds[i] == "intended")
        unintended = Counter(
            f"{r.status} {r.code}".strip() for i, r in enumerate(gw) if kinds[i] == "unintended"
        )
        succeeded = sum(1 for k in kinds.values() if k == "ok")
        # their attempts are unknown to the client (it gave up or lost the connection first)
        no_answer = sum(1 for r in gw if r.status == -1 or r.code == "client_timeout")
        bad_at = sorted(
            r.at for i, r in enumerate(gw) if kinds[i] == "unintended" and r.phase == "soak"
        )
        bad_window = [round(bad_at[0], 1), round(bad_at[-1], 1)] if bad_at else []
        attempts = sum(r.attempts for r in gw)
        refused_with_attempts = sum(r.attempts for i, r in enumerate(gw) if kinds[i] == "intended")

        def lat(results, phase: str, stream: bool, field: str) -> list[float]:
            return [
                getattr(r, field)
                for r in results
                if r.phase == phase and r.stream == stream and r.status == 200 and not r.code
            ]

        latency = {}
        for label, stream, field in (
            ("plain, service time", False, "ms"),
            ("streaming, first byte", True, "ttfb_ms"),
            ("streaming, to [DONE]", True, "ms"),
        ):
            g = lat(gw, "soak", stream, field)
            d = lat(load.results, "direct", stream, field)
            latency[label] = {
                "gateway_p50": pct(g, 50),
                "gateway_p99": pct(g, 99),
                "direct_p50": pct(d, 50),
                "direct_p99": pct(d, 99),
                "added_p50": pct(g, 50) - pct(d, 50),
                "added_p99": pct(g, 99) - pct(d, 99),
            }
        direct_errors = sum(1 for r in load.results if r.phase == "direct" and r.status != 200)
        memory = [
            {
                "process": f"gw{i}",
                "pid": p.pid,
                "start_mb": rss_start[i],
                "end_mb": rss_end[i],
                "growth_pct": (rss_end[i] - rss_start[i]) / rss_start[i] * 100,
            }
            for i, (p, _) in enumerate(gateways)
        ]
        hz = os.sysconf("SC_CLK_TCK")
        gw_cpu = sum(cpu_end) - sum(cpu_start)
        gen_cpu = (me_end.user + me_end.system) - (me_start.user + me_start.system)
        targets_out = {
            "ledger rows == attempts": {
                "ok": book["rows"] == attempts,
                "detail": f"{book['rows']} rows, {attempts} attempts reported"
                + (f" ({no_answer} calls got no answer)" if no_answer else ""),
            },
            "rollups == ledger to the cent": {
                "ok": book["to_the_cent"],
                "detail": f"exact: {'yes' if book['exact'] else 'NO'}",
            },
            "memory growth < 10% per process": {
                "ok": all(m["growth_pct"] < 10 for m in memory),
                "detail": ", ".join(f"{m['process']} {m['growth_pct']:+.1f}%" for m in memory),
            },
            "no unintended errors": {
                "ok": not unintended,
                "detail": f"{sum(unintended.values())} unintended",
            },
        }
        ok = all(t["ok"] for t in targets_out.values())
        summary = {
            "config": {
                "duration_s": args.duration,
                "rate": args.rate,
                "stream_share": args.stream_share,
                "warmup_s": args.warmup,
                "direct_s": args.direct_seconds,
                "gateways": "2 separate uvicorn processes (--workers 1 each), load split evenly",
                "database": f"PostgreSQL {db_name}",
                "redis": redis_url,
                "redis_keys_cleared": cleared,
                "rpm_limit_limited": rpm,
                "budget_capped_usd": str(capped_limit),
                "cost_per_call_usd": str(per_call_cost()),
                "python": platform.python_version(),
            },
            "requests": {
                "sent_soak": len(soak),
                "sent_warmup": len(gw) - len(soak),
                "succeeded": succeeded,
                "intended": dict(intended),
                "unintended": dict(unintended),
                "unintended_soak_window_s": bad_window,
                "achieved_rps": len(soak) / soak_elapsed,
                "streams": sum(1 for r in gw if r.stream),
            },
            "ledger": {
                "rows": book["rows"],
                "attempts_reported": attempts,
                "attempts_on_refused": refused_with_attempts,
                "attempts_in_metrics": sum(m["attempts_total"] for m in metrics),
                "calls_without_answer": no_answer,
                "spool_bytes_left": spool_left,
            },
            "rollup": {
                "ledger": {k: str(v) for k, v in book["ledger"].items()},
                "hourly": {k: str(v) for k, v in book["hourly"].items()},
                "daily": {k: str(v) for k, v in book["daily"].items()},
                "hour_buckets": book["hour_buckets"],
                "exact": book["exact"],
                "to_the_cent": book["to_the_cent"],
                "periodic_runs": runs,
                "periodic_runs_with_events": busy_runs,
                "final": book["final_rollup"],
                "counter_drifts": book["counter_drifts"],
            },
            "memory": memory,
            "latency_ms": latency,
            "direct_errors": direct_errors,
            "cpu": {
                "gateways_ms_per_request": gw_cpu / hz * 1000 / max(1, len(soak)),
                "generator_core_share": gen_cpu / soak_elapsed,
            },
            "metrics": {
                "requests_total": sum(m["requests_total"] for m in metrics),
                "requests_by_code": {
                    code: sum(m["requests_by_code"].get(code, 0) for m in metrics)
                    for code in sorted({c for m in metrics for c in m["requests_by_code"]})
                },
                "attempts_total": sum(m["attempts_total"] for m in metrics),
                "ledger_buffer_events": sum(m["ledger_buffer_events"] for m in metrics),
                "spool_bytes": sum(m["spool_bytes"] for m in metrics),
                "spooled_events_total": sum(m["spooled_events_total"] for m in metrics),
            },
            "log_errors": {
                name: sum(
                    1
                    for line in procs.log(name).splitlines()
                    if "Traceback" in line or " ERROR " in line or "ERROR/" in line
                )
                for name in ("gw0", "gw1", "celery-worker", "celery-beat")
            },
            "log_warnings": {
                name: sum(1 for line in procs.log(name).splitlines() if "WARNING" in line)
                for name in ("gw0", "gw1", "celery-worker", "celery-beat")
            },
            "targets": targets_out,
            "ok": ok,
        }
        if args.json:
            print(json.dumps(summary, indent=2, default=str))
        else:
            _report(summary, say)
        return 0 if ok else 1
    except KeyboardInterrupt:
        note("interrupted: cleaning up")
        return 130
    finally:
        procs.stop_all()
        with contextlib.suppress(Exception):
            from django.db import connections

            connections.close_all()
        with contextlib.suppress(Exception):
            redis_clear(redis_url)
        if args.keep:
            note(f"kept database {db_name} and logs in {tmp}")
        else:
            if created:
                drop_database(base, db_name)
            shutil.rmtree(tmp, ignore_errors=True)


def _report(s: dict, say) -> None:
    c, q, led, ro = s["config"], s["requests"], s["ledger"], s["rollup"]
    say(
        f"# LLM FinOps soak: {c['duration_s']:.0f} s at {c['rate']:.0f} req/s, "
        f"{c['stream_share']:.0%} streaming"
    )
    say(
        f"{c['gateways']}; {c['database']}; Redis {c['redis']}; Celery worker + beat "
        f"(rollup every 10 s); simulator 20 ms latency, streams 20 chunks 10 ms apart"
    )
    say(
        "placement: nothing pinned, every process shares the machine's cores (a shared "
        "machine: latency figures include other people's load)"
    )
    say(
        f"limits: key 'limited' rpm {c['rpm_limit_limited']}; key 'capped' day block budget "
        f"{c['budget_capped_usd']} USD (~{c['cost_per_call_usd']} USD a call); team budgets 1e6 USD\n"
    )
    say(
        f"requests sent:        {q['sent_soak']} (+{q['sent_warmup']} warm-up), achieved "
        f"{q['achieved_rps']:.1f} req/s, {q['streams']} streams"
    )
    say(f"succeeded:            {q['succeeded']}")
    intended = ", ".join(f"{k} {v}" for k, v in sorted(q["intended"].items())) or "none"
    say(f"intended errors:      {intended}")
    unintended = ", ".join(f"{k}: {v}" for k, v in sorted(q["unintended"].items())) or "none"
    if q["unintended_soak_window_s"]:
        first, last = q["unintended_soak_window_s"]
        unintended += f" (in the soak: sent between t={first:.0f} s and t={last:.0f} s)"
    say(f"unintended errors:    {unintended}")
    say(
        f"ledger rows:          {led['rows']} vs attempts reported {led['attempts_reported']} "
        f"(refused calls' attempts: {led['attempts_on_refused']}; spool left {led['spool_bytes_left']} B)"
    )
    say(
        f"                      gateway-side attempts (/metrics) {led['attempts_in_metrics']:.0f}; "
        f"calls the client got no answer for (attempts unknown): {led['calls_without_answer']}"
    )
    say(
        f"rollups ({ro['periodic_runs']} periodic runs during the soak, {ro['periodic_runs_with_events']} "
        f"with new events; final: {ro['final']}):"
    )
    for name in ("ledger", "hourly", "daily"):
        d = ro[name]
        say(
            f"  {name:7} cost {d['cost']:>20} USD  attempts {d['attempts']:>7}  requests {d['requests']:>7}"
        )
    say(f"  hour buckets {ro['hour_buckets']}; exact equality: {'yes' if ro['exact'] else 'NO'}")
    for m in s["memory"]:
        say(
            f"RSS {m['process']} (pid {m['pid']}): {m['start_mb']:.1f} MB after warm-up -> "
            f"{m['end_mb']:.1f} MB at end ({m['growth_pct']:+.1f}%)"
        )
    say(
        f"CPU: gateways {s['cpu']['gateways_ms_per_request']:.2f} ms per request (both processes); "
        f"load generator {s['cpu']['generator_core_share']:.0%} of a core"
    )
    say("latency ms (successful calls; gateway during the soak, direct pass before it):")
    for label, v in s["latency_ms"].items():
        say(
            f"  {label:22} gateway p50 {v['gateway_p50']:7.2f} p99 {v['gateway_p99']:7.2f} | direct "
            f"p50 {v['direct_p50']:7.2f} p99 {v['direct_p99']:7.2f} | added p50 "
            f"{v['added_p50']:+7.2f} p99 {v['added_p99']:+7.2f}"
        )
    say(f"  (direct pass errors: {s['direct_errors']})")
    m = s["metrics"]
    codes = ", ".join(f"{k}: {v:.0f}" for k, v in m["requests_by_code"].items())
    say(
        f"/metrics (both gateways, at the end): requests total {m['requests_total']:.0f} ({codes}); "
        f"attempts {m['attempts_total']:.0f}; ledger buffer {m['ledger_buffer_events']:.0f} events; "
        f"spool {m['spool_bytes']:.0f} bytes; spooled events {m['spooled_events_total']:.0f}"
    )
    errs = ", ".join(f"{k} {v}" for k, v in s["log_errors"].items())
    warns = ", ".join(f"{k} {v}" for k, v in s["log_warnings"].items())
    say(f"log lines:            errors {errs}; warnings {warns}")
    say(f"counter drifts corrected by reconciliation: {s['rollup']['counter_drifts']}\n")
    say("targets:")
    for name, t in s["targets"].items():
        say(f"  {'PASS' if t['ok'] else 'FAIL'}  {name:34} {t['detail']}")
    say(f"\n{'all targets met' if s['ok'] else 'TARGETS FAILED'}")


if __name__ == "__main__":
    sys.exit(main())
