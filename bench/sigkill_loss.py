"""How many successful calls a SIGKILLed gateway can lose from the ledger (issue: durability).

Drives the gateway with N concurrent clients, SIGKILLs it mid-load, restarts it on the same
database and spool (the restart replays any spool file left), then counts request ids a client
saw succeed that never reached the ledger. Run with the embedded SQLite default or set
DATABASE_URL. Repeats a few times and prints each count with the flush interval used.

    .venv/bin/python bench/sigkill_loss.py [--runs 5] [--flush 0.25]
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gateway_overhead import BODY, ROOT, build_world, free_port, wait_http  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--flush", default="0.25")
    parser.add_argument("--clients", type=int, default=16)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="finops-sigkill-"))
    env = dict(
        os.environ,
        BENCH_SIM_KEY="sk-sim",
        FINOPS_VAR_DIR=str(tmp),
        FINOPS_LEDGER_FLUSH_SECONDS=args.flush,
    )
    sim_port = free_port()
    sim = subprocess.Popen(
        [sys.executable, "-m", "simulator", "--port", str(sim_port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_http(f"http://127.0.0.1:{sim_port}/_sim/health")
        secret = build_world(tmp, f"http://127.0.0.1:{sim_port}")
        from gateway.models import UsageEvent

        print(
            f"# SIGKILL under load: {args.clients} closed-loop clients, ledger flush every {args.flush} s"
        )
        for run in range(1, args.runs + 1):
            port = free_port()
            gw = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "finops.serve",
                    "--port",
                    str(port),
                    "--no-access-log",
                    "--log-level",
                    "warning",
                ],
                cwd=ROOT,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            wait_http(f"http://127.0.0.1:{port}/healthz")
            seen: list[str] = []
            stop = threading.Event()

            def client(port=port, seen=seen, stop=stop):
                with httpx.Client(timeout=5) as c:
                    while not stop.is_set():
                        try:
                            r = c.post(
                                f"http://127.0.0.1:{port}/v1/chat/completions",
                                json=BODY,
                                headers={"authorization": f"Bearer {secret}"},
                            )
                        except httpx.HTTPError:
                            continue
                        if r.status_code == 200:
                            seen.append(r.headers["x-request-id"])

            threads = [threading.Thread(target=client) for _ in range(args.clients)]
            for t in threads:
                t.start()
            time.sleep(3)
            gw.send_signal(signal.SIGKILL)
            gw.wait()
            stop.set()
            for t in threads:
                t.join(10)
            # a restart replays what the killed process spooled; give its writer a moment
            gw = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "finops.serve",
                    "--port",
                    str(port),
                    "--no-access-log",
                    "--log-level",
                    "warning",
                ],
                cwd=ROOT,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            wait_http(f"http://127.0.0.1:{port}/healthz")
            time.sleep(1)
            gw.send_signal(signal.SIGTERM)
            gw.wait(20)
            found = set(
                UsageEvent.objects.filter(request_id__in=seen).values_list("request_id", flat=True)
            )
            lost = len(set(seen) - found)
            print(
                f"run {run}: {len(seen)} calls succeeded in 3 s, {lost} missing from the ledger after SIGKILL"
            )
    finally:
        sim.terminate()
        sim.wait(10)


if __name__ == "__main__":
    main()
