"""``manage.py run_embedded``: the supervised embedded product, started for real in a subprocess
against its own throw-away folder and SQLite file (never the developer's or CI's database)."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import openai
import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.live


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(var_dir: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "FINOPS_TESTING")
    }
    env.update(
        FINOPS_VAR_DIR=str(var_dir),
        DATABASE_URL=f"sqlite:///{var_dir / 'embedded.sqlite3'}",
        PYTHONUNBUFFERED="1",
        DEBUG="1",
    )
    return env


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _migrate(var_dir: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "manage.py", "migrate", "--noinput"],
        cwd=ROOT,
        env=_env(var_dir),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


class Embedded:
    """One ``run_embedded`` process with its own folder, ports and log."""

    def __init__(self, var_dir: Path) -> None:
        self.var_dir = var_dir
        self.port, self.sim_port = _free_port(), _free_port()
        self.log = var_dir / "embedded.log"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.proc = _start(self.var_dir, self.port, self.sim_port, self.log)

    def text(self) -> str:
        return self.log.read_text() if self.log.exists() else ""

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


@pytest.fixture(scope="module")
def embedded(tmp_path_factory):
    """Two embedded products, migrated and started side by side (each test stops its own in a
    different way): the start-up, most of each test's time, is paid once."""
    runs = {name: Embedded(tmp_path_factory.mktemp(f"embedded-{name}")) for name in ("a", "b")}
    migrations = [_migrate(run.var_dir) for run in runs.values()]
    for m in migrations:
        _, err = m.communicate(timeout=300)
        assert m.returncode == 0, err.decode(errors="replace")
    for run in runs.values():
        run.start()
    try:
        yield runs
    finally:
        for run in runs.values():
            run.stop()


def _start(var_dir: Path, port: int, sim_port: int, log: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [
            sys.executable, "manage.py", "run_embedded",
            "--port", str(port), "--sim-port", str(sim_port), "--stop-timeout", "10",
            "--settle-seconds", "0.5", "--demo-days", "1",
        ],
        cwd=ROOT,
        env=_env(var_dir),
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )  # fmt: skip


def test_refuses_a_busy_port(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = subprocess.run(
            [
                sys.executable, "manage.py", "run_embedded",
                "--port", str(port), "--sim-port", str(_free_port()), "--no-demo",
            ],
            cwd=ROOT,
            env=_env(tmp_path),
            capture_output=True,
            text=True,
            timeout=120,
        )  # fmt: skip
    assert result.returncode != 0
    assert f"port {port} (--port) is already in use" in result.stderr


def test_runs_everything_and_sigterm_stops_every_child(embedded):
    run = embedded["a"]
    proc, port, sim_port = run.proc, run.port, run.sim_port
    text = _wait_for(lambda: "Press Ctrl-C" in run.text() and run.text(), 120, "the banner")
    assert proc.poll() is None, text
    key = re.search(r"Demo key\s+(sk-fo-\S+)", text).group(1)
    assert f"http://127.0.0.1:{port}/v1" in text
    assert "Demo login   demo@acme.test / " in text
    children = _children(proc.pid)
    assert len(children) == 4, text

    client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key=key, max_retries=0)
    completion = client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "Hi"}]
    )
    assert completion.usage.completion_tokens == 16
    assert httpx.get(f"http://127.0.0.1:{port}/accounts/login/").status_code == 200
    assert httpx.get(f"http://127.0.0.1:{sim_port}/_sim/health").status_code == 200

    proc.send_signal(signal.SIGTERM)
    assert proc.wait(60) == 0, run.text()
    assert "All processes stopped." in run.text()
    _wait_for(lambda: not any(_alive(pid) for pid in children), 10, "children to exit")


def test_a_dying_child_stops_the_others_and_exits_non_zero(embedded):
    run = embedded["b"]
    proc = run.proc
    _wait_for(lambda: "Press Ctrl-C" in run.text(), 120, "the banner")
    children = _children(proc.pid)
    beat = next(
        pid
        for pid in children
        if b" beat " in Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
    )
    os.kill(beat, signal.SIGKILL)
    assert proc.wait(60) != 0
    assert "celery-beat exited unexpectedly" in run.text()
    _wait_for(lambda: not any(_alive(pid) for pid in children), 10, "children to exit")
