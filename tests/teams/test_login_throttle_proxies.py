"""The sign-in throttle believes X-Forwarded-For only from ``FINOPS_TRUSTED_PROXIES`` (the same
rule ``finops.serve`` gives uvicorn; over real HTTP: ``tests/test_serve_live.py``)."""

from __future__ import annotations

from django.core.cache import cache
from django.test import RequestFactory, SimpleTestCase, override_settings
from django.urls import reverse

from teams.login_throttle import _client
from tests.base import TwoOrgsTestCase

THROTTLE = dict(
    FINOPS_LOGIN_FAILURES_PER_USER=3,
    FINOPS_LOGIN_FAILURES_PER_ADDRESS=1000,
    FINOPS_LOGIN_WINDOW_SECONDS=600,
)


@override_settings(**THROTTLE)
class ForwardedForTests(TwoOrgsTestCase):
    def setUp(self):
        cache.clear()

    def attempt(self, forwarded: str, password: str = "wrong", peer: str = "127.0.0.1"):
        return self.client.post(
            reverse("login"),
            {"username": "lead@acme.test", "password": password},
            REMOTE_ADDR=peer,
            HTTP_X_FORWARDED_FOR=forwarded,
        )

    @override_settings(FINOPS_TRUSTED_PROXIES=[])
    def test_rotating_x_forwarded_for_from_loopback_does_not_escape_the_throttle(self):
        statuses = [self.attempt(f"1.2.3.{i}").status_code for i in range(20)]
        self.assertEqual(statuses[:3], [200, 200, 200])
        self.assertEqual(set(statuses[3:]), {429})

    @override_settings(FINOPS_TRUSTED_PROXIES=["127.0.0.1/32"])
    def test_a_trusted_proxys_x_forwarded_for_names_the_client(self):
        statuses = [self.attempt(f"1.2.3.{i}").status_code for i in range(20)]
        self.assertEqual(set(statuses), {200})  # twenty clients, one failure each
        for _ in range(3):
            self.attempt("9.9.9.9")
        self.assertEqual(self.attempt("9.9.9.9", password="pw-Test-12345").status_code, 429)

    @override_settings(FINOPS_TRUSTED_PROXIES=["10.0.0.0/8"])
    def test_an_untrusted_peer_cannot_pose_as_the_trusted_proxy(self):
        statuses = [
            self.attempt(f"1.2.3.{i}, 10.0.0.7", peer="203.0.113.9").status_code for i in range(6)
        ]
        self.assertEqual(statuses, [200, 200, 200, 429, 429, 429])


class ClientAddressTests(SimpleTestCase):
    def address(self, peer: str, forwarded: str | None = None) -> str:
        extra = {"HTTP_X_FORWARDED_FOR": forwarded} if forwarded is not None else {}
        return _client(RequestFactory().get("/", REMOTE_ADDR=peer, **extra))

    @override_settings(FINOPS_TRUSTED_PROXIES=[])
    def test_no_trusted_proxy_means_the_peer(self):
        self.assertEqual(self.address("127.0.0.1", "1.2.3.4"), "127.0.0.1")

    @override_settings(FINOPS_TRUSTED_PROXIES=["10.0.0.0/8", "127.0.0.1/32"])
    def test_the_right_most_hop_that_is_not_a_trusted_proxy(self):
        # forged left part, then the client, then two of our proxies
        self.assertEqual(self.address("127.0.0.1", "6.6.6.6, 1.2.3.4, 10.1.1.1"), "1.2.3.4")
        self.assertEqual(self.address("127.0.0.1", "1.2.3.4:5678"), "1.2.3.4")
        self.assertEqual(self.address("127.0.0.1", "[2001:db8::1]:443"), "2001:db8::1")
        self.assertEqual(self.address("127.0.0.1", "10.2.2.2, 10.1.1.1"), "10.2.2.2")
        self.assertEqual(self.address("127.0.0.1", ""), "127.0.0.1")
        self.assertEqual(self.address("127.0.0.1", "1.2.3.4, "), "127.0.0.1")  # as uvicorn
        self.assertEqual(self.address("192.0.2.1", "1.2.3.4"), "192.0.2.1")

    @override_settings(FINOPS_TRUSTED_PROXIES=["10.0.0.0/8", "127.0.0.1/32"])
    def test_applying_the_rule_again_after_uvicorn_changes_nothing(self):
        from uvicorn.middleware.proxy_headers import _TrustedHosts

        uvicorn_rule = _TrustedHosts(["10.0.0.0/8", "127.0.0.1/32"])
        for forwarded in (
            "6.6.6.6, 1.2.3.4, 10.1.1.1",
            "10.2.2.2, 10.1.1.1",
            "1.2.3.4:80",
            "[2001:db8::1]:443, 10.0.0.1",
        ):
            rewritten = uvicorn_rule.get_trusted_client_address(forwarded)[0]
            self.assertEqual(
                self.address(rewritten, forwarded), self.address("127.0.0.1", forwarded)
            )
