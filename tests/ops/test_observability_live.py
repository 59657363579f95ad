"""/metrics over real HTTP: two uvicorn workers, one exposition that adds both up, JSON logs."""

from __future__ import annotations

import os

import httpx
import openai
import orjson
import pytest

from tests.live import live_database_url, start_app
from tests.ops.test_observability import MESSAGES, sample

pytestmark = pytest.mark.live


@pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="two workers need REDIS_URL")
def test_metrics_add_up_over_both_worker_processes(live, live_tmp):
    with live.blocker.unblock():
        database_url = live_database_url()
    app = start_app(
        live_tmp,
        database_url=database_url,
        workers=2,
        FINOPS_LOG_FORMAT="json",
        REDIS_URL=os.environ["REDIS_URL"],
    )
    try:
        gateway = openai.OpenAI(base_url=f"{app.url}/v1", api_key=live.key_secret, max_retries=0)
        request_ids = set()
        for _ in range(24):
            # a new connection each time, so both workers serve some of the calls
            with httpx.Client() as http:
                response = http.post(
                    f"{app.url}/v1/chat/completions",
                    headers={"Authorization": f"Bearer {live.key_secret}"},
                    json={"model": "gpt-4o-mini", "messages": MESSAGES},
                )
            assert response.status_code == 200, response.text
            request_ids.add(response.headers["x-request-id"])
        gateway.models.list()
        counts = set()
        for _ in range(6):  # every scrape, whichever worker answers it, sees all 24
            with httpx.Client() as http:
                text = http.get(f"{app.url}/metrics").text
            counts.add(
                sample(text, "finops_gateway_requests_total", api="chat.completions", code="200")
            )
            assert (
                sample(text, "finops_gateway_request_seconds_count", api="chat.completions") == 24
            )
        assert counts == {24.0}
        # JSON log lines name their request ids
        lines = [orjson.loads(x) for x in app.log().splitlines() if x.startswith("{")]
        assert all("request_id" in x for x in lines)
    finally:
        app.stop()
