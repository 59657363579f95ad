"""``python -m finops.serve``: the app (``finops.asgi:application``) under uvicorn, with the two
defences uvicorn's own command line leaves out.

- **A deadline on request headers.** uvicorn bounds the idle time between keep-alive requests
  (``--timeout-keep-alive``) but not the time a request's headers take to arrive, so a client
  that sends one header byte every few seconds holds its connection forever (slowloris). The
  protocol classes here start a timer when a connection opens or a request's first byte
  arrives and stop it when that request's headers are complete; when it fires first, the client
  gets ``408`` in OpenAI's error shape and the connection is closed. The timer does not restart
  on every byte: the whole header block must arrive within ``FINOPS_HEADER_READ_SECONDS``. The
  body has its own deadline in the app (``FINOPS_BODY_READ_SECONDS``); an idle connection
  between requests stays uvicorn's (``--timeout-keep-alive``).
- **Forwarded headers only from trusted proxies.** uvicorn believes ``X-Forwarded-For`` and
  ``X-Forwarded-Proto`` from ``127.0.0.1`` unless told otherwise, so any local client could
  pick its own address (and walk past the sign-in throttle). Here they are believed only from
  the peers in ``FINOPS_TRUSTED_PROXIES`` (none by default); ``FORWARDED_ALLOW_IPS`` and
  uvicorn's ``--proxy-headers`` are not consulted.

The flags are uvicorn's (a subset). Several workers (``--workers N``) work as with uvicorn: the
app and the protocol class are importable by name, so every worker process rebuilds them.
"""

from __future__ import annotations

import argparse
import asyncio
import os
from typing import Any

import h11
from django.conf import settings
from uvicorn.protocols.http.h11_impl import H11Protocol

from gateway.errors import error_body

APP = "finops.asgi:application"


class _HeaderDeadline:
    """The header timer, shared by both protocol classes (mixed in before uvicorn's class).

    It never runs while a response is being written: the headers of a request pipelined behind
    one get their deadline from the moment that response is complete (h11 does not even read
    them before), so a 408 can never land in the middle of another response.
    """

    loop: asyncio.AbstractEventLoop
    transport: asyncio.Transport
    client: tuple[str, int] | None
    cycle: Any
    logger: Any
    server_state: Any
    _header_timer: asyncio.TimerHandle | None = None

    def _header_seconds(self) -> float:
        return settings.FINOPS_HEADER_READ_SECONDS

    def _header_timer_start(self) -> None:
        if self._header_timer is None and not self.transport.is_closing():
            self._header_timer = self.loop.call_later(self._header_seconds(), self._header_timeout)

    def _header_timer_stop(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _response_in_flight(self) -> bool:
        return self.cycle is not None and not self.cycle.response_complete

    def _header_timeout(self) -> None:
        self._header_timer = None
        if self.transport.is_closing() or self._response_in_flight():
            return  # (not armed while a response is in flight; never write into one)
        seconds = self._header_seconds()
        if self.client:
            self.logger.info(
                "%s:%d - request headers not complete within %g s: 408", *self.client, seconds
            )
        self.transport.write(timeout_response(seconds, self.server_state.default_headers))
        self.transport.close()


def timeout_response(seconds: float, default_headers: list[tuple[bytes, bytes]]) -> bytes:
    """The whole ``408`` a late client gets, in OpenAI's error shape."""
    body = error_body(
        f"the request headers did not arrive within {seconds:g} s",
        "invalid_request_error",
        "request_timeout",
    )
    lines = [b"HTTP/1.1 408 Request Timeout"]
    lines += [name + b": " + value for name, value in default_headers]
    lines += [
        b"content-type: application/json",
        b"content-length: " + str(len(body)).encode("ascii"),
        b"connection: close",
    ]
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


class H11HeaderDeadline(_HeaderDeadline, H11Protocol):
    """h11 parses a request only once its headers are complete; until then the connection's
    peer state stays ``IDLE``, which is what the timer watches."""

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self._header_timer_start()

    def data_received(self, data: bytes) -> None:
        if self.conn.their_state is h11.IDLE:
            self._header_timer_start()  # a request's first byte (or more of its headers)
        headers = self.headers
        super().data_received(data)
        self._header_check(headers)

    def on_response_complete(self) -> None:
        headers = self.headers
        super().on_response_complete()  # may parse a pipelined request already received
        if self.transport.is_closing():
            return
        self._header_check(headers)
        if self.conn.their_state is h11.IDLE and self.conn.trailing_data[0]:
            self._header_timer_start()  # part of the next request is already here

    def _header_check(self, before) -> None:
        # a parsed request replaces self.headers (even one handed to a WebSocket protocol)
        if self.headers is not before or self.conn.their_state is not h11.IDLE:
            self._header_timer_stop()

    def connection_lost(self, exc) -> None:
        self._header_timer_stop()
        super().connection_lost(exc)


try:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
except ImportError:  # httptools is not installed: uvicorn's "auto" is h11
    HttpToolsHeaderDeadline = None
    AutoHeaderDeadline: type = H11HeaderDeadline
else:

    class HttpToolsHeaderDeadline(_HeaderDeadline, HttpToolsProtocol):
        """httptools calls back at a message's first byte and when its headers are complete."""

        _headers_pending = False

        def connection_made(self, transport) -> None:
            super().connection_made(transport)
            self._header_timer_start()

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._headers_pending = True
            if not self._response_in_flight():
                self._header_timer_start()  # no-op while the connection's first timer runs

        def on_headers_complete(self) -> None:
            self._headers_pending = False
            self._header_timer_stop()
            super().on_headers_complete()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if (
                self._headers_pending
                and not self.transport.is_closing()
                and not self._response_in_flight()
            ):
                self._header_timer_start()  # a pipelined request stalled behind this response

        def connection_lost(self, exc) -> None:
            self._header_timer_stop()
            super().connection_lost(exc)

    AutoHeaderDeadline = HttpToolsHeaderDeadline


def protocol_class(http: str) -> type:
    """The header-deadline subclass of the protocol uvicorn would pick for ``--http``."""
    if http == "h11":
        return H11HeaderDeadline
    if http == "httptools":
        if HttpToolsHeaderDeadline is None:
            raise SystemExit("--http httptools: httptools is not installed")
        return HttpToolsHeaderDeadline
    return AutoHeaderDeadline


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m finops.serve",
        description=f"Serve {APP} under uvicorn with a header deadline and trusted proxies.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--uds", default=None, help="bind to a UNIX domain socket")
    parser.add_argument(
        "--workers", type=int, default=None, help="worker processes ($WEB_CONCURRENCY or 1)"
    )
    parser.add_argument("--loop", choices=["auto", "asyncio", "uvloop"], default="auto")
    parser.add_argument("--http", choices=["auto", "httptools", "h11"], default="auto")
    parser.add_argument("--lifespan", choices=["auto", "on", "off"], default="auto")
    parser.add_argument("--access-log", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument(
        "--log-level", choices=["critical", "error", "warning", "info", "debug", "trace"]
    )
    parser.add_argument("--timeout-keep-alive", type=int, default=5)
    parser.add_argument("--timeout-graceful-shutdown", type=int, default=None)
    parser.add_argument("--limit-concurrency", type=int, default=None)
    parser.add_argument("--limit-max-requests", type=int, default=None)
    parser.add_argument("--backlog", type=int, default=2048)
    parser.add_argument("--root-path", default="")
    return parser


def uvicorn_options(argv: list[str] | None = None) -> dict[str, Any]:
    """``uvicorn.run`` keyword arguments for a command line (settings are read here)."""
    args = _parser().parse_args(argv)
    trusted = list(settings.FINOPS_TRUSTED_PROXIES)
    return {
        "host": args.host,
        "port": args.port,
        "uds": args.uds,
        "workers": args.workers,
        "loop": args.loop,
        "http": protocol_class(args.http),
        "lifespan": args.lifespan,
        "access_log": args.access_log,
        "log_level": args.log_level,
        "timeout_keep_alive": args.timeout_keep_alive,
        "timeout_graceful_shutdown": args.timeout_graceful_shutdown,
        "limit_concurrency": args.limit_concurrency,
        "limit_max_requests": args.limit_max_requests,
        "backlog": args.backlog,
        "root_path": args.root_path,
        "proxy_headers": bool(trusted),
        "forwarded_allow_ips": trusted,
    }


def main(argv: list[str] | None = None) -> None:
    import uvicorn

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "finops.settings")
    # by name: with --workers N each worker process imports the app (and the protocol class,
    # pickled by reference to this module) itself
    uvicorn.run(APP, **uvicorn_options(argv))


if __name__ == "__main__":
    # Run through the importable module, not ``__main__``: the protocol class uvicorn pickles
    # for its worker processes must be found as ``finops.serve.…`` there.
    from finops.serve import main as _main

    _main()
