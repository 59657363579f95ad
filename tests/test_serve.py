"""``finops.serve``'s header deadline, in process: a real uvicorn server on a free port in a
thread, with each protocol class (httptools and h11) and a small ASGI app, talked to over raw
sockets. The command line and the app behind it: ``tests/test_serve_live.py``."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from contextlib import contextmanager

import orjson
import pytest
import uvicorn

from finops import serve
from tests.live import free_port

DEADLINE = 0.25
MARGIN = 0.5
PROTOCOLS = [p for p in (serve.HttpToolsHeaderDeadline, serve.H11HeaderDeadline) if p]
START = b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"


async def _app(scope, receive, send):
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body"):
        pass
    if scope["path"] == "/slow":
        await asyncio.sleep(2 * DEADLINE)
    body = f"ok {scope['path']}".encode()
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/plain"), (b"content-length", b"%d" % len(body))],
        }
    )
    await send({"type": "http.response.body", "body": body})


@pytest.fixture(autouse=True)
def _deadline(settings):
    settings.FINOPS_HEADER_READ_SECONDS = DEADLINE


@contextmanager
def serving(protocol):
    port = free_port()
    config = uvicorn.Config(
        _app,
        host="127.0.0.1",
        port=port,
        http=protocol,
        lifespan="off",
        log_config=None,
        timeout_keep_alive=5,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.01)
    try:
        yield port
    finally:
        server.should_exit = True
        thread.join(10)


def _connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=5)


def _until_closed(sock: socket.socket, timeout: float = 5.0) -> tuple[bytes, float]:
    """Everything the server sends until it closes, and how long that took."""
    t0 = time.monotonic()
    sock.settimeout(timeout)
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data, time.monotonic() - t0


def _response(sock: socket.socket) -> bytes:
    """One response with a content-length, read without waiting for the connection to close."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
    while len(body) < length:
        body += sock.recv(65536)
    return head + b"\r\n\r\n" + body


def _assert_408(data: bytes) -> None:
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408 Request Timeout\r\n"), data
    assert b"content-type: application/json" in head
    assert b"connection: close" in head
    assert orjson.loads(body) == {
        "error": {
            "message": f"the request headers did not arrive within {DEADLINE:g} s",
            "type": "invalid_request_error",
            "param": None,
            "code": "request_timeout",
        }
    }


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_headers_that_do_not_arrive_in_time_get_a_408_and_the_connection_closes(protocol):
    with serving(protocol) as port, _connect(port) as sock:
        sock.sendall(START)
        data, waited = _until_closed(sock)
    _assert_408(data)
    assert DEADLINE - 0.05 <= waited <= DEADLINE + MARGIN


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_connection_that_sends_nothing_is_closed_at_the_deadline(protocol):
    with serving(protocol) as port, _connect(port) as sock:
        data, waited = _until_closed(sock)
    _assert_408(data)
    assert waited <= DEADLINE + MARGIN


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_dribbling_header_bytes_does_not_extend_the_deadline(protocol):
    with serving(protocol) as port, _connect(port) as sock:
        sock.sendall(START)
        t0 = time.monotonic()
        try:
            while time.monotonic() - t0 < 3 * DEADLINE:
                sock.sendall(b"X")
                time.sleep(DEADLINE / 10)
        except OSError:  # closed under us: the point
            pass
        data, _ = _until_closed(sock)
        waited = time.monotonic() - t0
    _assert_408(data)
    assert waited <= DEADLINE + MARGIN


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_headers_completed_in_time_are_served_even_when_slow(protocol):
    with serving(protocol) as port, _connect(port) as sock:
        sock.sendall(b"GET /a HTTP/1.1\r\n")
        time.sleep(DEADLINE / 2)
        sock.sendall(b"Host: x\r\n\r\n")
        first = _response(sock)
        # idle between requests for longer than the header deadline: keep-alive's business
        time.sleep(DEADLINE * 1.5)
        sock.sendall(b"GET /b HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        second, _ = _until_closed(sock)
    assert first.startswith(b"HTTP/1.1 200 OK") and first.endswith(b"ok /a"), first
    assert second.startswith(b"HTTP/1.1 200 OK") and second.endswith(b"ok /b"), second


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_later_requests_deadline_runs_from_its_first_byte(protocol):
    with serving(protocol) as port, _connect(port) as sock:
        sock.sendall(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n")
        assert _response(sock).startswith(b"HTTP/1.1 200 OK")
        time.sleep(DEADLINE * 1.5)  # idle: no deadline runs
        sock.sendall(b"GET /b HTTP/1.1\r\n")
        data, waited = _until_closed(sock)
    _assert_408(data)
    assert DEADLINE - 0.05 <= waited <= DEADLINE + MARGIN


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_late_pipelined_request_never_cuts_into_the_response_in_flight(protocol):
    with serving(protocol) as port, _connect(port) as sock:
        # a slow response (twice the deadline) with the next request's headers stalled behind it
        sock.sendall(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\n")
        data, waited = _until_closed(sock)
    first, _, second = data.partition(b"ok /slow")
    assert first.startswith(b"HTTP/1.1 200 OK"), data  # whole ...
    _assert_408(second)  # ... then the stalled request's 408, its deadline run from there
    assert 2 * DEADLINE + DEADLINE - 0.05 <= waited <= 2 * DEADLINE + DEADLINE + MARGIN


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_twenty_slowloris_connections_are_all_closed_within_the_deadline(protocol):
    with serving(protocol) as port:
        socks = [_connect(port) for _ in range(20)]
        t0 = time.monotonic()
        for sock in socks:
            sock.sendall(START)
        results = [_until_closed(sock)[0] for sock in socks]
        waited = time.monotonic() - t0
        for sock in socks:
            sock.close()
        # and the server still answers
        with _connect(port) as sock:
            sock.sendall(b"GET /ok HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            assert _until_closed(sock)[0].endswith(b"ok /ok")
    for data in results:
        _assert_408(data)
    assert waited <= DEADLINE + MARGIN


def test_the_protocol_is_the_one_uvicorn_would_pick(settings):
    settings.FINOPS_TRUSTED_PROXIES = []
    options = serve.uvicorn_options([])
    assert options["http"] is (serve.HttpToolsHeaderDeadline or serve.H11HeaderDeadline)
    assert issubclass(serve.H11HeaderDeadline, uvicorn.protocols.http.h11_impl.H11Protocol)
    assert serve.uvicorn_options(["--http", "h11"])["http"] is serve.H11HeaderDeadline


def test_forwarded_headers_are_believed_only_from_the_trusted_proxies(settings):
    settings.FINOPS_TRUSTED_PROXIES = []
    options = serve.uvicorn_options(["--port", "9"])
    assert options["proxy_headers"] is False
    assert options["forwarded_allow_ips"] == []
    settings.FINOPS_TRUSTED_PROXIES = ["10.0.0.0/8", "127.0.0.1/32"]
    options = serve.uvicorn_options([])
    assert options["proxy_headers"] is True
    assert options["forwarded_allow_ips"] == ["10.0.0.0/8", "127.0.0.1/32"]


def test_the_launchers_flags_map_onto_uvicorn(settings):
    settings.FINOPS_TRUSTED_PROXIES = []
    argv = ["--host", "0.0.0.0", "--port", "8123", "--workers", "2", "--loop", "uvloop"]
    argv += ["--http", "httptools", "--lifespan", "on", "--no-access-log"]
    options = serve.uvicorn_options(
        [*argv, "--log-level", "warning", "--timeout-graceful-shutdown", "20"]
    )
    assert options["host"] == "0.0.0.0"
    assert (options["port"], options["workers"]) == (8123, 2)
    assert (options["loop"], options["lifespan"]) == ("uvloop", "on")
    assert options["access_log"] is False
    assert options["log_level"] == "warning"
    assert options["timeout_graceful_shutdown"] == 20
