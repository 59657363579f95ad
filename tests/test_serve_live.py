"""``python -m finops.serve`` for real: the whole app in a subprocess on a free port, with a
short header deadline; slowloris clients over raw sockets, sign-ins through a (pretend) proxy.
The protocol classes alone, in process: ``tests/test_serve.py``."""

from __future__ import annotations

import contextlib
import re
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest

from tests.live import ROOT, Server, child_env, free_port, live_database_url, wait_http

pytestmark = pytest.mark.live

DEADLINE = 0.5
MARGIN = 1.0
START = b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"


def _serve(tmp: Path, *args: str, **env: str) -> Server:
    """The app under ``finops.serve`` without the gateway's lifespan (nothing here calls the
    gateway), its own var folder, in-process cache (no Redis: throttle counts stay here)."""
    port = free_port()
    log_path = tmp / f"serve-{port}.log"
    var_dir = tmp / f"var-{port}"
    var_dir.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(  # noqa: S603
        [sys.executable, "-m", "finops.serve", "--host", "127.0.0.1", "--port", str(port)]
        + ["--lifespan", "off", "--timeout-graceful-shutdown", "5", *args],
        cwd=ROOT,
        env=child_env(
            FINOPS_VAR_DIR=str(var_dir),
            FINOPS_HEADER_READ_SECONDS=str(DEADLINE),
            REDIS_URL="",
            FINOPS_TESTING="1",
            **env,
        ),
        stdout=log_path.open("wb"),
        stderr=subprocess.STDOUT,
    )
    server = Server(proc, port, log_path)
    try:
        wait_http(f"{server.url}/healthz", proc=proc)
    except RuntimeError:
        server.stop()
        raise AssertionError(server.log()) from None
    return server


def _slowloris(port: int, connections: int) -> tuple[list[bytes], float]:
    """Open the connections, send a request line and one header, then one header byte every
    0.2 s on each until the server closes it. Returns what each got and the time taken."""
    socks = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(connections)]
    t0 = time.monotonic()
    for sock in socks:
        sock.sendall(START)
        sock.setblocking(False)
    got = [b""] * connections
    open_ = set(range(connections))
    while open_ and time.monotonic() - t0 < DEADLINE + 5:
        for i in list(open_):
            try:
                chunk = socks[i].recv(65536)
            except BlockingIOError:
                with contextlib.suppress(OSError):
                    socks[i].send(b"X")
                continue
            except OSError:
                chunk = b""
            if chunk:
                got[i] += chunk
            else:
                open_.discard(i)
        time.sleep(0.2)
    waited = time.monotonic() - t0
    for sock in socks:
        sock.close()
    assert not open_, f"{len(open_)} connections still open after {waited:.1f} s"
    return got, waited


def _assert_408s(got: list[bytes]) -> None:
    for data in got:
        assert data.startswith(b"HTTP/1.1 408 Request Timeout\r\n"), data
        message = f"the request headers did not arrive within {DEADLINE:g} s"
        assert data.endswith(
            b'{"error":{"message":"' + message.encode() + b'",'
            b'"type":"invalid_request_error","param":null,"code":"request_timeout"}}'
        ), data


def test_twenty_slowloris_connections_are_closed_at_the_deadline_and_others_are_served(tmp_path):
    app = _serve(tmp_path, "--no-access-log")
    try:
        got, waited = _slowloris(app.port, 20)
        _assert_408s(got)
        assert waited <= DEADLINE + MARGIN
        assert httpx.get(f"{app.url}/healthz").json() == {"status": "ok"}
    finally:
        app.stop()


def test_every_worker_of_several_keeps_the_deadline(tmp_path):
    app = _serve(tmp_path, "--workers", "2", "--http", "h11")
    try:
        got, waited = _slowloris(app.port, 20)
        _assert_408s(got)
        assert waited <= DEADLINE + MARGIN
        for _ in range(4):
            with httpx.Client() as client:  # new connections, to either worker
                assert client.get(f"{app.url}/healthz").status_code == 200
        log = app.log()
        assert "Started parent process" in log
        pids = set(re.findall(r"Started server process \[(\d+)\]", log))
        assert len(pids) == 2, log
        assert log.count(f"request headers not complete within {DEADLINE:g} s: 408") == 20
    finally:
        app.stop()


def _fail_sign_ins(url: str, forwarded: list[str]) -> list[int]:
    """One failed sign-in per ``X-Forwarded-For`` value, same username, from loopback."""
    username = f"nobody-{uuid.uuid4().hex[:8]}@example.test"
    statuses = []
    with httpx.Client(base_url=url) as client:
        page = client.get("/accounts/login/")
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
        for value in forwarded:
            response = client.post(
                "/accounts/login/",
                data={"username": username, "password": "wrong", "csrfmiddlewaretoken": token},
                headers={"X-Forwarded-For": value},
            )
            statuses.append(response.status_code)
    return statuses


THROTTLE = dict(
    FINOPS_LOGIN_FAILURES_PER_USER="3",
    FINOPS_LOGIN_FAILURES_PER_ADDRESS="1000",
    FINOPS_LOGIN_WINDOW_SECONDS="600",
)


@pytest.fixture(scope="module")
def database_url(django_db_setup, django_db_blocker) -> str:
    with django_db_blocker.unblock():
        return live_database_url()


def test_a_forwarded_for_from_loopback_is_ignored_by_default(tmp_path, database_url):
    app = _serve(tmp_path, "--no-access-log", DATABASE_URL=database_url, **THROTTLE)
    try:
        statuses = _fail_sign_ins(app.url, [f"1.2.3.{i}" for i in range(20)])
    finally:
        app.stop()
    assert statuses[:3] == [200, 200, 200]
    assert set(statuses[3:]) == {429}  # one client, however often it renames itself


def test_a_trusted_proxys_forwarded_for_is_honoured(tmp_path, database_url):
    app = _serve(
        tmp_path,
        DATABASE_URL=database_url,
        FINOPS_TRUSTED_PROXIES="127.0.0.1",
        **THROTTLE,
    )
    try:
        statuses = _fail_sign_ins(app.url, [f"1.2.3.{i}" for i in range(20)])
        again = _fail_sign_ins(app.url, ["9.9.9.9"] * 4)
        log = app.log()
    finally:
        app.stop()
    assert set(statuses) == {200}  # twenty clients behind the proxy, one failure each
    assert again == [200, 200, 200, 429]
    assert '1.2.3.7:0 - "POST /accounts/login/ HTTP/1.1" 200' in log  # uvicorn's own view
