"""The soak in short (``bench/soak.py``, ~25 s at 40 req/s): two gateway processes, PostgreSQL,
Redis, a Celery worker and beat rolling up during the load, budgets and rate limits refusing
some calls. The books must balance: one ledger row per attempt the gateways reported, rollups
equal to the ledger exactly, no error other than the intended refusals.

Latency and memory are the benchmark's figures (wall clock, a shared machine): not asserted.
The soak runs as a subprocess with its own throwaway database (``soak_<pid>``, next to
``DATABASE_URL``) and its own Redis db, so it touches neither the test database nor the
suite's Redis keys.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [
    pytest.mark.live,
    pytest.mark.skipif(
        not settings.DATABASES["default"]["ENGINE"].endswith("postgresql")
        or not os.environ.get("DATABASE_URL"),
        reason="the soak needs DATABASE_URL on PostgreSQL",
    ),
    pytest.mark.skipif(not settings.REDIS_URL, reason="the soak needs REDIS_URL"),
]


def test_short_soak_keeps_ledger_and_rollups_exact():
    env = dict(os.environ)
    for name in ("DJANGO_SETTINGS_MODULE", "PROMETHEUS_MULTIPROC_DIR", "FINOPS_VAR_DIR"):
        env.pop(name, None)
    cmd = [sys.executable, "bench/soak.py", "--duration", "25", "--rate", "40"]
    cmd += ["--warmup", "3", "--direct-seconds", "0", "--json"]
    done = subprocess.run(  # the soak bounds itself; this is a backstop
        cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=150, check=False
    )
    assert done.stdout.strip(), done.stderr[-4000:]
    summary = json.loads(done.stdout)
    requests, ledger, rollup = summary["requests"], summary["ledger"], summary["rollup"]
    context = json.dumps({k: summary[k] for k in ("requests", "ledger", "rollup")}, indent=1)

    assert requests["sent_soak"] == 25 * 40, context
    assert requests["unintended"] == {}, context
    assert requests["succeeded"] > 0.5 * (requests["sent_soak"] + requests["sent_warmup"]), context
    # one ledger row per attempt the gateways reported; refused calls leave none
    assert ledger["rows"] == ledger["attempts_reported"], context
    assert ledger["attempts_on_refused"] == 0, context
    assert ledger["spool_bytes_left"] == 0, context
    # the final rollup (after the periodic ones during the load) equals the ledger exactly
    assert rollup["exact"], context
    assert rollup["hourly"] == rollup["ledger"] == rollup["daily"], context
    assert int(rollup["ledger"]["attempts"]) == ledger["rows"], context
    assert rollup["periodic_runs_with_events"] >= 1, context
    assert summary["metrics"]["ledger_buffer_events"] == 0, context
    assert all(n == 0 for n in summary["log_errors"].values()), summary["log_errors"]
