"""Where the gateway may connect: the connect-time half of the provider egress rule.

``gateway.services.providers.provider_base_url_check`` judges a provider's host *as written*
when it is saved; a host *name* is not resolved then, so ``https://evil.example.com`` may later
resolve to ``169.254.169.254``, ``10.0.0.1`` or ``127.0.0.1``, or answer a public address to one
lookup and an internal one to the next (DNS rebinding). Here every upstream connection is
checked when it is made:

- a host listed as written in ``FINOPS_PROVIDER_HOSTS`` (exactly, not through ``*`` or a
  ``*.suffix`` pattern) is connected to as it resolves: the operator chose it, internal or not
  (the embedded mode lists the loopback simulator);
- any other host is refused if it is an internal address literal or a metadata name, and
  otherwise resolved, its internal addresses dropped, and refused (``EgressRefused``) when none
  is left.

The client connects to exactly the addresses that were checked (aiohttp to what its resolver
returned, the judge's httpx transport to the address literal it was handed), so no second
lookup can switch them: that is the pin. The connector's DNS cache then only ever holds
checked answers.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
from collections.abc import Iterable, Sequence

import aiohttp
import httpcore
import httpx
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver
from django.conf import settings

log = logging.getLogger(__name__)

RULE = "list it in FINOPS_PROVIDER_HOSTS as written to allow it"

METADATA_HOSTS = frozenset(
    {"metadata.google.internal", "metadata", "instance-data", "metadata.azure.internal"}
)
_SHARED = ipaddress.ip_network("100.64.0.0/10")  # carrier-grade NAT (RFC 6598)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")  # well-known NAT64 prefix (RFC 6052)

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


# --- which addresses are internal -------------------------------------------------------------


def _embedded_ipv4(address: Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 form reaches: IPv4-mapped, NAT64 and 6to4 are judged by it."""
    if not isinstance(address, ipaddress.IPv6Address):
        return None
    if address.ipv4_mapped:
        return address.ipv4_mapped
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address.sixtofour


def _address_kind(address: Address) -> str | None:
    """What makes an address internal (``loopback``, ``private``, ``shared``…), or None when it
    is public."""
    address = _embedded_ipv4(address) or address
    if address.is_unspecified:
        return "unspecified"
    for kind in ("loopback", "link_local", "private", "multicast", "reserved"):
        if getattr(address, f"is_{kind}"):
            return kind.replace("_", "-")
    if isinstance(address, ipaddress.IPv6Address) and address.is_site_local:
        return "site-local"
    if address in _SHARED:
        return "shared"
    if not address.is_global:
        return "non-global"
    return None


def internal_address(host: str) -> str | None:
    """What makes ``host`` internal (``loopback``, ``private``, ``metadata``…), or None.

    Judged from the host as written: an address literal, or a metadata name. A name is not
    resolved here (a slow resolver would stall every save, and a later DNS answer could differ
    anyway): where it points is checked when the gateway connects (``EgressResolver``).
    """
    if host in METADATA_HOSTS or host.endswith(".internal"):
        return "metadata"
    try:
        return _address_kind(ipaddress.ip_address(host))
    except ValueError:
        return None


def _resolved_kind(address: str) -> str | None:
    try:
        return _address_kind(ipaddress.ip_address(address))
    except ValueError:
        return "unparseable"  # never connect to what cannot be judged


# --- the rule ---------------------------------------------------------------------------------


class EgressRefused(OSError):
    """A connection the egress rule refused. ``str()`` names the addresses and why (for the
    log); ``public`` names only the host and the rule (for the client: a tenant must not learn
    what an internal name resolves to)."""

    def __init__(self, host: str, refused: Sequence[tuple[str, str]], *, resolved: bool) -> None:
        self.host = host
        self.refused = list(refused)
        found = ", ".join(f"{address}: {kind}" for address, kind in self.refused)
        if resolved:
            message = f"host {host} resolves only to internal addresses ({found}); {RULE}"
            self.public = f"host {host} resolves only to internal addresses; {RULE}"
        else:
            kind = self.refused[0][1]
            message = self.public = f"host {host} is an internal address ({kind}); {RULE}"
        super().__init__(message)
        self.strerror = message  # what aiohttp's ClientConnectorError shows


def egress_refusal(exc: BaseException | None) -> EgressRefused | None:
    """The ``EgressRefused`` behind a client error (aiohttp and httpx wrap it), or None."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, EgressRefused):
            return exc
        seen.add(id(exc))
        exc = getattr(exc, "os_error", None) or exc.__cause__ or exc.__context__
    return None


def _canonical(host: str) -> str:
    host = host.strip().lower()
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return host


def egress_listed(host: str) -> bool:
    """Whether the operator listed ``host`` as written in ``FINOPS_PROVIDER_HOSTS`` (patterns
    such as ``*`` or ``*.example.com`` do not count: they allow public hosts only)."""
    host = _canonical(host)
    return any(_canonical(h) == host for h in settings.FINOPS_PROVIDER_HOSTS if h.strip())


def _refuse(host: str, refused: Sequence[tuple[str, str]], *, resolved: bool) -> EgressRefused:
    refusal = EgressRefused(host, refused, resolved=resolved)
    log.warning("provider egress refused: %s", refusal)  # the host, never the URL or headers
    return refusal


def _as_written_check(host: str) -> None:
    """Refuse an internal address literal or a metadata name before any lookup."""
    kind = internal_address(host.lower().rstrip("."))
    if kind:
        raise _refuse(host, [(host, kind)], resolved=False)


def egress_screen(host: str, addresses: Iterable[str]) -> list[str]:
    """The public ones of ``addresses`` (what ``host`` resolved to); ``EgressRefused`` when there
    is none. A host listed as written is not screened (call ``egress_listed`` first)."""
    kept, refused = [], []
    for address in addresses:
        kind = _resolved_kind(address)
        if kind is None:
            kept.append(address)
        else:
            refused.append((address, kind))
    if not refused and not kept:
        raise OSError(f"host {host} resolved to no address")
    if not kept:
        raise _refuse(host, refused, resolved=True)
    if refused:
        log.info("provider egress: %s resolved to internal addresses too; dropped them", host)
    return kept


# --- aiohttp: the gateway's upstream client -----------------------------------------------------


class EgressResolver(AbstractResolver):
    """aiohttp's resolver (``DefaultResolver`` unless one is given), returning only the
    addresses the egress rule allows."""

    def __init__(self, resolver: AbstractResolver | None = None) -> None:
        self._resolver = resolver
        self._owned = resolver is None

    def _inner(self) -> AbstractResolver:
        if self._resolver is None:  # created lazily: it needs the running loop
            self._resolver = DefaultResolver()
        return self._resolver

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        if egress_listed(host):
            return await self._inner().resolve(host, port, family)
        _as_written_check(host)
        results = await self._inner().resolve(host, port, family)
        kept = set(egress_screen(host, [r["host"] for r in results]))
        return [r for r in results if r["host"] in kept]

    async def close(self) -> None:
        if self._owned and self._resolver is not None:
            await self._resolver.close()


class EgressConnector(aiohttp.TCPConnector):
    """A ``TCPConnector`` whose every connection passes the egress rule.

    Names go through ``EgressResolver`` (wrapped around any resolver passed in). aiohttp skips
    the resolver for an address literal, so ``_resolve_host`` — where the connector turns any
    host, literal or name, into the addresses it connects to — checks literals first. A refusal
    reaches the caller as ``aiohttp.ClientConnectorDNSError`` whose ``os_error`` is the
    ``EgressRefused`` (see ``egress_refusal``).
    """

    def __init__(self, *, resolver: AbstractResolver | None = None, **kwargs) -> None:
        owned = resolver is None
        if not isinstance(resolver, EgressResolver):
            resolver = EgressResolver(resolver)
        super().__init__(resolver=resolver, **kwargs)
        self._resolver_owner = owned  # close the resolver we made along with the connector

    async def _resolve_host(self, host: str, port: int, traces=None) -> list[ResolveResult]:
        if not egress_listed(host):
            _as_written_check(host)
        return await super()._resolve_host(host, port, traces=traces)


# --- httpx: the sync callers (the LLM judge) ----------------------------------------------------


class _EgressNetworkBackend(httpcore.NetworkBackend):
    """httpcore's sync backend, connecting only to checked address literals."""

    def __init__(self, getaddrinfo=socket.getaddrinfo) -> None:
        self._inner = httpcore.SyncBackend()
        self._getaddrinfo = getaddrinfo

    def connect_tcp(
        self, host: str, port: int, timeout=None, local_address=None, socket_options=None
    ):
        def connect(address: str):
            return self._inner.connect_tcp(
                address,
                port,
                timeout=timeout,
                local_address=local_address,
                socket_options=socket_options,
            )

        if egress_listed(host):
            return connect(host)
        try:
            _as_written_check(host)
            infos = self._getaddrinfo(host, port, type=socket.SOCK_STREAM)
            addresses = egress_screen(host, dict.fromkeys(info[4][0] for info in infos))
        except OSError as exc:  # EgressRefused, or the lookup failed
            raise httpcore.ConnectError(str(exc)) from exc
        last: Exception | None = None
        for address in addresses:
            try:
                return connect(address)
            except httpcore.ConnectError as exc:
                last = exc
        raise last

    def connect_unix_socket(self, path, timeout=None, socket_options=None):
        raise httpcore.ConnectError("a provider is reached over TCP only")

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


class EgressTransport(httpx.HTTPTransport):
    """httpx's transport with the egress rule. A client given a transport ignores the proxy
    environment variables, like the gateway's own client: a proxy would do the lookup where it
    cannot be checked."""

    def __init__(self, *, getaddrinfo=socket.getaddrinfo) -> None:
        ssl_context = httpx.create_ssl_context()
        super().__init__(verify=ssl_context)
        # httpx takes no network backend; its pool does (httpcore's public parameter)
        self._pool = httpcore.ConnectionPool(
            ssl_context=ssl_context,
            network_backend=_EgressNetworkBackend(getaddrinfo),
        )


def egress_http_client(*, getaddrinfo=socket.getaddrinfo, **kwargs) -> httpx.Client:
    """An ``httpx.Client`` whose connections pass the egress rule."""
    return httpx.Client(transport=EgressTransport(getaddrinfo=getaddrinfo), **kwargs)
