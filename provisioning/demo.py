"""The demo organisation behind ``make run``: config/demo.yaml, a login, and a fresh key.

Loading is idempotent: the config is re-applied (no changes the second time), the demo login is
made to work again, and the demo key is replaced: every run revokes the previous ``demo`` key(s)
and mints a new one, because a secret is only ever shown once. With ``history_days``, the
org's generated history (``provisioning.demo_history``) is replaced by that many days.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction

from provisioning.config import config_apply, config_load
from provisioning.demo_history import DEFAULT_SEED, HistoryResult, demo_history_load
from teams.models import Membership, Organization, Role, Team, VirtualKey
from teams.services import key_mint, key_revoke, membership_add

DEMO_CONFIG = Path(settings.BASE_DIR) / "config" / "demo.yaml"
DEMO_SIM_URL = "http://127.0.0.1:9100"  # what config/demo.yaml points its providers at
DEMO_USERNAME = "demo@acme.test"
# Published on purpose (README, docs/config.md): the demo is for a laptop, never production;
# the load_demo command refuses to run with DEBUG off unless forced.
DEMO_PASSWORD = "finops-demo"  # noqa: S105
DEMO_KEY_NAME = "demo"
DEMO_KEY_TEAM = "search"


@dataclass(frozen=True)
class DemoInfo:
    org_slug: str
    username: str
    password: str
    key_secret: str
    config_changes: int = 0
    history: HistoryResult | None = None

    @property
    def org(self) -> str:
        return self.org_slug


def _sim_root(url: str) -> str:
    """``http://host:port`` from a simulator URL given with or without ``/v1``."""
    root = url.strip().rstrip("/")
    return root.removesuffix("/v1").rstrip("/")


def demo_config(*, sim_base_url: str = DEMO_SIM_URL) -> dict:
    """config/demo.yaml as data, its providers pointed at the simulator at ``sim_base_url``."""
    data = config_load(text=DEMO_CONFIG.read_text(encoding="utf-8"))
    root = _sim_root(sim_base_url)
    for provider in data.get("providers") or []:
        url = provider.get("base_url", "")
        if url.startswith(DEMO_SIM_URL):
            provider["base_url"] = root + url[len(DEMO_SIM_URL) :]
    return data


def _demo_user(org: Organization):
    User = get_user_model()
    user = User.objects.filter(username__iexact=DEMO_USERNAME).first()
    if user is None:
        user = User(username=DEMO_USERNAME, email=DEMO_USERNAME)
    dirty = user.pk is None or not user.is_staff or not user.is_active
    user.is_staff = True
    user.is_active = True
    if user.pk is None or not user.check_password(DEMO_PASSWORD):
        user.set_password(DEMO_PASSWORD)
        dirty = True
    if dirty:
        user.save()
    if not Membership.objects.filter(user=user, org=org, team=None, role=Role.ADMIN).exists():
        Membership.objects.filter(user=user, org=org, team=None).delete()  # e.g. a finance role
        membership_add(actor=None, org=org, user=user, role=Role.ADMIN)
    return user


def demo_load(
    *,
    sim_base_url: str = DEMO_SIM_URL,
    history_days: int | None = None,
    seed: int = DEFAULT_SEED,
    now: datetime | None = None,
) -> DemoInfo:
    """Apply the demo config, ensure the demo login (staff, admin of the org, not a superuser)
    and replace the demo key. Returns the login and the new key's secret. ``history_days``
    (None: leave the history as it is; 0: remove it) regenerates the past from ``seed``."""
    data = demo_config(sim_base_url=sim_base_url)
    with transaction.atomic():
        result = config_apply(data=data)
        org = Organization.objects.get(slug=result.org_slug)
        user = _demo_user(org)
        for old in VirtualKey.objects.filter(org=org, name=DEMO_KEY_NAME, revoked_at__isnull=True):
            key_revoke(key=old, actor=user)
        team = Team.objects.get(org=org, slug=DEMO_KEY_TEAM)
        minted = key_mint(team=team, name=DEMO_KEY_NAME, actor=user)
    history = None
    if history_days is not None:
        history = demo_history_load(org, days=history_days, seed=seed, now=now)
    return DemoInfo(
        org_slug=org.slug,
        username=DEMO_USERNAME,
        password=DEMO_PASSWORD,
        key_secret=minted.secret,
        config_changes=len(result.changes),
        history=history,
    )
