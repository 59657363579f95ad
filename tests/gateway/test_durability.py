"""No usage is ever lost: SIGTERM drains the ledger; a database outage spools and replays once."""

from __future__ import annotations

import signal
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from django.db import connection

from gateway.models import UsageEvent
from tests.live import live_database_url, start_app
from tests.tcp_proxy import TcpProxy

pytestmark = pytest.mark.live

BODY = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "durable?"}]}


def _hammer(url: str, key: str, stop: threading.Event, seen: list, workers: int = 8) -> None:
    """Send calls until told to stop; remember the request id of every call that succeeded."""

    def loop():
        with httpx.Client(timeout=10) as client:
            while not stop.is_set():
                try:
                    r = client.post(
                        f"{url}/v1/chat/completions",
                        json=BODY,
                        headers={"authorization": f"Bearer {key}"},
                    )
                except httpx.HTTPError:
                    continue  # refused while shutting down: the client never saw success
                if r.status_code == 200:
                    seen.append(r.headers["x-request-id"])

    with ThreadPoolExecutor(workers) as pool:
        for _ in range(workers):
            pool.submit(loop)


def _ledger_ids(live, ids: list[str]) -> set[str]:
    with live.blocker.unblock():
        return set(
            UsageEvent.objects.filter(request_id__in=ids).values_list("request_id", flat=True)
        )


def test_sigterm_under_load_loses_no_call_a_client_saw_succeed(live, live_tmp):
    with live.blocker.unblock():
        database_url = live_database_url()
    app = start_app(live_tmp, database_url=database_url, FINOPS_LEDGER_FLUSH_SECONDS="2")
    stop, seen = threading.Event(), []
    hammer = threading.Thread(target=_hammer, args=(app.url, live.key_secret, stop, seen))
    hammer.start()
    deadline = time.monotonic() + 20
    while len(seen) < 100 and time.monotonic() < deadline:
        time.sleep(0.05)
    # uvicorn shuts down gracefully, then re-raises the signal: exit status -SIGTERM
    assert app.stop(signal.SIGTERM, timeout=30) in (0, -signal.SIGTERM)
    assert "ledger drained" in app.log()
    stop.set()
    hammer.join(30)
    assert len(seen) >= 100
    missing = set(seen) - _ledger_ids(live, seen)
    assert not missing, f"{len(missing)} of {len(seen)} successful calls missing from the ledger"


def test_sigkill_under_load_loses_no_call_a_client_saw_succeed(live, live_tmp):
    """Events are appended to a write-ahead log before they are queued; the next start replays
    what a killed process had not written."""
    with live.blocker.unblock():
        database_url = live_database_url()
    # a cluster of its own: the session's gateway must not claim the killed one's calls in flight
    # as lost later on (gateway.leases; test_lost_calls_live.py tests that)
    own = {"FINOPS_GATEWAY_CLUSTER": f"durability-{uuid.uuid4().hex[:8]}"}
    app = start_app(live_tmp, database_url=database_url, FINOPS_LEDGER_FLUSH_SECONDS="2", **own)
    stop, seen = threading.Event(), []
    hammer = threading.Thread(target=_hammer, args=(app.url, live.key_secret, stop, seen))
    hammer.start()
    deadline = time.monotonic() + 20
    while len(seen) < 100 and time.monotonic() < deadline:
        time.sleep(0.05)
    app.stop(signal.SIGKILL)
    stop.set()
    hammer.join(30)
    assert len(seen) >= 100
    lost_before_restart = set(seen) - _ledger_ids(live, seen)
    assert lost_before_restart, "a 2 s flush interval should leave events unwritten at the kill"
    restarted = start_app(live_tmp, database_url=database_url, var_dir=app.extra["var_dir"], **own)
    try:
        deadline = time.monotonic() + 15
        while set(seen) - _ledger_ids(live, seen) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not set(seen) - _ledger_ids(live, seen)
        with live.blocker.unblock():
            assert UsageEvent.objects.filter(request_id__in=seen).count() == len(seen)
    finally:
        restarted.stop()


@pytest.mark.skipif(connection.vendor != "postgresql", reason="needs a networked database")
def test_database_outage_spools_and_replays_exactly_once(live, live_tmp):
    cfg = connection.settings_dict
    proxy = TcpProxy(cfg.get("HOST") or "127.0.0.1", int(cfg.get("PORT") or 5432)).start()
    with live.blocker.unblock():
        url = live_database_url().replace(
            f"{cfg.get('HOST') or '127.0.0.1'}:{cfg.get('PORT') or 5432}", f"127.0.0.1:{proxy.port}"
        )
        if f":{proxy.port}/" not in url:  # no explicit port in the settings
            url = url.replace(f"@{cfg.get('HOST') or '127.0.0.1'}/", f"@127.0.0.1:{proxy.port}/")
    app = start_app(live_tmp, database_url=url, FINOPS_CONN_MAX_AGE="0")
    try:
        client = httpx.Client(timeout=10, headers={"authorization": f"Bearer {live.key_secret}"})
        assert (
            client.post(f"{app.url}/v1/chat/completions", json=BODY).status_code == 200
        )  # warm cache
        proxy.cut()
        during = []
        for _ in range(20):
            r = client.post(f"{app.url}/v1/chat/completions", json=BODY)
            assert r.status_code == 200, r.text
            during.append(r.headers["x-request-id"])
        spool_dir = app.extra["var_dir"] / "spool"
        deadline = time.monotonic() + 15
        while not list(spool_dir.glob("*.jsonl")) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert list(spool_dir.glob("*.jsonl")), "nothing was spooled during the outage"
        proxy.restore()
        deadline = time.monotonic() + 20
        while len(_ledger_ids(live, during)) < len(during) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _ledger_ids(live, during) == set(during)
        with live.blocker.unblock():
            assert UsageEvent.objects.filter(request_id__in=during).count() == len(during)
        assert not list(spool_dir.glob("*.jsonl"))
    finally:
        app.stop()
        proxy.cut()
