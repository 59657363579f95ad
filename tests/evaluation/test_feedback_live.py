"""``POST /v1/feedback`` over real HTTP: a key scores its own requests (stored, the pair labelled);
another key's request is "not found" in OpenAI's error shape; bad bodies are 400s."""

from __future__ import annotations

import uuid

import httpx
import pytest

from evaluation.models import Feedback
from tests import factories as f
from tests.evaluation.live_eval import HARD, client

pytestmark = pytest.mark.live


def post(live, secret: str, body, **kwargs) -> httpx.Response:
    content = body if isinstance(body, bytes) else None
    return httpx.post(
        f"{live.base_url}/feedback",
        json=None if content is not None else body,
        content=content,
        headers={"authorization": f"Bearer {secret}"},
        timeout=30,
        **kwargs,
    )


def error(response: httpx.Response) -> dict:
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"message", "type", "param", "code"}
    return body["error"]


def test_a_key_scores_only_its_own_requests(live):
    raw = client(live).chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=HARD, max_tokens=8
    )
    request_id = raw.headers["x-request-id"]
    live.events(request_id)  # feedback needs the request in the ledger
    with live.blocker.unblock():
        other = f.make_key(live.team, f"feedback-other-{uuid.uuid4().hex[:8]}")

    refused = post(live, other.secret, {"request_id": request_id, "score": 1})
    assert refused.status_code == 404
    err = error(refused)
    assert (err["code"], err["param"], err["type"]) == (
        "request_not_found",
        "request_id",
        "invalid_request_error",
    )
    unknown = post(live, live.key_secret, {"request_id": uuid.uuid4().hex, "score": 1})
    assert unknown.status_code == 404 and error(unknown)["code"] == "request_not_found"

    ok = post(live, live.key_secret, {"request_id": request_id, "score": 0.8, "comment": "good"})
    assert ok.status_code == 200, ok.text
    assert ok.json() == {"object": "feedback", "request_id": request_id, "score": 0.8}
    again = post(live, live.key_secret, {"request_id": request_id, "score": 0.25})
    assert again.status_code == 200
    with live.blocker.unblock():
        [stored] = Feedback.objects.filter(request_id=request_id)
    assert (stored.key_id, stored.score, stored.model) == (live.key.pk, 0.25, "gpt-4o-mini")


@pytest.mark.parametrize(
    ("body", "code", "param"),
    [
        (b"{not json", "invalid_json", None),
        (b"", "invalid_request_error", None),
        ([1, 2], "invalid_request_error", None),
        ({"score": 1}, "invalid_value", "request_id"),
        ({"request_id": "abc", "score": 1.5}, "invalid_value", "score"),
        ({"request_id": "abc", "score": "high"}, "invalid_type", "score"),
        ({"request_id": "abc", "score": 1, "comment": 5}, "invalid_value", "comment"),
    ],
)
def test_bad_feedback_bodies_are_400(live, body, code, param):
    response = post(live, live.key_secret, body)
    assert response.status_code == 400, response.text
    err = error(response)
    assert (err["code"], err["param"]) == (code, param)


def test_feedback_needs_a_key_and_a_post(live):
    assert post(live, "sk-fo-nope", {"request_id": "x", "score": 1}).status_code == 401
    response = httpx.get(
        f"{live.base_url}/feedback", headers={"authorization": f"Bearer {live.key_secret}"}
    )
    assert response.status_code == 405 and response.headers["allow"] == "POST"
    assert error(response)["code"] == "method_not_allowed"
