"""A Celery worker killed in the middle of a rollup or an alert run: the next run completes the
work without double counting and without a second email.

The "worker" is a real process (``manage.py rollup`` / an alert run) killed with SIGKILL at a
point it is known to be in the middle of its work: the rollup while its queries run (seen in
``pg_stat_activity``), the alert run while its SMTP conversation hangs on a server that never
answers ``DATA``.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from django.core import mail
from django.db import connection
from django.db.models import Sum

from gateway.models import UsageEvent
from reports.models import BudgetAlert, DailySpend, HourlySpend
from reports.services.rollup import usage_rollup
from teams.models import Budget, Role
from tests import factories as f
from tests.live import live_database_url

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="kills a worker mid-query: needs PostgreSQL"
)


def worker(code: str, **env) -> subprocess.Popen:
    full = dict(os.environ, DATABASE_URL=live_database_url(), FINOPS_TESTING="1", **env)
    full.pop("DJANGO_SETTINGS_MODULE", None)
    return subprocess.Popen(  # noqa: S603
        [sys.executable, "manage.py", "shell", "-c", code],
        cwd=ROOT,
        env=full,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def wait_for(check, timeout: float = 60.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def seed_ledger(org, team, rows: int) -> None:
    """``rows`` ledger rows over two days, in one INSERT … SELECT (fast enough for a test)."""
    table = UsageEvent._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            INSERT INTO {table} (event_id, request_id, attempt, started_at, ended_at, org_id,
                team_id, key_id, feature, endpoint, end_user, api, requested_model, model,
                upstream_model, provider, status, error_code, prompt_tokens, completion_tokens,
                cached_tokens, cache_write_tokens, input_cost, cached_input_cost,
                cache_write_cost, output_cost, cost, latency_ms, streamed, estimated, router,
                router_scorer, router_decision, shadow, budget_action, inserted_at)
            SELECT gen_random_uuid(), 'kill-' || g, 1,
                   now() - interval '2 days' + g * interval '1 second',
                   now() - interval '2 days' + g * interval '1 second' + interval '100 ms',
                   %s, %s, NULL, 'f' || (g %% 7), '/e' || (g %% 5), '', 'chat.completions',
                   'gpt-4o-mini', CASE WHEN g %% 3 = 0 THEN 'gpt-4o' ELSE 'gpt-4o-mini' END,
                   'gpt-4o-mini', 'sim', 'ok', '', 100 + g %% 50, 20 + g %% 10, 0, 0,
                   (100 + g %% 50) * 0.00000015, 0, 0, (20 + g %% 10) * 0.0000006,
                   (100 + g %% 50) * 0.00000015 + (20 + g %% 10) * 0.0000006,
                   50 + g %% 900, false, false, '', '', '', false, '', now()
            FROM generate_series(1, %s) AS g
            """,  # noqa: S608
            [org.pk, team.pk, rows],
        )


def rollups_equal_the_ledger(org) -> None:
    ledger = UsageEvent.objects.filter(org_id=org.pk).aggregate(c=Sum("cost"), n=Sum("attempt"))
    for table in (HourlySpend, DailySpend):
        rolled = table.objects.filter(org_id=org.pk).aggregate(c=Sum("cost"), n=Sum("attempts"))
        assert (rolled["c"], rolled["n"]) == (ledger["c"], ledger["n"]), table.__name__


@pytest.mark.django_db(transaction=True)
def test_a_rollup_killed_midway_is_completed_by_the_next_run_without_double_counting():
    org = f.make_org("killed-rollup")
    team = f.make_team(org, "search")
    seed_ledger(org, team, 150_000)
    proc = worker(
        "from reports.services.rollup import usage_rollup; usage_rollup()",
        FINOPS_ROLLUP_WORKERS="1",
    )

    def rollup_running() -> bool:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND pid <> pg_backend_pid() AND state = 'active' AND query ILIKE %s",
                ["%INSERT INTO%reports_%"],
            )
            return cursor.fetchone()[0] > 0

    try:
        wait_for(rollup_running, what="the rollup's inserts")
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=30) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
    # The dead worker's transaction rolled back: nothing half-written is visible.
    assert not HourlySpend.objects.filter(org_id=org.pk).exists()
    result = usage_rollup()  # the next run: waits for the dead session's locks to go
    assert result.events >= 150_000
    rollups_equal_the_ledger(org)
    assert usage_rollup().events == 0  # and once more: nothing new, nothing doubled
    rollups_equal_the_ledger(org)


class HangingSMTP:
    """Greets, accepts the envelope, then never answers ``DATA``: a send stuck midway."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.reached_data = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._talk, args=(conn,), daemon=True).start()

    def _talk(self, conn: socket.socket) -> None:
        conn.sendall(b"220 hang.test ESMTP\r\n")
        buffer = b""
        while True:
            try:
                data = conn.recv(4096)
            except OSError:
                return
            if not data:
                return
            buffer += data
            while b"\r\n" in buffer:
                line, buffer = buffer.split(b"\r\n", 1)
                verb = line[:4].upper()
                if verb in (b"EHLO", b"HELO"):
                    conn.sendall(b"250 hang.test\r\n")
                elif verb in (b"MAIL", b"RCPT"):
                    conn.sendall(b"250 ok\r\n")
                elif verb == b"DATA":
                    self.reached_data.set()  # and never answer
                else:
                    conn.sendall(b"250 ok\r\n")

    def close(self) -> None:
        self.sock.close()


@pytest.mark.django_db(transaction=True)
def test_an_alert_run_killed_while_sending_sends_exactly_one_email_later(settings):
    org = f.make_org("killed-alerts")
    team = f.make_team(org, "search")
    lead = f.make_user("lead@killed.test")
    f.make_member(lead, org, Role.LEAD, team)
    Budget.objects.create(
        org=org,
        scope="team",
        team=team,
        period="month",
        limit_usd=Decimal("0.01"),
        action="alert",
        alert_thresholds=[50, 80, 100],
    )
    from tests.reports.ledger import event

    event(org=org, team=team, input_cost="0.009", output_cost="0", started_at=datetime.now(UTC))
    usage_rollup()

    smtp = HangingSMTP()
    proc = worker(
        "from reports.services.alerts import budget_alerts_evaluate; budget_alerts_evaluate()",
        EMAIL_URL=f"smtp://127.0.0.1:{smtp.port}",
    )
    try:
        assert smtp.reached_data.wait(60), "the worker never got to sending"
        claimed = BudgetAlert.objects.filter(org=org, claimed_at__isnull=False)
        assert claimed.count() == 1  # the 80 % alert; the 50 % one crossed with it is superseded
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=30) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
        smtp.close()

    from reports.services.alerts import budget_alerts_evaluate

    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    mail.outbox = []
    # Within the claim's lifetime the next run leaves the dead worker's claim alone …
    budget_alerts_evaluate(now=datetime.now(UTC) + timedelta(minutes=1))
    assert mail.outbox == []
    # … after it, the alert is sent once, and never again.
    budget_alerts_evaluate(now=datetime.now(UTC) + timedelta(minutes=11))
    budget_alerts_evaluate(now=datetime.now(UTC) + timedelta(minutes=12))
    assert len(mail.outbox) == 1
    statuses = dict(BudgetAlert.objects.filter(org=org).values_list("threshold", "status"))
    assert statuses == {80: "sent", 50: "superseded"}
