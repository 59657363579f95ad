"""The response cache's hit path against a miss, measured as /work/shared/BENCHMARKING.md says
(placement, open loop, service time), with ``bench/gateway_overhead.py``'s harness.

Placement: the gateway (one uvicorn worker, metering on, SQLite ledger) alone on core 0; the
upstream simulator and this load generator on core 1. Four open-loop passes of the same
chat request at the same rate:

- direct: to the simulator itself;
- no cache: the gateway with no cache policy (today's path);
- miss: a policy on, every request a new prompt (lookup, upstream call, store);
- hit: a policy on, the one prompt, stored before the pass (lookup and replay, no upstream).

Printed: service time p50/p90/p99, the miss's cost over no cache (what the cache adds to a
call it cannot answer), the hit against the miss and against direct, and the gateway's CPU per
call in each pass (``/proc`` ticks over the pass / calls). Then sequential streams: time to
first byte and to the last byte of a stream, miss against hit.

    .venv/bin/python bench/cache_hit.py [--rate 200] [--duration 10] [--quick]
        [--redis redis://127.0.0.1:6379/5]

``--redis`` runs the gateway with ``REDIS_URL`` (answers, counters and stamps in Redis; use a
database of its own); without it the answers are kept in process.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import gateway_overhead as harness  # noqa: E402 - the sibling benchmark's helpers

MAX_IN_FLIGHT = 2000


async def open_loop(url: str, headers: dict, bodies, rate: float, duration: float, warmup: float):
    """wrk2-style constant rate, each request's body from ``bodies()`` (``harness.open_loop``
    sends one fixed body). Returns (service times ms, errors, dropped, achieved rate, calls)."""
    import aiohttp

    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def one(body: bytes, record: bool, out: list, errs: list):
            sent = time.perf_counter()
            try:
                async with session.post(url, data=body, headers=headers) as r:
                    await r.read()
                    ok = r.status == 200
            except Exception:  # noqa: BLE001 - counted as an error
                ok = False
            if record:
                (out if ok else errs).append((time.perf_counter() - sent) * 1000)

        result = None
        for phase, secs in (("warmup", warmup), ("measure", duration)):
            record = phase == "measure"
            times: list[float] = []
            errors: list[float] = []
            tasks: set = set()
            dropped = 0
            n = int(rate * secs)
            t0 = time.perf_counter()
            for i in range(n):
                delay = t0 + i / rate - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                if len(tasks) >= MAX_IN_FLIGHT:
                    dropped += 1
                    continue
                task = asyncio.create_task(one(bodies(), record, times, errors))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            if tasks:
                await asyncio.wait(tasks, timeout=15)
            elapsed = time.perf_counter() - t0
            result = (times, len(errors), dropped, (len(times) + len(errors)) / elapsed, n)
        return result


async def streams(url: str, headers: dict, bodies, n: int) -> tuple[list[float], list[float]]:
    """Time to first body byte and to the stream's end, for n sequential streams."""
    import aiohttp

    first, whole = [], []
    async with aiohttp.ClientSession() as session:
        for _ in range(n):
            sent = time.perf_counter()
            async with session.post(url, data=bodies(), headers=headers) as r:
                got = None
                async for _line in r.content:
                    if got is None:
                        got = time.perf_counter()
                first.append((got - sent) * 1000)
                whole.append((time.perf_counter() - sent) * 1000)
    return first, whole


def body_of(text: str, *, stream: bool = False) -> bytes:
    body = dict(harness.BODY, messages=[{"role": "user", "content": text}], temperature=0)
    if stream:
        body.update(stream=True, stream_options={"include_usage": True})
    return json.dumps(body).encode()


def fresh(stream: bool = False):
    return lambda: body_of(
        f"Give me one sentence about cost control. [{uuid.uuid4().hex}]", stream=stream
    )


def same(text: str, stream: bool = False):
    data = body_of(text, stream=stream)
    return lambda: data


def policy_on(secret_org: str = "bench") -> None:
    """The org-wide policy (Django is set up by ``harness.build_world``)."""
    from teams.cache_services import cache_policy_create
    from teams.models import Organization

    cache_policy_create(actor=None, org=Organization.objects.get(slug=secret_org), scope="org")


def _redis_forget(url: str) -> None:
    """The bench organisation's answers out of Redis (its namespace: id and creation time)."""
    import redis

    from teams.models import Organization

    org = Organization.objects.filter(slug="bench").first()
    if org is None:
        return
    client = redis.Redis.from_url(url)
    space = f"{org.pk}.{int(org.created_at.timestamp() * 1_000_000)}"
    for key in client.scan_iter(f"finops:rc:{{{space}}}:*", count=1000):
        client.delete(key)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--streams", type=int, default=100)
    parser.add_argument("--redis", default="", help="REDIS_URL for the gateway (a DB of its own)")
    parser.add_argument("--quick", action="store_true", help="short passes (a smoke run)")
    args = parser.parse_args()
    if args.quick:
        args.duration, args.warmup, args.streams = 2.0, 0.5, 20

    tmp = Path(tempfile.mkdtemp(prefix="finops-bench-cache-"))
    env = dict(os.environ, PYTHONUNBUFFERED="1", BENCH_SIM_KEY="sk-sim", FINOPS_VAR_DIR=str(tmp))
    env.pop("REDIS_URL", None)
    if args.redis:
        env["REDIS_URL"] = args.redis
    os.environ.pop("REDIS_URL", None)  # the world is built without Redis stamps either way
    sim_port, cached_port = harness.free_port(), harness.free_port()
    procs: list[subprocess.Popen] = []
    hz = os.sysconf("SC_CLK_TCK")
    try:
        sim = harness.spawn_simulator(env, sim_port, "--chunk-delay-ms", "10", "--chunks", "20")
        procs.append(sim)
        sim_url = f"http://127.0.0.1:{sim_port}"
        secret = harness.build_world(tmp, sim_url)
        auth = {"authorization": f"Bearer {secret}", "content-type": "application/json"}
        import httpx

        os.sched_setaffinity(0, {1})

        import aiohttp
        import uvicorn

        print("# LLM FinOps response cache: hit path against a miss")
        store = f"Redis ({args.redis})" if args.redis else "in process"
        print(
            f"python {platform.python_version()}, uvicorn {uvicorn.__version__}, aiohttp "
            f"{aiohttp.__version__}; SQLite ledger, metering on; answers {store}"
        )
        print(f"request: {body_of('…').decode()}")
        print("placement: gateway on core 0 (1 uvicorn worker); simulator + generator on core 1")
        print(f"open loop at {args.rate:.0f} req/s, {args.duration:.0f} s per pass\n")

        rows = {}
        direct_headers = {"authorization": "Bearer sk-sim", "content-type": "application/json"}
        direct = f"{sim_url}/v1/chat/completions"
        rows["direct"] = (asyncio.run(open_loop(direct, direct_headers, fresh(), args.rate,
                                                 args.duration, args.warmup)), None)  # fmt: skip

        def gateway_pass(port: int, bodies, label: str, pid: int) -> None:
            harness.wait_idle(pid)
            before = harness.cpu_ticks(pid)
            url = f"http://127.0.0.1:{port}/v1/chat/completions"
            result = asyncio.run(
                open_loop(url, auth, bodies, args.rate, args.duration, args.warmup)
            )
            used = (harness.cpu_ticks(pid) - before) / hz
            calls = int(args.rate * (args.duration + args.warmup))
            rows[label] = (result, used / calls * 1000)

        # no cache: the same gateway build, no policy (one request per prompt, as the miss)
        gw = harness.spawn_gateway(env, cached_port)
        procs.append(gw)
        gateway_pass(cached_port, fresh(), "no cache", gw.pid)
        gw.send_signal(signal.SIGTERM)
        gw.wait(20)
        procs.remove(gw)

        policy_on()
        gw = harness.spawn_gateway(env, cached_port)
        procs.append(gw)
        url = f"http://127.0.0.1:{cached_port}/v1/chat/completions"
        hot = "Give me one sentence about cost control."
        first = httpx.post(url, content=same(hot)(), headers=auth, timeout=10)
        assert first.headers.get("x-finops-cache") == "miss", first.headers
        second = httpx.post(url, content=same(hot)(), headers=auth, timeout=10)
        assert second.headers.get("x-finops-cache") == "hit", second.headers
        gateway_pass(cached_port, fresh(), "miss", gw.pid)
        gateway_pass(cached_port, same(hot), "hit", gw.pid)

        print(
            "| pass | p50 / p90 / p99 ms | achieved req/s | errors | dropped | gateway CPU ms/call |"
        )
        print("|---|---|---|---|---|---|")
        figures = {}
        for label, ((times, errors, dropped, achieved, _n), cpu) in rows.items():
            p = [harness.pct(times, q) for q in (50, 90, 99)]
            figures[label] = p
            cpu_text = "-" if cpu is None else f"{cpu:.3f}"
            print(f"| {label} | {p[0]:.2f} / {p[1]:.2f} / {p[2]:.2f} | {achieved:.0f} | {errors} | "
                  f"{dropped} | {cpu_text} |")  # fmt: skip
        d, n, m, h = (figures[k] for k in ("direct", "no cache", "miss", "hit"))
        cpu = {k: v[1] for k, v in rows.items()}
        print()
        print(f"a miss over no cache (lookup + store): p50 {m[0] - n[0]:+.2f} ms, p99 "
              f"{m[2] - n[2]:+.2f} ms; CPU {cpu['miss'] - cpu['no cache']:+.3f} ms/call")  # fmt: skip
        print(f"a hit against a miss: p50 {h[0] - m[0]:+.2f} ms, p99 {h[2] - m[2]:+.2f} ms; "
              f"CPU {cpu['hit'] - cpu['miss']:+.3f} ms/call")  # fmt: skip
        print(f"a hit against the upstream itself (direct): p50 {h[0] - d[0]:+.2f} ms, p99 "
              f"{h[2] - d[2]:+.2f} ms")  # fmt: skip

        harness.wait_idle(gw.pid)
        stream_url = url
        warm = body_of(hot, stream=True)
        httpx.post(stream_url, content=warm, headers=auth, timeout=10)
        miss_fb, miss_all = asyncio.run(streams(stream_url, auth, fresh(stream=True), args.streams))
        hit_fb, hit_all = asyncio.run(streams(stream_url, auth, same(hot, True), args.streams))
        med = statistics.median
        print(f"\nstreams ({args.streams} sequential; the simulator sends 20 chunks 10 ms apart):")
        print(f"  first byte  p50 miss {med(miss_fb):.2f} ms, hit {med(hit_fb):.2f} ms "
              f"(p99 {harness.pct(miss_fb, 99):.2f} / {harness.pct(hit_fb, 99):.2f})")  # fmt: skip
        print(f"  whole stream p50 miss {med(miss_all):.2f} ms, hit {med(hit_all):.2f} ms "
              f"(p99 {harness.pct(miss_all, 99):.2f} / {harness.pct(hit_all, 99):.2f})")  # fmt: skip
        print(f"\ngateway peak RSS: {harness.peak_rss_mb(gw.pid):.0f} MB")
    finally:
        if args.redis:
            _redis_forget(args.redis)
        for p in reversed(procs):
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
