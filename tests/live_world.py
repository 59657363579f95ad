"""The committed world the live gateway serves (see ``tests/live.py``)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from decimal import Decimal

from gateway.models import LLMModel, ModelGroup, ModelPrice, Provider, Router, UsageEvent
from teams.models import Organization
from tests import factories as f

LIVE_ORG = "live-gw"


@dataclass
class LiveWorld:
    org: Organization
    team: object
    key_secret: str
    key: object
    app: object = None
    simulator: object = None
    blocker: object = None
    extra: dict = field(default_factory=dict)

    @classmethod
    def build(cls, *, sim_url: str, farm: dict[str, str]) -> LiveWorld:
        Organization.objects.filter(slug=LIVE_ORG).delete()
        org = f.make_org(LIVE_ORG)
        team = f.make_team(org, "search")
        f.make_feature(team, "summarize")
        provider = Provider.objects.create(
            org=org,
            slug="sim",
            kind="openai",
            base_url=f"{sim_url}/v1",
            api_key_env="FINOPS_SIM_KEY",
        )
        dead = Provider.objects.create(
            org=org, slug="dead", kind="openai", base_url="http://127.0.0.1:9/v1"
        )
        gpt4o = f.make_model(
            org,
            "gpt-4o",
            provider=provider,
            input_per_mtok="2.50",
            output_per_mtok="10.00",
            max_output_tokens=16384,
        )
        ModelPrice.objects.filter(model=gpt4o).update(cached_input_usd_per_mtok=Decimal("1.25"))
        mini = f.make_model(
            org, "gpt-4o-mini", provider=provider, input_per_mtok="0.15", output_per_mtok="0.60"
        )
        f.make_model(
            org,
            "text-embedding-3-small",
            provider=provider,
            input_per_mtok="0.02",
            output_per_mtok="0",
            mode="embedding",
        )
        broken = f.make_model(org, "broken", provider=dead, upstream_model="gpt-4o-mini")
        group = ModelGroup.objects.create(org=org, name="chat-pool")
        group.members.create(model=broken, weight=1)
        group.fallback_links.create(model=mini, position=0)
        for name, url in farm.items():
            p = Provider.objects.create(
                org=org,
                slug=name,
                kind="openai",
                base_url=f"{url}/v1",
                api_key_env="FINOPS_SIM_KEY",
            )
            f.make_model(org, f"{name}-model", provider=p, upstream_model="gpt-4o-mini")
        claude = Provider.objects.create(
            org=org,
            slug="sim-claude",
            kind="anthropic",
            base_url=sim_url,
            api_key_env="FINOPS_SIM_KEY",
        )
        f.make_model(
            org,
            "claude-sonnet",
            provider=claude,
            upstream_model="claude-sonnet-4-5",
            input_per_mtok="3.00",
            output_per_mtok="15.00",
            max_output_tokens=8192,
        )
        ModelPrice.objects.filter(model__org=org, model__name="claude-sonnet").update(
            cached_input_usd_per_mtok=Decimal("0.30"), cache_write_usd_per_mtok=Decimal("3.75")
        )
        azure = Provider.objects.create(
            org=org,
            slug="sim-azure",
            kind="azure",
            base_url=sim_url,
            api_version="2024-10-21",
            api_key_env="FINOPS_SIM_KEY",
        )
        f.make_model(
            org,
            "azure-gpt-4o",
            provider=azure,
            upstream_model="gpt4o-deploy",
            input_per_mtok="2.50",
            output_per_mtok="10.00",
        )
        native = Provider.objects.create(
            org=org,
            slug="sim-native",
            kind="openai",
            base_url=f"{sim_url}/v1",
            api_key_env="FINOPS_SIM_KEY",
            responses_api="native",  # the simulator serves /v1/responses itself
        )
        f.make_model(
            org,
            "gpt-native",
            provider=native,
            upstream_model="gpt-4o-mini",
            input_per_mtok="0.15",
            output_per_mtok="0.60",
        )
        failover = ModelGroup.objects.create(org=org, name="failover")
        failover.members.create(model=LLMModel.objects.get(org=org, name="failing-model"), weight=1)
        failover.fallback_links.create(model=mini, position=0)
        Router.objects.create(org=org, name="smart", strong=gpt4o, weak=mini)
        minted = f.make_key(team, "live-svc")
        return cls(org=org, team=team, key_secret=minted.secret, key=minted.key)

    def destroy(self) -> None:
        UsageEvent.objects.filter(org_id=self.org.pk).delete()
        org = Organization.objects.get(pk=self.org.pk)
        ModelGroup.objects.filter(org=org).delete()
        Router.objects.filter(org=org).delete()
        LLMModel.objects.filter(org=org).delete()
        org.delete()

    @property
    def base_url(self) -> str:
        return f"{self.app.url}/v1"

    def events(self, request_id: str, *, count: int = 1, timeout: float = 10.0) -> list[UsageEvent]:
        """The ledger rows of one request, waiting for the writer's next flush."""
        deadline = time.monotonic() + timeout
        with self.blocker.unblock():
            while True:
                rows = list(UsageEvent.objects.filter(request_id=request_id).order_by("attempt"))
                if len(rows) >= count or time.monotonic() > deadline:
                    return rows
                time.sleep(0.05)
