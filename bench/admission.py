"""What admission (budgets + rate limits) adds to the gateway, on vs off, at a fixed rate.

Same placement and method as ``bench/gateway_overhead.py`` (docs/benchmarking.md): the
gateway alone on core 0, simulator and open-loop generator on core 1. One gateway, two keys:
"off" (a team with no budgets or limits: admission is skipped) and "on" (org, team and key
budgets in two periods + key rpm/tpm/max-parallel limits: one counters step per call).
Counters are in process by default; set REDIS_URL to measure the Redis Lua path.

    .venv/bin/python bench/admission.py [--rate 200] [--duration 15]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gateway_overhead import (  # noqa: E402
    BODY,
    free_port,
    open_loop,
    pct,
    spawn_gateway,
    spawn_simulator,
    wait_idle,
)


def build(var_dir: Path, sim_url: str) -> tuple[str, str]:
    os.environ["FINOPS_VAR_DIR"] = str(var_dir)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "finops.settings")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from gateway.models import LLMModel, ModelPrice, Provider
    from teams.models import Budget, Organization, Team
    from teams.services import key_mint

    org = Organization.objects.create(slug="bench", name="Bench")
    free = Team.objects.create(org=org, slug="free", name="Free")
    capped = Team.objects.create(org=org, slug="capped", name="Capped")
    provider = Provider.objects.create(
        org=org, slug="sim", kind="openai", base_url=f"{sim_url}/v1", api_key_env="BENCH_SIM_KEY"
    )
    model = LLMModel.objects.create(
        org=org, provider=provider, name="gpt-4o-mini", upstream_model="gpt-4o-mini"
    )
    ModelPrice.objects.create(
        model=model, input_usd_per_mtok=Decimal("0.15"), output_usd_per_mtok=Decimal("0.60")
    )
    off = key_mint(team=free, name="off").secret
    on = key_mint(
        team=capped, name="on", rpm_limit=1_000_000, tpm_limit=1_000_000_000, max_parallel=10_000
    )
    for period in ("day", "month"):
        Budget.objects.create(
            org=org, scope="org", period=period, limit_usd=Decimal("1000000"), action="block"
        )
        Budget.objects.create(
            org=org,
            scope="team",
            team=capped,
            period=period,
            limit_usd=Decimal("100000"),
            action="block",
        )
        Budget.objects.create(
            org=org,
            scope="key",
            key=on.key,
            period=period,
            limit_usd=Decimal("10000"),
            action="alert",
        )
    return off, on.secret


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rate", type=float, default=200)
    parser.add_argument("--duration", type=float, default=15)
    parser.add_argument("--warmup", type=float, default=3)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="finops-admission-"))
    env = dict(os.environ, PYTHONUNBUFFERED="1", BENCH_SIM_KEY="sk-sim", FINOPS_VAR_DIR=str(tmp))
    sim_port, gw_port = free_port(), free_port()
    procs = []
    try:
        sim = spawn_simulator(env, sim_port)
        procs.append(sim)
        sim_url = f"http://127.0.0.1:{sim_port}"
        off, on = build(tmp, sim_url)
        gw = spawn_gateway(env, gw_port)
        procs.append(gw)
        os.sched_setaffinity(0, {1})
        if os.environ.get("REDIS_URL"):
            # the gateway stays alone on core 0: move the local Redis server next to the generator
            for pid in subprocess.run(
                ["pidof", "redis-server"], capture_output=True, text=True
            ).stdout.split():
                subprocess.run(["taskset", "-a", "-p", "-c", "1", pid], capture_output=True)
        url = f"http://127.0.0.1:{gw_port}/v1/chat/completions"
        body = json.dumps(BODY).encode()
        counters = "Redis (Lua, one round trip)" if os.environ.get("REDIS_URL") else "in process"
        print(
            f"# admission on vs off at {args.rate:.0f} req/s, counters {counters}, {args.duration:.0f} s per pass"
        )
        print("| admission | p50 ms | p90 ms | p99 ms | errors |")
        print("|---|---|---|---|---|")
        results = {}
        for name, key in (("off", off), ("on", on), ("off", off), ("on", on)):
            headers = {"authorization": f"Bearer {key}", "content-type": "application/json"}
            times, errors, dropped, _ = asyncio.run(
                open_loop(url, headers, body, args.rate, args.duration, args.warmup)
            )
            wait_idle(gw.pid)
            results.setdefault(name, []).extend(times)
            print(
                f"| {name} | {pct(times, 50):.2f} | {pct(times, 90):.2f} | {pct(times, 99):.2f} | {errors} (dropped {dropped}) |"
            )
        on_t, off_t = results["on"], results["off"]
        print(
            f"\nadmission adds p50 +{pct(on_t, 50) - pct(off_t, 50):.2f} ms, p99 +{pct(on_t, 99) - pct(off_t, 99):.2f} ms "
            f"(both passes pooled)"
        )
    finally:
        for p in reversed(procs):
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()


if __name__ == "__main__":
    main()
