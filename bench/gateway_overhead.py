"""Gateway overhead benchmark, measured as docs/benchmarking.md describes.

Placement: the gateway (one uvicorn worker, metering on, SQLite ledger) alone on core 0; the
upstream simulator and this load generator on core 1. "Direct" passes send the same requests to
the simulator with nothing on core 0. Overhead = gateway percentile - direct percentile.

Load: open loop (request i is sent at t0 + i/rate whatever is in flight); service time =
response end - actual send. Saturation: wrk -c32 (closed loop) when installed. Streaming: time
to first body byte and to first content token, direct vs gateway.

    .venv/bin/python bench/gateway_overhead.py [--rates 100,400] [--duration 15] [--quick]
        [--route chat|responses|messages] [--prompt-kb N]

``--route`` picks the inbound format, each served natively by its upstream (Responses on a
provider with ``responses_api: native``, Messages on an Anthropic provider), so the overhead is
the gateway's own; ``--prompt-kb`` pads the prompt to N KB (a coding agent's long context).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
BODY = {
    "model": "gpt-4o-mini",
    "messages": [{"role": "user", "content": "Give me one sentence about cost control."}],
    "max_tokens": 16,
}
MAX_IN_FLIGHT = 2000
ROUTES = ("chat", "responses", "messages")


def route_request(route: str, prompt_kb: int) -> tuple[str, dict, dict]:
    """(path, body, extra direct headers) of one request in ``route``'s format."""
    text = BODY["messages"][0]["content"]
    if prompt_kb:
        filler = " The quarter's model spend rose on every team, led by support traffic."
        text = (text + filler * (prompt_kb * 1024 // len(filler) + 1))[: prompt_kb * 1024]
    if route == "responses":
        return "/v1/responses", {"model": "gpt-4o-mini", "input": text, "max_output_tokens": 16}, {}
    if route == "messages":
        body = {
            "model": "claude-sonnet",
            "max_tokens": 16,
            "messages": [{"role": "user", "content": text}],
        }
        return "/v1/messages", body, {"anthropic-version": "2023-06-01"}
    return "/v1/chat/completions", dict(BODY, messages=[{"role": "user", "content": text}]), {}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout: float = 30) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


def spawn_simulator(env: dict, port: int, *extra: str, core: str | None = "1") -> subprocess.Popen:
    """The upstream simulator, pinned next to the load generator."""
    pin = ["taskset", "-c", core] if core else []
    cmd = [*pin, sys.executable, "-m", "simulator", "--port", str(port), *extra]
    proc = subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )  # noqa: S603
    wait_http(f"http://127.0.0.1:{port}/_sim/health")
    return proc


def spawn_gateway(env: dict, port: int, *, core: str | None = "0") -> subprocess.Popen:
    """One uvicorn worker serving the whole app, alone on its core."""
    pin = ["taskset", "-c", core] if core else []
    cmd = [
        *pin,
        sys.executable,
        "-m",
        "finops.serve",
        "--port",
        str(port),
        "--workers",
        "1",
        "--no-access-log",
        "--log-level",
        "warning",
        "--loop",
        "uvloop",
        "--http",
        "httptools",
    ]
    proc = subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )  # noqa: S603
    wait_http(f"http://127.0.0.1:{port}/healthz")
    return proc


def cpu_ticks(pid: int) -> int:
    """utime+stime of a process and its children, in clock ticks (from /proc)."""
    total = 0
    pids = [pid]
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        pids += [int(c) for c in children]
    except OSError:
        pass
    for p in pids:
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except OSError:
            pass
    return total


def peak_rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def wait_idle(pid: int, *, threshold: float = 0.05, timeout: float = 20) -> None:
    """Wait until the gateway's CPU drops back to idle between passes."""
    hz = os.sysconf("SC_CLK_TCK")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        a = cpu_ticks(pid)
        time.sleep(0.5)
        if (cpu_ticks(pid) - a) / hz / 0.5 < threshold:
            return


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    k = min(len(values) - 1, max(0, round(p / 100 * (len(values) - 1))))
    return values[k]


async def open_loop(
    url: str, headers: dict, body: bytes, rate: float, duration: float, warmup: float
):
    """wrk2-style constant rate. Returns (service times ms, errors, dropped, achieved rate)."""
    import aiohttp

    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def one(record: bool, out: list, errs: list):
            sent = time.perf_counter()
            try:
                async with session.post(url, data=body, headers=headers) as r:
                    await r.read()
                    ok = r.status == 200
            except Exception:  # noqa: BLE001 - counted as an error
                ok = False
            if record:
                (out if ok else errs).append((time.perf_counter() - sent) * 1000)

        for phase, secs in (("warmup", warmup), ("measure", duration)):
            record = phase == "measure"
            times: list[float] = []
            errors: list[float] = []
            tasks: set = set()
            dropped = 0
            n = int(rate * secs)
            t0 = time.perf_counter()
            for i in range(n):
                target = t0 + i / rate
                delay = target - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                if len(tasks) >= MAX_IN_FLIGHT:
                    dropped += 1
                    continue
                task = asyncio.create_task(one(record, times, errors))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            if tasks:
                await asyncio.wait(tasks, timeout=15)
            elapsed = time.perf_counter() - t0
        return times, len(errors), dropped, (len(times) + len(errors)) / elapsed


async def stream_ttfb(url: str, headers: dict, n: int) -> tuple[list[float], list[float]]:
    """Time to first body byte and to first content token for n sequential streams."""
    import aiohttp

    body = json.dumps({**BODY, "stream": True}).encode()
    first_byte, first_token = [], []
    async with aiohttp.ClientSession() as session:
        for _ in range(n):
            sent = time.perf_counter()
            async with session.post(url, data=body, headers=headers) as r:
                got_byte = None
                async for line in r.content:
                    now = time.perf_counter()
                    if got_byte is None:
                        got_byte = now
                        first_byte.append((now - sent) * 1000)
                    if b'"content":"' in line and b'"content":""' not in line:
                        first_token.append((now - sent) * 1000)
                        break
                async for _ in r.content:
                    pass
    return first_byte, first_token


def wrk_saturation(url: str, headers: dict, body: bytes, seconds: int) -> dict | None:
    if not shutil.which("wrk"):
        return None
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as fh:
        fh.write('wrk.method = "POST"\n')
        fh.write(f"wrk.body = {json.dumps(body.decode())}\n")
        for k, v in headers.items():
            fh.write(f'wrk.headers["{k}"] = "{v}"\n')
        script = fh.name
    out = subprocess.run(  # noqa: S603
        [
            "taskset",
            "-c",
            "1",
            "wrk",
            "-t1",
            "-c32",
            f"-d{seconds}s",
            "-s",
            script,
            "--latency",
            url,
        ],
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    os.unlink(script)
    result = {"raw": out}
    for line in out.splitlines():
        if line.startswith("Requests/sec:"):
            result["rps"] = float(line.split()[1])
        if "Non-2xx" in line:
            result["non2xx"] = int(line.split()[-1])
    return result


def build_world(var_dir: Path, sim_url: str) -> str:
    os.environ["FINOPS_VAR_DIR"] = str(var_dir)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "finops.settings")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from decimal import Decimal

    from gateway.models import LLMModel, ModelPrice, Provider
    from teams.models import Organization, Team
    from teams.services import key_mint

    org = Organization.objects.create(slug="bench", name="Bench")
    team = Team.objects.create(org=org, slug="bench", name="Bench")
    provider = Provider.objects.create(
        org=org,
        slug="sim",
        kind="openai",
        base_url=f"{sim_url}/v1",
        api_key_env="BENCH_SIM_KEY",
        responses_api="native",
    )
    claude = Provider.objects.create(
        org=org, slug="sim-claude", kind="anthropic", base_url=sim_url, api_key_env="BENCH_SIM_KEY"
    )
    for name, upstream, host in (
        ("gpt-4o-mini", "gpt-4o-mini", provider),
        ("claude-sonnet", "claude-sonnet-4-5", claude),
    ):
        model = LLMModel.objects.create(org=org, provider=host, name=name, upstream_model=upstream)
        ModelPrice.objects.create(
            model=model, input_usd_per_mtok=Decimal("0.15"), output_usd_per_mtok=Decimal("0.60")
        )
    return key_mint(team=team, name="bench").secret


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rates", default="100,400")
    parser.add_argument("--duration", type=float, default=15.0)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--saturation-seconds", type=int, default=10)
    parser.add_argument("--streams", type=int, default=200)
    parser.add_argument(
        "--quick", action="store_true", help="short passes (a smoke run, not figures)"
    )
    parser.add_argument(
        "--env", action="append", default=[], help="KEY=VALUE for the gateway process"
    )
    parser.add_argument("--route", choices=ROUTES, default="chat")
    parser.add_argument("--prompt-kb", type=int, default=0, help="pad the prompt to N KB")
    parser.add_argument("--no-store", action="store_true", help="responses route: send store=false")
    args = parser.parse_args()
    if args.quick:
        args.duration, args.warmup, args.saturation_seconds, args.streams = 3.0, 1.0, 3, 30
    rates = [float(r) for r in args.rates.split(",")]

    tmp = Path(tempfile.mkdtemp(prefix="finops-bench-"))
    env = dict(os.environ, PYTHONUNBUFFERED="1", BENCH_SIM_KEY="sk-sim", FINOPS_VAR_DIR=str(tmp))
    env.update(item.split("=", 1) for item in args.env)
    sim_port, gw_port = free_port(), free_port()
    procs: list[subprocess.Popen] = []
    try:
        sim = spawn_simulator(env, sim_port, "--chunk-delay-ms", "10", "--chunks", "20")
        procs.append(sim)
        sim_url = f"http://127.0.0.1:{sim_port}"
        secret = build_world(tmp, sim_url)
        gw = spawn_gateway(env, gw_port)
        procs.append(gw)
        # the generator shares core 1 with the simulator
        os.sched_setaffinity(0, {1})

        path, request_body, direct_headers = route_request(args.route, args.prompt_kb)
        if args.no_store and args.route == "responses":
            request_body["store"] = False
        direct = (
            f"{sim_url}{path}",
            {
                "authorization": "Bearer sk-sim",
                "x-api-key": "sk-sim",
                "content-type": "application/json",
                **direct_headers,
            },
        )
        gateway = (
            f"http://127.0.0.1:{gw_port}{path}",
            {"authorization": f"Bearer {secret}", "content-type": "application/json"},
        )
        body = json.dumps(request_body).encode()

        import aiohttp
        import httpx
        import uvicorn

        print("# LLM FinOps gateway overhead")
        print(
            f"python {platform.python_version()}, uvicorn {uvicorn.__version__}, upstream client aiohttp {aiohttp.__version__} "
            f"(httpx {httpx.__version__} installed), database SQLite (embedded ledger), metering on"
        )
        shown = body.decode() if len(body) < 400 else f"{body[:200].decode()}… ({len(body)} bytes)"
        print(f"route: {args.route} ({path}); request body: {shown}")
        print("placement: gateway on core 0 (1 uvicorn worker); simulator + generator on core 1\n")

        print(
            "| rate req/s | direct p50/p90/p99 ms | gateway p50/p90/p99 ms | added p50 / p99 ms | achieved (gw) | errors | dropped |"
        )
        print("|---|---|---|---|---|---|---|")
        hz = os.sysconf("SC_CLK_TCK")
        for rate in rates:
            d_times, d_err, d_drop, _ = asyncio.run(
                open_loop(*direct, body, rate, args.duration, args.warmup)
            )
            wait_idle(gw.pid)
            g_times, g_err, g_drop, g_rate = asyncio.run(
                open_loop(*gateway, body, rate, args.duration, args.warmup)
            )
            wait_idle(gw.pid)
            d = [pct(d_times, p) for p in (50, 90, 99)]
            g = [pct(g_times, p) for p in (50, 90, 99)]
            print(
                f"| {rate:.0f} | {d[0]:.2f} / {d[1]:.2f} / {d[2]:.2f} | {g[0]:.2f} / {g[1]:.2f} / {g[2]:.2f} | "
                f"+{g[0] - d[0]:.2f} / +{g[2] - d[2]:.2f} | {g_rate:.0f} | {g_err} (direct {d_err}) | {g_drop} (direct {d_drop}) |"
            )

        print()
        before = cpu_ticks(gw.pid)
        t = time.perf_counter()
        sat = wrk_saturation(gateway[0], gateway[1], body, args.saturation_seconds)
        elapsed = time.perf_counter() - t
        used = (cpu_ticks(gw.pid) - before) / hz
        wait_idle(gw.pid)
        dsat = wrk_saturation(direct[0], direct[1], body, args.saturation_seconds)
        if sat:
            rps = sat.get("rps", float("nan"))
            cpu_ms = used / max(1, rps * elapsed) * 1000
            print(
                f"saturation (wrk -t1 -c32 on core 1, {args.saturation_seconds}s): gateway {rps:.0f} req/s "
                f"(non-2xx {sat.get('non2xx', 0)}), direct {dsat.get('rps', float('nan')):.0f} req/s"
            )
            print(
                f"gateway CPU per request at saturation: {cpu_ms:.3f} ms ({used:.1f} CPU-s over {elapsed:.1f} s)"
            )
        else:
            print("saturation: wrk not installed (apt-get install wrk)")
        wait_idle(gw.pid)

        if args.route != "chat" or args.prompt_kb:
            print(f"\ngateway peak RSS: {peak_rss_mb(gw.pid):.0f} MB")
            return  # the streaming pass is the chat route's, with the short prompt
        d_fb, d_ft = asyncio.run(stream_ttfb(direct[0], direct[1], args.streams))
        g_fb, g_ft = asyncio.run(stream_ttfb(gateway[0], gateway[1], args.streams))
        print(f"\nstreaming ({args.streams} sequential streams, 20 chunks 10 ms apart):")
        print(
            f"  time to first byte   p50 direct {statistics.median(d_fb):.2f} ms, gateway {statistics.median(g_fb):.2f} ms "
            f"-> +{statistics.median(g_fb) - statistics.median(d_fb):.2f} ms (p99 +{pct(g_fb, 99) - pct(d_fb, 99):.2f})"
        )
        print(
            f"  time to first token  p50 direct {statistics.median(d_ft):.2f} ms, gateway {statistics.median(g_ft):.2f} ms "
            f"-> +{statistics.median(g_ft) - statistics.median(d_ft):.2f} ms"
        )
        print(f"\ngateway peak RSS: {peak_rss_mb(gw.pid):.0f} MB")
    finally:
        for p in reversed(procs):
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
