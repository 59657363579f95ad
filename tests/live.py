"""Start the real app under uvicorn (and the upstream simulator) in subprocesses, against the
test database, for tests that go over real HTTP with the official SDKs.

A subprocess cannot see an in-memory database or an open test transaction, so the world it
serves is committed outside any test transaction (``django_db_blocker.unblock()``) and removed
again at the end of the session.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import httpx
from django.db import connection

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def live_database_url() -> str:
    """The URL of the test database pytest-django created, for a subprocess to use."""
    cfg = connection.settings_dict
    if cfg["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{cfg['NAME']}"
    user = quote(cfg.get("USER") or "")
    password = f":{quote(cfg['PASSWORD'])}" if cfg.get("PASSWORD") else ""
    auth = f"{user}{password}@" if user else ""
    host = cfg.get("HOST") or "127.0.0.1"
    port = f":{cfg['PORT']}" if cfg.get("PORT") else ""
    return f"postgres://{auth}{host}{port}/{cfg['NAME']}"


def wait_http(url: str, *, timeout: float = 30.0, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before {url} answered")
        try:
            if httpx.get(url, timeout=1.0).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer within {timeout}s")


@dataclass
class Server:
    proc: subprocess.Popen
    port: int
    log_path: Path
    extra: dict = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        return self.proc.returncode


def child_env(**overrides: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"
    env.setdefault("FINOPS_SIM_KEY", "sk-sim-test")
    env.update(overrides)
    return env


def start_simulator(tmp: Path, *args: str) -> Server:
    port = free_port()
    log_path = tmp / f"simulator-{port}.log"
    proc = subprocess.Popen(  # noqa: S603
        [sys.executable, "-m", "simulator", "--port", str(port), *args],
        cwd=ROOT,
        env=child_env(),
        stdout=log_path.open("wb"),
        stderr=subprocess.STDOUT,
    )
    server = Server(proc, port, log_path)
    wait_http(f"{server.url}/_sim/health", proc=proc)
    return server


def start_app(
    tmp: Path,
    *,
    database_url: str,
    var_dir: Path | None = None,
    workers: int = 1,
    **env: str,
) -> Server:
    port = free_port()
    log_path = tmp / f"app-{port}.log"
    var_dir = var_dir or tmp / f"var-{port}"
    var_dir.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(  # noqa: S603
        [
            sys.executable,
            "-m",
            "finops.serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            str(workers),
            "--lifespan",
            "on",
            "--no-access-log",
            "--timeout-graceful-shutdown",
            "20",
        ],
        cwd=ROOT,
        env=child_env(
            DATABASE_URL=database_url,
            FINOPS_VAR_DIR=str(var_dir),
            FINOPS_KEY_CACHE_POLL_SECONDS="0.2",
            FINOPS_TESTING="1",
            **env,
        ),
        stdout=log_path.open("wb"),
        stderr=subprocess.STDOUT,
    )
    server = Server(proc, port, log_path, extra={"var_dir": var_dir})
    wait_http(f"{server.url}/healthz", proc=proc)
    return server
