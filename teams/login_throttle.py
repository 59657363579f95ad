"""Login rate limiting: failed sign-ins are counted per (client address, username) and per
client address in Django's cache (Redis when ``REDIS_URL`` is set, so every process shares the
count), and a sign-in is refused with HTTP 429 once either count reaches its limit within the
window. A successful sign-in clears the pair's count; the address count only expires.

Both the HTML login page and the admin's login form go through ``ThrottledLoginView``.

**Which address counts.** ``REMOTE_ADDR``, the immediate peer, unless that peer is listed in
``FINOPS_TRUSTED_PROXIES``: then ``X-Forwarded-For`` is read from the right, skipping the hops
that are trusted proxies themselves, and the first one that is not is the client (if every hop
is trusted, the left-most). Everything left of that hop was written by the client and is never
believed, however often it changes. This is the rule uvicorn applies under ``finops.serve``
(which gives it the same list), so there ``REMOTE_ADDR`` already is the client and applying it
again changes nothing: an untrusted address reads no header, and when every hop is trusted
both give the left-most. The app applies it anyway so that it also holds where no server
rewrites the address (a WSGI server, the test client). With the list empty (the default) no
forwarded header is believed at all; a plain ``uvicorn finops.asgi:application``, which trusts
``127.0.0.1`` by default, must not be used for that reason.
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache

from django.conf import settings
from django.contrib.auth import views as auth_views
from django.core.cache import cache
from django.utils.crypto import salted_hmac

_PREFIX = "finops:login-fail:"


@lru_cache(maxsize=8)
def _networks(trusted: tuple[str, ...]) -> tuple:
    return tuple(ipaddress.ip_network(net, strict=False) for net in trusted)


def _trusted(host: str, networks: tuple) -> bool:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return any(address in net for net in networks)


def _hop_host(hop: str) -> str:
    """A forwarded hop without its port (``1.2.3.4:5678``, ``[::1]:80``), as uvicorn reads it."""
    if hop.startswith("["):
        end = hop.find("]")
        if end == -1:
            return hop
        rest = hop[end + 1 :]
        return hop[1:end] if not rest or rest.startswith(":") else hop
    if hop.count(":") == 1:
        host, port = hop.rsplit(":", 1)
        return host if port.isdigit() else hop
    return hop


def _client(request) -> str:
    """The client's address: see the module docstring for when X-Forwarded-For counts."""
    peer = request.META.get("REMOTE_ADDR", "") or "-"
    networks = _networks(tuple(settings.FINOPS_TRUSTED_PROXIES))
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
    if not networks or not forwarded or not _trusted(peer, networks):
        return peer
    hops = [_hop_host(hop.strip()) for hop in forwarded.split(",")]
    for hop in reversed(hops):
        if not _trusted(hop, networks):
            return hop or peer
    return hops[0] or peer


def _keys(request, username: str) -> tuple[str, str]:
    # Hashed, so neither usernames nor addresses sit in the cache in the clear.
    who = salted_hmac("login-throttle", f"{_client(request)}|{username.casefold()}").hexdigest()
    where = salted_hmac("login-throttle", _client(request)).hexdigest()
    return _PREFIX + "u:" + who[:32], _PREFIX + "ip:" + where[:32]


def login_blocked(request, username: str) -> bool:
    pair, address = _keys(request, username)
    counts = cache.get_many([pair, address])
    return (
        counts.get(pair, 0) >= settings.FINOPS_LOGIN_FAILURES_PER_USER
        or counts.get(address, 0) >= settings.FINOPS_LOGIN_FAILURES_PER_ADDRESS
    )


def login_failed(request, username: str) -> None:
    window = settings.FINOPS_LOGIN_WINDOW_SECONDS
    for key in _keys(request, username):
        if not cache.add(key, 1, timeout=window):
            try:
                cache.incr(key)
            except ValueError:  # expired between add and incr
                cache.set(key, 1, timeout=window)


def login_succeeded(request, username: str) -> None:
    cache.delete(_keys(request, username)[0])


class ThrottledLoginView(auth_views.LoginView):
    def post(self, request, *args, **kwargs):
        username = request.POST.get("username", "")[:150]
        if login_blocked(request, username):
            # An unbound form: a bound one would authenticate while rendering its errors,
            # which is exactly the password check this refuses to make.
            form = self.get_form_class()(request, initial={"username": username})
            context = self.get_context_data(form=form, throttled=True)
            response = self.render_to_response(context)
            response.status_code = 429
            response["Retry-After"] = str(settings.FINOPS_LOGIN_WINDOW_SECONDS)
            return response
        response = super().post(request, *args, **kwargs)
        if request.user.is_authenticated:
            login_succeeded(request, username)
        else:
            login_failed(request, username)
        return response
