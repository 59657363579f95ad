"""Login rate limiting: failed sign-ins are counted per (client address, username) and per
client address in Django's cache (Redis when ``REDIS_URL`` is set, so every process shares the
count), and a sign-in is refused with HTTP 429 once either count reaches its limit within the
window. A successful sign-in clears the pair's count; the address count only expires.

Both the HTML login page and the admin's login form go through ``ThrottledLoginView``.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth import views as auth_views
from django.core.cache import cache
from django.utils.crypto import salted_hmac

_PREFIX = "finops:login-fail:"


def _client(request) -> str:
    """The peer address. Behind a proxy, set ``FINOPS_TRUSTED_PROXY_HOPS`` to read that many
    hops from the right of ``X-Forwarded-For`` (a client can forge everything left of them)."""
    hops = settings.FINOPS_TRUSTED_PROXY_HOPS
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
    if hops and forwarded:
        parts = [p.strip() for p in forwarded.split(",") if p.strip()]
        if len(parts) >= hops:
            return parts[-hops]
    return request.META.get("REMOTE_ADDR", "") or "-"


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
