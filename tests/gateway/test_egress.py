"""The connect-time egress rule (``gateway.egress``): a provider's host name is resolved when the
gateway connects, its internal addresses are dropped, a host left with none is refused with the
rule, and the connection goes to exactly the checked addresses. Hosts listed as written in
``FINOPS_PROVIDER_HOSTS`` are the operator's choice and pass unchanged.

DNS is the one boundary faked here (an ``AbstractResolver`` answering what a hostile DNS server
would); the connections, the servers and the clients are real.
"""

from __future__ import annotations

import asyncio
import http.server
import logging
import socket
import threading
from types import SimpleNamespace

import aiohttp
import httpcore
import httpx
import orjson
import pytest
from aiohttp import web
from aiohttp.abc import AbstractResolver
from aiohttp.test_utils import TestServer
from django.core.exceptions import ValidationError
from django.test import override_settings

from gateway.egress import (
    EgressConnector,
    EgressRefused,
    EgressResolver,
    egress_http_client,
    egress_refusal,
    internal_address,
)
from gateway.services.providers import provider_base_url_check

PUBLIC = "93.184.215.14"
PUBLIC6 = "2606:4700::1111"
SECRET = "sk-upstream-secret-0123456789"  # noqa: S105 - a marker that must never be logged
ANY_PUBLIC = override_settings(FINOPS_PROVIDER_HOSTS=["*", "127.0.0.1"])


class FakeResolver(AbstractResolver):
    """Answers each host with the next of its answers (the last one repeats)."""

    def __init__(self, answers: dict[str, list[list[str]]]) -> None:
        self.answers = {host: list(seq) for host, seq in answers.items()}
        self.calls: list[str] = []

    async def resolve(self, host, port=0, family=socket.AF_INET):
        self.calls.append(host)
        seq = self.answers[host]
        addresses = seq.pop(0) if len(seq) > 1 else seq[0]
        return [
            {
                "hostname": host,
                "host": address,
                "port": port,
                "family": socket.AF_INET6 if ":" in address else socket.AF_INET,
                "proto": 0,
                "flags": socket.AI_NUMERICHOST,
            }
            for address in addresses
        ]

    async def close(self) -> None:
        pass


def resolve(host: str, *answers: list[str]) -> list[str]:
    resolver = EgressResolver(FakeResolver({host: list(answers)}))
    return [r["host"] for r in asyncio.run(resolver.resolve(host, 443))]


def refused(host: str, *answers: list[str]) -> EgressRefused:
    with pytest.raises(EgressRefused) as info:
        resolve(host, *answers)
    return info.value


# --- the resolver -----------------------------------------------------------------------------


@ANY_PUBLIC
def test_a_host_resolving_to_public_addresses_passes_unchanged():
    assert resolve("api.example.com", [PUBLIC, PUBLIC6]) == [PUBLIC, PUBLIC6]


@ANY_PUBLIC
def test_internal_addresses_are_dropped_from_a_mixed_answer():
    assert resolve("api.example.com", ["10.0.0.1", PUBLIC, "127.0.0.1", PUBLIC6]) == [
        PUBLIC,
        PUBLIC6,
    ]


@ANY_PUBLIC
def test_a_host_resolving_only_to_internal_addresses_is_refused_with_the_rule():
    refusal = refused("evil.example.com", ["10.0.0.1"])
    assert str(refusal) == (
        "host evil.example.com resolves only to internal addresses (10.0.0.1: private); "
        "list it in FINOPS_PROVIDER_HOSTS as written to allow it"
    )
    assert isinstance(refusal, OSError)
    # what the client is told names the host and the rule, not where an internal name points
    assert "10.0.0.1" not in refusal.public
    assert "FINOPS_PROVIDER_HOSTS as written" in refusal.public


@ANY_PUBLIC
@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("169.254.169.254", "link-local"),  # cloud metadata
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("192.168.1.1", "private"),
        ("127.0.0.1", "loopback"),
        ("127.8.9.10", "loopback"),
        ("0.0.0.0", "unspecified"),
        ("100.64.0.1", "shared"),  # carrier-grade NAT
        ("100.127.255.254", "shared"),
        ("224.0.0.1", "multicast"),
        ("240.0.0.1", "private"),  # Python counts 240/4 (reserved) among the private
        ("::a00:1", "reserved"),  # IPv4-compatible IPv6 (deprecated)
        ("::1", "loopback"),
        ("::", "unspecified"),
        ("fe80::1", "link-local"),
        ("fd00::1", "private"),  # unique-local
        ("fec0::1", "site-local"),
        ("::ffff:10.0.0.1", "private"),  # IPv4-mapped: judged by its IPv4 form
        ("::ffff:127.0.0.1", "loopback"),
        ("::ffff:169.254.169.254", "link-local"),
        ("64:ff9b::a00:1", "private"),  # NAT64 of 10.0.0.1
        ("2002:a9fe:a9fe::1", "link-local"),  # 6to4 of 169.254.169.254
    ],
)
def test_every_kind_of_internal_address_is_refused(address, kind):
    refusal = refused("evil.example.com", [address])
    assert refusal.refused == [(address, kind)]
    assert f"({address}: {kind})" in str(refusal)


@ANY_PUBLIC
def test_an_ipv6_form_of_a_public_ipv4_address_passes():
    assert resolve("api.example.com", ["::ffff:93.184.215.14"]) == ["::ffff:93.184.215.14"]
    assert resolve("api.example.com", ["64:ff9b::5db8:d70e"]) == ["64:ff9b::5db8:d70e"]


@override_settings(FINOPS_PROVIDER_HOSTS=["*", "vllm.corp.example", "localhost"])
def test_a_host_listed_as_written_passes_unchanged_even_when_internal():
    assert resolve("vllm.corp.example", ["10.0.0.7"]) == ["10.0.0.7"]
    assert resolve("VLLM.corp.example", ["10.0.0.7"]) == ["10.0.0.7"]  # hosts are case-blind
    assert resolve("localhost", ["127.0.0.1", "::1"]) == ["127.0.0.1", "::1"]


@override_settings(FINOPS_PROVIDER_HOSTS=["*.example.com", "*"])
def test_a_pattern_does_not_allow_an_internal_address():
    refusal = refused("evil.example.com", ["169.254.169.254"])
    assert refusal.refused == [("169.254.169.254", "link-local")]


@ANY_PUBLIC
def test_a_metadata_name_is_refused_without_a_lookup():
    fake = FakeResolver({"metadata.google.internal": [[PUBLIC]]})
    with pytest.raises(EgressRefused, match=r"is an internal address \(metadata\)"):
        asyncio.run(EgressResolver(fake).resolve("metadata.google.internal", 80))
    assert fake.calls == []


@ANY_PUBLIC
def test_a_rebinding_host_is_refused_on_its_internal_answer():
    fake = FakeResolver({"rebind.example.com": [[PUBLIC], ["127.0.0.1"]]})
    resolver = EgressResolver(fake)

    async def twice():
        first = await resolver.resolve("rebind.example.com", 80)
        with pytest.raises(EgressRefused):
            await resolver.resolve("rebind.example.com", 80)
        return first

    assert [r["host"] for r in asyncio.run(twice())] == [PUBLIC]
    assert fake.calls == ["rebind.example.com", "rebind.example.com"]


@ANY_PUBLIC
def test_a_rebinding_host_never_gets_an_internal_address_out_of_the_connector():
    """What the connector connects to, with its DNS cache (kept: the checked answer) and
    without it (each lookup checked anew)."""

    async def addresses(**kwargs) -> list:
        fake = FakeResolver({"rebind.example.com": [[PUBLIC], ["127.0.0.1"]]})
        connector = EgressConnector(resolver=fake, **kwargs)
        seen = []
        try:
            for _ in range(3):
                try:
                    hosts = await connector._resolve_host("rebind.example.com", 80)
                except EgressRefused:
                    seen.append("refused")
                else:
                    seen.append([h["host"] for h in hosts])
        finally:
            await connector.close()
        return seen

    assert asyncio.run(addresses(ttl_dns_cache=300)) == [[PUBLIC]] * 3
    assert asyncio.run(addresses(use_dns_cache=False)) == [[PUBLIC], "refused", "refused"]


# --- over real connections --------------------------------------------------------------------


async def _with_server(body):
    """Run ``body(port, hits)`` with a tiny aiohttp server on 127.0.0.1 counting requests."""
    hits: list[str] = []

    async def handler(request: web.Request) -> web.Response:
        hits.append(request.path)
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        return await body(server.port, hits)
    finally:
        await server.close()


async def _get(url: str, resolver: AbstractResolver | None = None):
    connector = EgressConnector(resolver=resolver)
    async with (
        aiohttp.ClientSession(connector=connector) as session,
        session.post(url, headers={"authorization": f"Bearer {SECRET}"}) as response,
    ):
        return response.status


def _fake_dns(port_host: str = "evil.example.com") -> FakeResolver:
    return FakeResolver({port_host: [["127.0.0.1"]]})


@ANY_PUBLIC
def test_a_name_resolving_to_loopback_never_reaches_the_server(caplog):
    async def body(port, hits):
        with pytest.raises(aiohttp.ClientConnectorError) as info:
            await _get(f"http://evil.example.com:{port}/v1/chat?key={SECRET}", _fake_dns())
        return info.value, hits

    with caplog.at_level(logging.INFO, logger="gateway.egress"):
        exc, hits = asyncio.run(_with_server(body))
    assert hits == []
    refusal = egress_refusal(exc)
    assert refusal is not None and refusal.refused == [("127.0.0.1", "loopback")]
    assert "resolves only to internal addresses" in str(exc)  # the reason survives the wrap
    [record] = [r for r in caplog.records if r.name == "gateway.egress"]
    assert record.levelno == logging.WARNING
    assert "evil.example.com" in record.getMessage()
    assert SECRET not in caplog.text and "/v1/chat" not in caplog.text


@override_settings(FINOPS_PROVIDER_HOSTS=["*", "evil.example.com"])
def test_the_same_name_reaches_the_server_once_listed_as_written():
    async def body(port, hits):
        return await _get(f"http://evil.example.com:{port}/v1/chat", _fake_dns()), hits

    status, hits = asyncio.run(_with_server(body))
    assert (status, hits) == (200, ["/v1/chat"])


@ANY_PUBLIC
def test_an_address_literal_is_checked_although_aiohttp_skips_the_resolver():
    async def body(port, hits):
        fake = FakeResolver({})
        with pytest.raises(aiohttp.ClientConnectorError) as info:
            await _get(f"http://127.0.0.2:{port}/v1", fake)
        for url in (f"http://[::ffff:127.0.0.2]:{port}/v1", f"http://0.0.0.0:{port}/v1"):
            with pytest.raises(aiohttp.ClientConnectorError):
                await _get(url, fake)
        listed = await _get(f"http://127.0.0.1:{port}/v1", fake)  # listed as written
        return info.value, listed, hits, fake.calls

    exc, listed, hits, calls = asyncio.run(_with_server(body))
    assert str(egress_refusal(exc)) == (
        "host 127.0.0.2 is an internal address (loopback); "
        "list it in FINOPS_PROVIDER_HOSTS as written to allow it"
    )
    assert (listed, hits, calls) == (200, ["/v1"], [])


@override_settings(FINOPS_PROVIDER_HOSTS=["*"])
def test_the_connector_uses_the_real_resolver_by_default():
    """No fake here: ``localhost`` resolves through the system to loopback, and is refused
    when it is not listed."""

    async def body(port, hits):
        with pytest.raises(aiohttp.ClientConnectorError) as info:
            await _get(f"http://localhost:{port}/")
        return info.value, hits

    exc, hits = asyncio.run(_with_server(body))
    assert egress_refusal(exc).refused[0][1] == "loopback"
    assert hits == []


# --- what the gateway makes of a refusal ------------------------------------------------------


@ANY_PUBLIC
def test_the_gateway_fails_the_attempt_without_retry_and_answers_502_egress_refused():
    from gateway.proxy import _final_error, _transport_failure

    async def body(port, hits):
        with pytest.raises(aiohttp.ClientError) as info:
            await _get(f"http://evil.example.com:{port}/v1", _fake_dns())
        return info.value

    exc = asyncio.run(_with_server(body))
    failure = _transport_failure(SimpleNamespace(name="evil-model"), exc, 0.0)
    assert (failure.code, failure.retryable, failure.status) == ("egress_refused", False, None)
    error = _final_error(failure, [])
    assert (error.status, error.code, error.type) == (502, "egress_refused", "api_error")
    body_json = orjson.loads(error.body())["error"]
    assert body_json["code"] == "egress_refused"
    assert body_json["message"] == (
        "The upstream 'evil-model' was not contacted: host evil.example.com resolves only to "
        "internal addresses; list it in FINOPS_PROVIDER_HOSTS as written to allow it."
    )
    assert "127.0.0.1" not in body_json["message"]


def test_other_connection_errors_are_still_plain_transport_failures():
    from gateway.proxy import _transport_failure

    failure = _transport_failure(
        SimpleNamespace(name="m"), aiohttp.ClientConnectionError("reset"), 0.0
    )
    assert (failure.code, failure.retryable) == ("upstream_connection_error", True)


# --- httpx (the LLM judge) --------------------------------------------------------------------


class _Handler(http.server.BaseHTTPRequestHandler):
    hits: list[str] = []

    def do_POST(self):  # noqa: N802 - the stdlib's name
        self.hits.append(self.path)
        self.send_response(200)
        self.send_header("content-length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args):
        pass


@pytest.fixture
def sync_server():
    _Handler.hits = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1], _Handler.hits
    server.shutdown()
    server.server_close()


def _fake_getaddrinfo(address: str):
    def getaddrinfo(host, port, *args, **kwargs):
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))]

    return getaddrinfo


@ANY_PUBLIC
def test_the_httpx_client_refuses_a_name_resolving_to_loopback_and_a_literal(sync_server):
    port, hits = sync_server
    with egress_http_client(getaddrinfo=_fake_getaddrinfo("127.0.0.1")) as client:
        with pytest.raises(httpx.ConnectError) as info:
            client.post(f"http://evil.example.com:{port}/v1")
        assert egress_refusal(info.value).refused == [("127.0.0.1", "loopback")]
        with pytest.raises(httpx.ConnectError) as info:
            client.post(f"http://127.0.0.2:{port}/v1")
        assert "is an internal address (loopback)" in str(egress_refusal(info.value))
        assert client.post(f"http://127.0.0.1:{port}/listed").status_code == 200
    assert hits == ["/listed"]


class _Recorder:
    """httpcore's sync backend stand-in: records where a connection was asked to go."""

    def __init__(self) -> None:
        self.hosts: list[str] = []

    def connect_tcp(self, host, port, **kwargs):
        self.hosts.append(host)
        return SimpleNamespace(host=host)


@override_settings(FINOPS_PROVIDER_HOSTS=["*", "vllm.corp.example"])
def test_the_httpx_backend_connects_to_the_checked_address_and_refuses_a_rebind():
    from gateway.egress import _EgressNetworkBackend

    answers = [PUBLIC, "127.0.0.1"]
    lookups: list[str] = []

    def getaddrinfo(host, port, *args, **kwargs):
        lookups.append(host)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (answers.pop(0), port))]

    backend = _EgressNetworkBackend(getaddrinfo)
    backend._inner = recorder = _Recorder()
    assert backend.connect_tcp("rebind.example.com", 443).host == PUBLIC  # the literal: pinned
    with pytest.raises(httpcore.ConnectError) as info:
        backend.connect_tcp("rebind.example.com", 443)
    assert egress_refusal(info.value).refused == [("127.0.0.1", "loopback")]
    backend.connect_tcp("vllm.corp.example", 443)  # listed: the operator's, resolved as usual
    assert recorder.hosts == [PUBLIC, "vllm.corp.example"]
    assert lookups == ["rebind.example.com", "rebind.example.com"]


@pytest.mark.django_db(transaction=True)
def test_the_judge_goes_through_the_egress_rule(monkeypatch):
    from evaluation.services.judge import pairs_judge
    from gateway.models import UsageEvent
    from tests.evaluation.test_judge import pair, world

    monkeypatch.setenv("FINOPS_SIM_KEY", "sk-sim-test")
    with override_settings(FINOPS_PROVIDER_HOSTS=["*", "127.0.0.1"]):
        org, team, router = world("http://127.0.0.2:9")
        p = pair(org, team, router, f"egress-{org.pk}")
        assert pairs_judge() == 0
    p.refresh_from_db()
    assert p.judged_at is None  # handed back for the next run
    row = UsageEvent.objects.get(request_id=f"judge-{p.request_id}")
    assert (row.status, row.error_code) == ("error", "egress_refused")


# --- the save-time half shares the address rules --------------------------------------------


@override_settings(FINOPS_PROVIDER_HOSTS=["*"])
def test_saving_refuses_the_newly_covered_internal_literals():
    for host, kind in (
        ("100.64.0.1", "shared"),
        ("[fec0::1]", "site-local"),
        ("[fd12::1]", "private"),
        ("0.0.0.0", "unspecified"),
        ("[::ffff:10.0.0.1]", "private"),
    ):
        with pytest.raises(ValidationError, match=rf"internal address \({kind}\)"):
            provider_base_url_check(base_url=f"http://{host}:8000/v1")
    assert internal_address("api.openai.com") is None
    provider_base_url_check(base_url="https://api.openai.com/v1")
