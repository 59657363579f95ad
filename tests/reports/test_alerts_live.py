"""End to end: traffic through the live gateway (official ``openai`` SDK) pushes a budget past 50%
and 80%; real Celery workers and beat (subprocesses, fast intervals) roll the ledger up and
evaluate the budget; a real SMTP server (aiosmtpd) receives exactly one email per threshold.

Broker: Redis (database 15) when ``REDIS_URL`` is set, else the embedded filesystem broker;
database: the test database (PostgreSQL, or the SQLite file), whichever the session uses.
Two workers consume the same queue, so the claims are exercised across processes too.
"""

from __future__ import annotations

import email
import email.policy
import os
import subprocess
import sys
import threading
import time
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import openai
import pytest
from django.db.models import Sum

from gateway.models import UsageEvent
from reports.models import BudgetAlert, DailySpend, HourlySpend, RollupState
from teams.models import Budget, Membership, Role, VirtualKey
from tests import factories as f
from tests.live import ROOT, child_env, free_port, live_database_url

pytestmark = pytest.mark.live

aiosmtpd_controller = pytest.importorskip("aiosmtpd.controller")

SITE = "http://finops.example.test"
MESSAGES = [{"role": "user", "content": "Summarise the quarterly spend report in one line."}]


class Inbox:
    """An aiosmtpd handler that keeps every message it accepts."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.messages: list[tuple[list[str], email.message.EmailMessage]] = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's hook name
        parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
        with self.lock:
            self.messages.append((list(envelope.rcpt_tos), parsed))
        return "250 Message accepted for delivery"

    def snapshot(self) -> list[tuple[list[str], email.message.EmailMessage]]:
        with self.lock:
            return list(self.messages)

    def wait_for(self, predicate, *, timeout: float, procs=()) -> list:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for proc in procs:
                assert proc.poll() is None, f"a Celery process exited with {proc.returncode}"
            found = [m for m in self.snapshot() if predicate(m[1])]
            if found:
                return found
            time.sleep(0.2)
        raise AssertionError(
            f"no such email within {timeout}s; got {[m[1]['subject'] for m in self.snapshot()]}"
        )


@pytest.fixture
def smtp():
    inbox = Inbox()
    controller = aiosmtpd_controller.Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield controller, inbox
    controller.stop()


def _broker_url() -> str | None:
    """Redis database 15 next to ``REDIS_URL`` (emptied first: it is this test's own)."""
    redis_url = os.environ.get("REDIS_URL")
    if not redis_url:
        return None  # the embedded filesystem broker under the workers' FINOPS_VAR_DIR
    parts = urlsplit(redis_url)
    url = urlunsplit((parts.scheme, parts.netloc, "/15", "", ""))
    import redis

    client = redis.Redis.from_url(url)
    client.flushdb()
    client.close()
    return url


def _start(argv: list[str], *, env: dict, log: Path) -> subprocess.Popen:
    return subprocess.Popen(  # noqa: S603
        [sys.executable, "-m", "celery", "-A", "finops", *argv, "--loglevel", "INFO"],
        cwd=ROOT,
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def test_budget_emails_arrive_once_per_threshold_via_celery_worker_and_beat(live, live_tmp, smtp):
    controller, inbox = smtp
    with live.blocker.unblock():
        RollupState.objects.all().delete()
        minted = f.make_key(live.team, "alerts-it")
        lead = f.make_user("lead-it@live.test", email="lead-it@live.test")
        Membership.objects.create(user=lead, org=live.org, team=live.team, role=Role.LEAD)
        database_url = live_database_url()
    client = openai.OpenAI(base_url=live.base_url, api_key=minted.secret, max_retries=0)

    def call() -> Decimal:
        raw = client.chat.completions.with_raw_response.create(
            model="gpt-4o",
            messages=MESSAGES,
            extra_headers={"X-FinOps-Feature": "summarize", "X-FinOps-Endpoint": "/it"},
        )
        raw.parse()
        return Decimal(raw.headers["x-finops-cost"])

    per_call = call()  # (2.5 * prompt + 10 * 16) / 1e6: at most 7 places, so 10x fits 6
    limit = per_call * 10
    with live.blocker.unblock():
        budget = Budget.objects.create(
            org=live.org,
            scope="key",
            team=live.team,
            key=minted.key,
            period="month",
            limit_usd=limit,
            action="alert",
            alert_thresholds=[50, 80],
            recipients=["finops-it@example.test"],
        )
    assert budget.limit_usd == limit

    var = live_tmp / "celery-var"
    var.mkdir(exist_ok=True)
    overrides = dict(
        DATABASE_URL=database_url,
        FINOPS_VAR_DIR=str(var),
        EMAIL_URL=f"smtp://{controller.hostname}:{controller.port}",
        SITE_URL=SITE,
        FINOPS_ROLLUP_INTERVAL_SECONDS="0.5",
        FINOPS_BUDGET_CHECK_INTERVAL_SECONDS="0.5",
        FINOPS_ROLLUP_SAFETY_LAG_SECONDS="0.5",
        FINOPS_TESTING="1",
    )
    broker = _broker_url()
    env = child_env(**overrides)
    if broker:
        env["CELERY_BROKER_URL"] = broker
    else:
        env.pop("CELERY_BROKER_URL", None)
    worker_args = ["worker", "--pool", "solo", "--without-gossip", "--without-mingle"]
    procs = [
        _start([*worker_args, "-n", "w1@%h"], env=env, log=live_tmp / "celery-w1.log"),
        _start([*worker_args, "-n", "w2@%h"], env=env, log=live_tmp / "celery-w2.log"),
        _start(
            ["beat", "--schedule", str(var / "celerybeat-schedule")],
            env=env,
            log=live_tmp / "celery-beat.log",
        ),
    ]
    try:
        for _ in range(5):  # 6 calls: 60%
            call()
        first = inbox.wait_for(lambda m: "50%" in m["subject"], timeout=90, procs=procs)
        for _ in range(3):  # 9 calls: 90%
            call()
        inbox.wait_for(lambda m: "80%" in m["subject"], timeout=60, procs=procs)
        time.sleep(1.5)  # three more beat cycles: nothing else may arrive

        # the budget's alerts: other alerts of the shared live org (an over-bound call another
        # live test made) are not this test's to count
        messages = [m for m in inbox.snapshot() if m[1]["X-FinOps-Alert-Kind"] == "threshold"]
        subjects = sorted(m["subject"] for _, m in messages)
        assert len(messages) == 2, subjects
        assert "50% of the monthly budget" in subjects[0]
        assert "80% of the monthly budget" in subjects[1]
        for rcpt, message in messages:
            assert sorted(rcpt) == ["finops-it@example.test", "lead-it@live.test"]
            assert message["X-FinOps-Alert-Kind"] == "threshold"
            text = message.get_body(("plain",)).get_content()
            html = message.get_body(("html",)).get_content()
            assert "feature summarize" in text
            assert "<strong>summarize</strong>" in html
            assert f"{SITE}/reports/alerts/" in text
            assert f'href="{SITE}/reports/alerts/' in html
        assert "key alerts-it" in first[0][1]["subject"]

        with live.blocker.unblock():
            alerts = BudgetAlert.objects.filter(budget=budget).order_by("threshold")
            assert [(a.threshold, a.status) for a in alerts] == [(50, "sent"), (80, "sent")]
            assert alerts[1].spent_usd == per_call * 9
            # the rollups reconcile with the ledger for this key, to the cent and beyond
            ledger = UsageEvent.objects.filter(key_id=minted.key.pk).aggregate(s=Sum("cost"))["s"]
            rolled = DailySpend.objects.filter(key_id=minted.key.pk).aggregate(s=Sum("cost"))["s"]
            hourly = HourlySpend.objects.filter(key_id=minted.key.pk).aggregate(s=Sum("cost"))["s"]
            assert ledger == per_call * 9
            assert rolled == hourly == ledger
    finally:
        for proc in procs:
            _stop(proc)
        with live.blocker.unblock():
            BudgetAlert.objects.filter(org=live.org).delete()
            budget_id = budget.pk
            Budget.objects.filter(pk=budget_id).delete()
            Membership.objects.filter(user=lead).delete()
            lead.delete()
            VirtualKey.objects.filter(pk=minted.key.pk).delete()
            DailySpend.objects.filter(org_id=live.org.pk).delete()
            HourlySpend.objects.filter(org_id=live.org.pk).delete()
            RollupState.objects.all().delete()
    logs = "".join((live_tmp / n).read_text(errors="replace") for n in ("celery-w1.log",))
    assert "Traceback" not in logs, logs[-4000:]
