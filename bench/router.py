"""Cost-router decision cost: how long the heuristic and the learned scorer take per prompt.

In process: several thousand decisions (``resolve()`` on ``router:smart``: features, score,
plan) over a realistic mix — short chats, code, maths, analyses, multi-turn conversations and
long documents of 6k-9k tokens — timed one by one with ``perf_counter_ns``; p50 / p90 / p99 /
max in µs, overall and per kind. The learned scorer's model is trained first on a labelled
sample of the same mix (2**18 buckets, as in production).

``--e2e`` adds the end-to-end cost through the gateway, measured as docs/benchmarking.md
describes (bench/gateway_overhead.py's helpers: gateway alone on core 0, simulator and open-loop
generator on core 1): the same body sent as ``gpt-4o-mini`` and as ``router:smart``; added =
router percentile - plain percentile.

    .venv/bin/python bench/router.py [--n 5000] [--e2e [--rate 100 --duration 10] [--no-store]]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, max(0, round(p / 100 * (len(values) - 1))))]


def row(name: str, values: list[float], cpu: list[float]) -> str:
    return (
        f"| {name} | {len(values)} | {pct(values, 50):.0f} | {pct(values, 90):.0f} | "
        f"{pct(values, 99):.0f} | {max(values):.0f} | {pct(cpu, 50):.0f} | {pct(cpu, 99):.0f} |"
    )


def in_process(n: int, seed: int) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "finops.settings")
    import numpy as np

    from gateway.providers.base import CHAT
    from gateway.records import ModelRecord, OrgConfig, ProviderRecord, RouterRecord
    from gateway.resolve import resolve
    from gateway.routing.samples import label, prompt_mix
    from gateway.routing.scorers import scorer_build
    from gateway.routing.train import evaluate, train_linear

    train = prompt_mix(3000, seed=seed + 1)
    t = time.perf_counter()
    model = train_linear([m for _, m in train], [label(k) for k, _ in train])
    train_s = time.perf_counter() - t
    mix = prompt_mix(n, seed=seed)
    provider = ProviderRecord(
        slug="p", kind="openai", base_url="http://x", api_key="", api_version=""
    )

    def record(name: str) -> ModelRecord:
        return ModelRecord(
            name=name,
            upstream_model=name,
            mode="chat",
            max_output_tokens=None,
            provider=provider,
            prices=(),
        )

    strong, weak = record("gpt-4o"), record("gpt-4o-mini")
    print("# Cost router: decision cost in process")
    print(
        f"python {platform.python_version()}, numpy {np.__version__}; {n} prompts "
        f"(seed {seed}); the learned model trained on 3000 prompts in {train_s:.1f} s, "
        f"{int(np.count_nonzero(model.weights))} non-zero weights of {len(model.weights)}"
    )
    kinds = defaultdict(int)
    for kind, _ in mix:
        kinds[kind] += 1
    print("mix: " + ", ".join(f"{k} {v}" for k, v in sorted(kinds.items())))
    print(
        "machine: 2 cores shared with other jobs while measured: wall times include being "
        "descheduled (upper bounds); CPU = this thread's CPU time per decision\n"
    )
    print("| scorer / kind | decisions | wall p50 µs | p90 | p99 | max | CPU p50 µs | CPU p99 |")
    print("|---|---|---|---|---|---|---|---|")
    for kind_name in ("heuristic", "learned"):
        impl = scorer_build(kind_name, model=model)
        router = RouterRecord(
            name="smart", strong=strong, weak=weak, scorer=kind_name, threshold=0.5, impl=impl
        )
        config = OrgConfig(
            org_id=1,
            models={"gpt-4o": strong, "gpt-4o-mini": weak},
            groups={},
            routers={"smart": router},
        )
        for _, messages in mix[:200]:  # warm-up
            resolve(config, "router:smart", api=CHAT, messages=messages)
        times: list[float] = []
        cpus: list[float] = []
        per_kind: dict[str, list[float]] = defaultdict(list)
        per_kind_cpu: dict[str, list[float]] = defaultdict(list)
        clock, cpu_clock = time.perf_counter_ns, time.thread_time_ns
        for kind, messages in mix:
            c0, t0 = cpu_clock(), clock()
            resolve(config, "router:smart", api=CHAT, messages=messages)
            us, cpu = (clock() - t0) / 1000, (cpu_clock() - c0) / 1000
            times.append(us)
            cpus.append(cpu)
            per_kind[kind].append(us)
            per_kind_cpu[kind].append(cpu)
        print(row(f"**{kind_name}**, all", times, cpus))
        for kind in sorted(per_kind):
            print(row(f"{kind_name}, {kind}", per_kind[kind], per_kind_cpu[kind]))
    held_out = prompt_mix(1000, seed=seed + 2)
    x, y = [m for _, m in held_out], [label(k) for k, _ in held_out]
    print("\nquality on 1000 held-out prompts of the mix (label: the kind needs the strong model):")
    for kind_name in ("random", "heuristic", "learned"):
        e = evaluate(scorer_build(kind_name, model=model, seed=1), x, y)
        print(
            f"- {kind_name}: AUC {e['auc']:.3f}, accuracy at 0.5 {e['accuracy']:.3f}, "
            f"strong share at 0.5 {e['strong_share']:.2f}"
        )


def end_to_end(rate: float, duration: float, warmup: float, store: bool) -> None:
    from bench.gateway_overhead import (
        build_world,
        free_port,
        open_loop,
        spawn_gateway,
        spawn_simulator,
        wait_idle,
    )

    tmp = Path(tempfile.mkdtemp(prefix="finops-bench-router-"))
    env = dict(os.environ, PYTHONUNBUFFERED="1", BENCH_SIM_KEY="sk-sim", FINOPS_VAR_DIR=str(tmp))
    sim_port, gw_port = free_port(), free_port()
    procs: list[subprocess.Popen] = []
    try:
        procs.append(spawn_simulator(env, sim_port))
        secret = build_world(tmp, f"http://127.0.0.1:{sim_port}")
        from decimal import Decimal

        from gateway.models import LLMModel, ModelPrice, Provider, Router

        mini = LLMModel.objects.get(name="gpt-4o-mini")
        big = LLMModel.objects.create(
            org=mini.org,
            provider=Provider.objects.get(org=mini.org),
            name="gpt-4o",
            upstream_model="gpt-4o",
        )
        ModelPrice.objects.create(
            model=big, input_usd_per_mtok=Decimal("2.5"), output_usd_per_mtok=Decimal("10")
        )
        Router.objects.create(
            org=mini.org, name="smart", strong=big, weak=mini, store_prompts=store
        )
        gw = spawn_gateway(env, gw_port)
        procs.append(gw)
        os.sched_setaffinity(0, {1})
        url = f"http://127.0.0.1:{gw_port}/v1/chat/completions"
        headers = {"authorization": f"Bearer {secret}", "content-type": "application/json"}
        import random

        from gateway.routing.samples import prompt_make

        bodies = {
            "short chat": [{"role": "user", "content": "Give me one sentence about cost control."}],
            "long document (~8k tokens)": prompt_make(random.Random(1), "long"),
        }
        print(
            f"\n# End to end through the gateway (open loop, {rate:.0f} req/s, {duration:.0f} s, "
            f"prompt sample {'on' if store else 'off'})"
        )
        print(
            "gateway on core 0 (1 uvicorn worker), simulator + generator on core 1; "
            "machine shared with other jobs\n"
        )
        print("| prompt | model | p50 ms | p90 ms | p99 ms | errors | added p50 / p99 ms |")
        print("|---|---|---|---|---|---|---|")
        for name, messages in bodies.items():
            base = None
            for model in ("gpt-4o-mini", "router:smart"):
                body = json.dumps({"model": model, "messages": messages, "max_tokens": 16}).encode()
                times, errors, _, _ = asyncio.run(
                    open_loop(url, headers, body, rate, duration, warmup)
                )
                wait_idle(gw.pid)
                p = [pct(times, q) for q in (50, 90, 99)]
                added = "" if base is None else f"+{p[0] - base[0]:.2f} / +{p[2] - base[2]:.2f}"
                base = base or p
                print(
                    f"| {name} | {model} | {p[0]:.2f} | {p[1]:.2f} | {p[2]:.2f} | {errors} | {added} |"
                )
    finally:
        for proc in procs:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=5000, help="decisions per scorer")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--e2e", action="store_true", help="also through a live gateway")
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--no-store", action="store_true", help="router without its prompt sample")
    args = parser.parse_args()
    if args.e2e:
        end_to_end(
            args.rate, args.duration, args.warmup, not args.no_store
        )  # sets up Django for its world first
    else:
        import django

        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "finops.settings")
        os.environ.setdefault("FINOPS_VAR_DIR", tempfile.mkdtemp(prefix="finops-bench-router-"))
        django.setup()
    in_process(args.n, args.seed)


if __name__ == "__main__":
    main()
