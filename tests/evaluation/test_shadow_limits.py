"""Shadow calls in process: beyond ``FINOPS_SHADOW_CONCURRENCY`` in flight a shadow is skipped and
counted; a call served by neither router model (a budget downgrade) is not mirrored; stopping
the runtime waits for the shadows in flight."""

from __future__ import annotations

import asyncio
import zoneinfo
from datetime import UTC, datetime

from gateway import metrics
from gateway.attribution import Labels
from gateway.proxy import Call
from gateway.records import KeyRecord, ModelRecord, ProviderRecord, RouterRecord
from gateway.resolve import Plan
from gateway.runtime import runtime
from gateway.shadow import ShadowTicket, shadow_start

PROVIDER = ProviderRecord(slug="p", kind="openai", base_url="http://127.0.0.1:9/v1", api_key="",
                          api_version="")  # fmt: skip


def model(name: str) -> ModelRecord:
    return ModelRecord(name=name, upstream_model=name, mode="chat", max_output_tokens=None,
                       provider=PROVIDER, prices=())  # fmt: skip


STRONG, WEAK = model("big"), model("small")
ROUTER = RouterRecord(name="smart", strong=STRONG, weak=WEAK, scorer="heuristic", threshold=0.5,
                      shadow_rate=1.0)  # fmt: skip


def call(served: ModelRecord) -> Call:
    record = KeyRecord(
        key_id=1, name="k", org_id=1, org_slug="o", org_tz=zoneinfo.ZoneInfo("UTC"), team_id=1,
        team_slug="t", default_feature="", allowed_models=frozenset(), fallbacks=(),
        rpm_limit=None, tpm_limit=None, max_parallel=None, valid_until=None, revoked=False,
    )  # fmt: skip
    c = Call(
        request_id="r1",
        api="chat.completions",
        record=record,
        labels=Labels(feature="", endpoint="", end_user=""),
        body={"model": "router:smart", "messages": [{"role": "user", "content": "hi"}]},
        requested="router:smart",
        plan=Plan(deployments=[STRONG, WEAK], router="smart", router_decision="strong"),
        started=datetime.now(UTC),
        t0=0.0,
    )
    c.served = served
    return c


def skipped() -> float:
    return metrics.SHADOW_SKIPPED._value.get()


def test_shadows_beyond_the_limit_are_skipped_and_counted(settings):
    settings.FINOPS_SHADOW_CONCURRENCY = 2

    async def scenario():
        busy = {asyncio.create_task(asyncio.sleep(10)) for _ in range(2)}
        runtime.shadows.update(busy)
        try:
            before = skipped()
            assert shadow_start(call(STRONG), ShadowTicket(router=ROUTER, pair=False)) is None
            assert skipped() == before + 1
        finally:
            for task in busy:
                task.cancel()
            runtime.shadows.difference_update(busy)

    asyncio.run(scenario())


def test_a_call_served_by_neither_router_model_is_not_mirrored():
    async def scenario():
        before = skipped()
        assert shadow_start(call(model("cheap")), ShadowTicket(router=ROUTER, pair=False)) is None
        assert skipped() == before and not runtime.shadows

    asyncio.run(scenario())


def test_stopping_waits_for_shadows_in_flight():
    async def scenario():
        done = []

        async def shadow():
            await asyncio.sleep(0.2)
            done.append(True)

        task = asyncio.create_task(shadow())
        runtime.shadows.add(task)
        task.add_done_callback(runtime.shadows.discard)
        await runtime._shadows_drain()
        assert done == [True] and not runtime.shadows

    asyncio.run(scenario())
