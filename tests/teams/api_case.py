"""A TwoOrgsTestCase with small helpers for calling the REST API as one of its users."""

from __future__ import annotations

from django.test import override_settings
from rest_framework.test import APIClient

from tests.base import TwoOrgsTestCase

API = "/api/v1"


# The shared world creates nine users; a fast hasher keeps that from dominating the run.
@override_settings(PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"])
class APITestCase(TwoOrgsTestCase):
    def client_for(self, user) -> APIClient:
        client = APIClient()
        client.force_login(user)
        return client

    def get(self, user, path: str, **params):
        return self.client_for(user).get(f"{API}{path}", params)

    def post(self, user, path: str, data: dict | None = None):
        return self.client_for(user).post(f"{API}{path}", data or {}, format="json")

    def patch(self, user, path: str, data: dict):
        return self.client_for(user).patch(f"{API}{path}", data, format="json")

    def delete(self, user, path: str):
        return self.client_for(user).delete(f"{API}{path}")

    def rows(self, user, path: str, **params) -> list[dict]:
        response = self.get(user, path, **params)
        self.assertEqual(response.status_code, 200, response.content)
        return response.json()["results"]

    def ids(self, user, path: str, **params) -> set:
        return {row["id"] for row in self.rows(user, path, **params)}

    def assert_not_found_for(self, users, *requests) -> None:
        """Each (method, path[, body]) answers 404 to each user: the object is not theirs."""
        for user in users:
            for method, path, *body in requests:
                with self.subTest(user=user.username, method=method, path=path):
                    client = self.client_for(user)
                    call = getattr(client, method)
                    args = (f"{API}{path}", body[0] if body else {})
                    response = call(*args, format="json")
                    self.assertEqual(response.status_code, 404, response.content)
