"""Secrets never leave, over real HTTP: the live gateway's responses and its log file carry no
key secret or provider credential, and no prompt text (payload logging is off by default).
The in-process half is ``test_secrets_never_leave``."""

from __future__ import annotations

import httpx
import orjson
import pytest

pytestmark = pytest.mark.live


def test_the_live_gateway_never_logs_or_returns_secrets(live):
    provider_secret = "sk-sim-test"  # FINOPS_SIM_KEY of the live app (tests/live.py)
    client = httpx.Client(base_url=live.app.url, timeout=20)
    good = {"authorization": f"Bearer {live.key_secret}"}
    prompt = "secret-prompt-text-for-leak-check me@example.test"
    bodies = []
    calls = [
        ({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": prompt}]}, good),
        ({"model": "broken", "messages": [{"role": "user", "content": prompt}]}, good),
        ({"model": "failing-model", "messages": [{"role": "user", "content": prompt}]}, good),
        ({"model": "nope", "messages": [{"role": "user", "content": prompt}]}, good),
        ({"model": "gpt-4o-mini", "messages": []}, good),
        (
            {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": prompt}]},
            {"authorization": f"Bearer {live.key_secret[:-2]}xx"},
        ),
        (
            {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": prompt}]},
            {"authorization": f"Bearer {provider_secret}"},
        ),
    ]
    for body, headers in calls:
        response = client.post("/v1/chat/completions", content=orjson.dumps(body), headers=headers)
        bodies.append(response.text + str(dict(response.headers)))
    with client.stream(
        "POST",
        "/v1/chat/completions",
        headers=good,
        json={
            "model": "gpt-4o-mini",
            "messages": [{"role": "user", "content": prompt}],
            "stream": True,
        },
    ) as stream:
        bodies.append("".join(stream.iter_text()))
    bodies.append(client.get("/v1/models", headers=good).text)
    bodies.append(client.get("/metrics").text)
    client.close()
    # let the ledger flush and anything it logs reach the file
    marker = httpx.post(
        f"{live.base_url}/chat/completions",
        headers=good,
        json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}]},
        timeout=20,
    )
    live.events(marker.headers["x-request-id"])
    log = live.app.log()
    assert log, "the live app wrote no log at all"
    for where, text in [*(("response", b) for b in bodies), ("app log", log)]:
        assert live.key_secret not in text, f"the key secret is in the {where}"
        assert live.key_secret[6:] not in text, f"the key secret body is in the {where}"
        assert provider_secret not in text, f"the provider key is in the {where}"
    # payload logging is off by default: the prompt is not in the log
    assert "secret-prompt-text-for-leak-check" not in log
