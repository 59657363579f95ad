"""Key changes reach every gateway process within a second (Redis stamp when REDIS_URL is set,
the database stamp otherwise)."""

from __future__ import annotations

import time

import httpx
import pytest

from teams.services import key_mint, key_revoke, key_update
from tests.live import live_database_url, start_app

pytestmark = pytest.mark.live

BODY = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}


def _status(url: str, secret: str, model: str = "gpt-4o-mini") -> int:
    return httpx.post(
        f"{url}/v1/chat/completions",
        json=dict(BODY, model=model),
        headers={"authorization": f"Bearer {secret}"},
        timeout=10,
    ).status_code


def _within_a_second(check) -> float:
    start = time.monotonic()
    while not check():
        elapsed = time.monotonic() - start
        assert elapsed < 1.0, "a change took more than a second to reach a gateway process"
        time.sleep(0.02)
    return time.monotonic() - start


def test_two_processes_see_a_revocation_and_a_change_within_a_second(live, live_tmp):
    with live.blocker.unblock():
        database_url = live_database_url()
    second = start_app(live_tmp, database_url=database_url)
    try:
        urls = [live.app.url, second.url]
        with live.blocker.unblock():
            minted = key_mint(team=live.team, name="two-procs")
        assert [_status(u, minted.secret) for u in urls] == [200, 200]  # both now cache it

        with live.blocker.unblock():
            key_update(key=minted.key, allowed_models=["gpt-4o"])
        for url in urls:
            _within_a_second(lambda url=url: _status(url, minted.secret) == 403)

        with live.blocker.unblock():
            key_revoke(key=minted.key)
        for url in urls:
            _within_a_second(lambda url=url: _status(url, minted.secret, "gpt-4o") == 401)
    finally:
        second.stop()
