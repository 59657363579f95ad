"""Environment of a test process, set before Django reads its settings.

Loaded as an early plugin (``-p tests.environment`` in ``pyproject.toml``): pytest-django
imports the settings before any ``conftest.py`` runs, so variables set there come too late.

Under pytest-xdist each worker gets its own var folder (SQLite file, ledger spool, metrics,
embedded broker) and its own Redis database next to ``REDIS_URL``; PostgreSQL test databases
are already suffixed per worker by pytest-django. Live servers bind free ports per worker.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
MAX_WORKERS = 14  # Redis databases 1..14 (15 is the Celery integration test's own broker)


def _worker_index() -> int | None:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    return int(worker[2:]) if worker.startswith("gw") and worker[2:].isdigit() else None


def _redis_for_worker(url: str, index: int) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss"):
        return url
    base = int(parts.path.strip("/") or 0)
    db = base + 1 + index
    if db > MAX_WORKERS:
        raise RuntimeError(f"too many xdist workers for REDIS_URL database {base}")
    return urlunsplit((parts.scheme, parts.netloc, f"/{db}", parts.query, parts.fragment))


def configure() -> None:
    os.environ.setdefault("FINOPS_TESTING", "1")
    index = _worker_index()
    if index is None:
        return
    var_dir = Path(os.environ.get("FINOPS_VAR_DIR") or ROOT / "var") / f"xdist-gw{index}"
    os.environ["FINOPS_VAR_DIR"] = str(var_dir)
    if os.environ.get("REDIS_URL"):
        os.environ["REDIS_URL"] = _redis_for_worker(os.environ["REDIS_URL"], index)


configure()
