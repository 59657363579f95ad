"""``python manage.py run_embedded --port 8000 --sim-port 9100``: the whole product on a laptop.

Loads the demo organisation (a fresh demo key each run), then supervises four child processes:
the upstream simulator, uvicorn serving ``finops.asgi:application`` (one worker, through
``finops.serve``: header deadline, trusted proxies), a Celery worker
and Celery beat (embedded filesystem broker, schedule file under ``FINOPS_VAR_DIR``). Ctrl-C or
SIGTERM stops every child (SIGTERM, then SIGKILL after ``--stop-timeout``); if any child dies,
the others are stopped and the command exits non-zero.

Each child runs in its own session, so a terminal's Ctrl-C reaches only the supervisor, which
stops the children in order (the web app first, so it can drain its ledger buffer; the simulator
last, so in-flight calls still get answers). On Linux the children also ask the kernel to
SIGTERM them if the supervisor itself dies (``PR_SET_PDEATHSIG``), so none is left behind.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError, connection
from django.db.migrations.executor import MigrationExecutor

from gateway.procs import die_with_parent
from provisioning.demo import demo_load

POLL_SECONDS = 0.2
SETTLE_SECONDS = 3.0
_EXAMPLE_BODY = '{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}]}'
DEFAULT_SIM_KEY = "sk-sim-local"  # the simulator accepts any key; the gateway must send one
_ROOT_WARNING_FILTER = "ignore:You're running the worker with superuser privileges"


@dataclass
class Child:
    name: str
    argv: list[str]
    ready_url: str | None = None
    proc: subprocess.Popen | None = field(default=None, repr=False)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


def port_busy(host: str, port: int) -> bool:
    """Whether binding ``host:port`` fails the way uvicorn's bind would."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


class Command(BaseCommand):
    help = (
        "Run the embedded product: demo data, upstream simulator, web app + gateway (uvicorn), "
        "Celery worker and beat, supervised together (Ctrl-C stops everything)."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--port", type=int, default=8000, help="web app and gateway port")
        parser.add_argument("--sim-port", type=int, default=9100, help="upstream simulator port")
        parser.add_argument("--host", default="127.0.0.1", help="interface to listen on")
        parser.add_argument("--no-demo", action="store_true", help="do not load the demo org")
        parser.add_argument(
            "--demo-days",
            type=int,
            default=90,
            help="days of generated demo history, replacing the previous one (0: none)",
        )
        parser.add_argument("--access-log", action="store_true", help="uvicorn access log on")
        parser.add_argument(
            "--stop-timeout",
            type=float,
            default=15.0,
            help="seconds a child gets to exit after SIGTERM before SIGKILL",
        )
        parser.add_argument(
            "--ready-timeout",
            type=float,
            default=90.0,
            help="seconds to wait for the simulator and the web app to answer",
        )
        parser.add_argument(
            "--settle-seconds",
            type=float,
            default=SETTLE_SECONDS,
            help="seconds every child must stay up before the banner (a child that dies at "
            "start is reported instead)",
        )

    # --- entry point -------------------------------------------------------------------------

    def handle(self, *args, **opts) -> None:
        host, port, sim_port = opts["host"], opts["port"], opts["sim_port"]
        if port == sim_port:
            raise CommandError("--port and --sim-port must differ")
        for name, value in (("--port", port), ("--sim-port", sim_port)):
            if not 1 <= value <= 65535:
                raise CommandError(f"{name}: {value} is not a TCP port")
            if port_busy("127.0.0.1" if name == "--sim-port" else host, value):
                raise CommandError(
                    f"port {value} ({name}) is already in use on this machine: stop whatever "
                    f"listens there (e.g. an earlier `make run`) or choose another {name}"
                )
        self._check_migrated()
        sim_url = f"http://127.0.0.1:{sim_port}"
        demo = (
            None
            if opts["no_demo"]
            else self._load_demo(sim_url=f"{sim_url}/v1", days=max(0, opts["demo_days"]))
        )

        self._stop_signal: int | None = None
        children = self._children(host=host, port=port, sim_port=sim_port, opts=opts)
        previous = {
            sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGINT, signal.SIGTERM)
        }
        failure: str | None = None
        try:
            failure = self._start_all(children, env=self._child_env(port), opts=opts)
            if failure is None and self._stop_signal is None:
                self._banner(host=host, port=port, sim_url=sim_url, demo=demo)
                failure = self._supervise(children)
        finally:
            self._stop_all(children, timeout=opts["stop_timeout"])
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        if failure:
            raise CommandError(failure)
        self.stdout.write("All processes stopped.")

    # --- steps -------------------------------------------------------------------------------

    def _check_migrated(self) -> None:
        try:
            executor = MigrationExecutor(connection)
            pending = executor.migration_plan(executor.loader.graph.leaf_nodes())
        except DatabaseError as exc:
            raise CommandError(f"cannot read the database: {exc}") from exc
        if pending:
            raise CommandError(
                f"the database has {len(pending)} unapplied migration(s): run "
                "`python manage.py migrate` first (`make run` does)"
            )

    def _load_demo(self, *, sim_url: str, days: int):
        if not settings.DEBUG:
            raise CommandError(
                "refusing to load the demo with DEBUG off (it has a published password); "
                "pass --no-demo"
            )
        try:
            demo = demo_load(sim_base_url=sim_url, history_days=days)
        except Exception as exc:
            raise CommandError(f"loading the demo failed: {exc}") from exc
        if demo.history is not None and demo.history.days:
            self.stdout.write(f"Demo data (generated): {demo.history}")
            self.stdout.flush()
        return demo

    def _child_env(self, port: int) -> dict[str, str]:
        env = dict(os.environ)
        env["PYTHONUNBUFFERED"] = "1"
        env["DJANGO_SETTINGS_MODULE"] = os.environ.get("DJANGO_SETTINGS_MODULE", "finops.settings")
        # every child must use the same folder: the SQLite file, the broker, the beat schedule
        env["FINOPS_VAR_DIR"] = str(settings.VAR_DIR)
        env.setdefault("SITE_URL", f"http://127.0.0.1:{port}")
        env.setdefault("SIM_API_KEY", DEFAULT_SIM_KEY)
        if os.geteuid() == 0:
            # Containers run `make run` as root, and the Celery worker then warns on every
            # start. The worker accepts JSON only (no pickle: Celery refuses pickle as root),
            # and is no more exposed than the web app beside it, so the warning is noise here.
            warnings = [env.get("PYTHONWARNINGS", ""), _ROOT_WARNING_FILTER]
            env["PYTHONWARNINGS"] = ",".join(w for w in warnings if w)
        return env

    def _children(self, *, host: str, port: int, sim_port: int, opts: dict) -> list[Child]:
        py = sys.executable
        web = [
            py, "-m", "finops.serve",
            "--host", host, "--port", str(port),
            "--loop", "uvloop", "--http", "httptools", "--lifespan", "on",
            "--timeout-graceful-shutdown", str(max(1, int(opts["stop_timeout"]) - 2)),
        ]  # fmt: skip
        if not opts["access_log"]:
            web.append("--no-access-log")
        local = "127.0.0.1" if host in ("0.0.0.0", "::") else host  # noqa: S104
        return [
            Child(
                "simulator",
                [py, "-m", "simulator", "--host", "127.0.0.1", "--port", str(sim_port)],
                ready_url=f"http://127.0.0.1:{sim_port}/_sim/health",
            ),
            Child("web", web, ready_url=f"http://{local}:{port}/healthz"),
            Child(
                "celery-worker",
                [
                    py,
                    "-m",
                    "celery",
                    "-A",
                    "finops",
                    "worker",
                    "--pool",
                    "solo",
                    "--loglevel",
                    "INFO",
                    "--without-gossip",
                    "--without-mingle",
                    "--without-heartbeat",
                ],
            ),  # fmt: skip
            Child(
                "celery-beat",
                [
                    py,
                    "-m",
                    "celery",
                    "-A",
                    "finops",
                    "beat",
                    "--loglevel",
                    "INFO",
                    "--schedule",
                    str(settings.VAR_DIR / "celerybeat-schedule"),
                ],
            ),  # fmt: skip
        ]

    def _start_all(self, children: list[Child], *, env: dict, opts: dict) -> str | None:
        """Start every child at once (each boots Django or the simulator on its own: in parallel
        that takes the time of the slowest, not the sum), then wait for the ones that answer HTTP.
        """
        started: list[Child] = []
        for child in children:
            if self._stop_signal is not None:
                return None
            self.stdout.write(f"starting {child.name}: {' '.join(child.argv[1:])}")
            self.stdout.flush()
            child.proc = subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
                child.argv,
                cwd=settings.BASE_DIR,
                env=env,
                start_new_session=True,
                preexec_fn=die_with_parent(os.getpid()),  # noqa: PLW1509 - single-threaded here
            )
            started.append(child)
        # let the worker and beat boot (and print their banners) before ours; a child that
        # cannot start (bad broker URL, unwritable schedule) usually dies within this window
        settled = time.monotonic() + opts["settle_seconds"]
        for child in started:
            if child.ready_url:
                failure = self._wait_ready(child, started, timeout=opts["ready_timeout"])
                if failure:
                    return failure
        while time.monotonic() < settled and self._stop_signal is None:
            dead = self._first_dead(started)
            if dead:
                return dead
            time.sleep(POLL_SECONDS)
        return None

    def _wait_ready(self, child: Child, started: list[Child], *, timeout: float) -> str | None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self._stop_signal is None:
            dead = self._first_dead(started)
            if dead:
                return dead
            try:
                with urllib.request.urlopen(child.ready_url, timeout=2) as response:  # noqa: S310
                    if response.status < 500:
                        return None
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(POLL_SECONDS)
        if self._stop_signal is not None:
            return None
        return f"{child.name} did not answer {child.ready_url} within {timeout:.0f} s"

    def _first_dead(self, children: list[Child]) -> str | None:
        for child in children:
            code = child.proc.poll() if child.proc else None
            if code is not None:
                return (
                    f"{child.name} exited unexpectedly (exit code {code}); "
                    "stopped the other processes"
                )
        return None

    def _supervise(self, children: list[Child]) -> str | None:
        while self._stop_signal is None:
            dead = self._first_dead(children)
            if dead:
                return dead
            time.sleep(POLL_SECONDS)
        self.stdout.write(f"\n{signal.Signals(self._stop_signal).name} received: stopping…")
        return None

    def _on_signal(self, signum, frame) -> None:
        if self._stop_signal is None:
            self._stop_signal = signum

    def _stop_all(self, children: list[Child], *, timeout: float) -> None:
        """SIGTERM the web app, worker and beat together, then the simulator; SIGKILL laggards."""
        waves = [
            [c for c in children if c.name != "simulator"],
            [c for c in children if c.name == "simulator"],
        ]
        for wave in waves:
            live = [c for c in wave if c.running]
            for child in live:
                _signal_group(child, signal.SIGTERM)
            deadline = time.monotonic() + timeout
            for child in live:
                try:
                    child.proc.wait(max(0.0, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    self.stderr.write(f"{child.name} did not stop within {timeout:.0f} s: killing")
                    _signal_group(child, signal.SIGKILL)
                    child.proc.wait(5)

    def _banner(self, *, host: str, port: int, sim_url: str, demo) -> None:
        base = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}"  # noqa: S104
        lines = [
            "",
            "LLM FinOps is running (embedded mode: SQLite, no Redis, filesystem broker)",
            f"  App          {base}/",
            f"  Admin        {base}/admin/",
            f"  API docs     {base}/api/v1/docs/",
            f"  Gateway      {base}/v1      (OPENAI_BASE_URL)",
            f"  Simulator    {sim_url}/v1  (fake upstream provider)",
            f"  Data folder  {settings.VAR_DIR}",
        ]
        if demo is not None:
            lines += [
                f"  Demo login   {demo.username} / {demo.password}",
                f"  Demo key     {demo.key_secret}",
                "               (shown once: each run revokes the previous demo key)",
                "",
                "Try it:",
                f"  curl {base}/v1/chat/completions \\",
                f"    -H 'Authorization: Bearer {demo.key_secret}' \\",
                "    -H 'Content-Type: application/json' -H 'X-FinOps-Feature: summarize' \\",
                "    -d '" + _EXAMPLE_BODY + "'",
            ]
        lines += ["", "Press Ctrl-C to stop everything.", ""]
        self.stdout.write("\n".join(lines))
        self.stdout.flush()


def _signal_group(child: Child, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(child.proc.pid, sig)  # its own session: the group id is its pid
