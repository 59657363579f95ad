"""The ledger writer: usage events leave the request path through a queue and are written by one
thread, in micro-batches (every ``FINOPS_LEDGER_FLUSH_SECONDS`` or ``FINOPS_LEDGER_BATCH_SIZE``
rows), with ``INSERT … ON CONFLICT (event_id) DO NOTHING`` so a replay never counts twice.

When the database is unreachable, batches are appended to a local spool file (by this thread,
never on the event loop) and replayed when the database returns. Stopping drains the queue.
The same thread also writes the side effects of metering that must not block a request: keys'
``last_used_at``, features first named by traffic, routers' prompt samples and evaluation pairs.
New feature names are settled before the events that carry them are written: a name refused at
its key's cap (``gateway.attribution.features_create``) is written as ``_other``.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
import uuid
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import orjson
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, close_old_connections, connection, connections, transaction

from gateway import attribution, metrics
from gateway.hooks import hooks
from gateway.procs import pid_alive

log = logging.getLogger(__name__)

_STOP = object()
_PROMPTS_PENDING_MAX = 2000
_PAIRS_PENDING_MAX = 500
_RESPONSES_PENDING_MAX = 5000
_RESPONSES_PER_STATEMENT = 20  # a turn can be a 400 KB context: statements stay a few MB
_PROMPTS_PER_FLUSH = 50  # per router per side-effect flush (every 2 s): at most 25 a second
_DECIMAL_FIELDS = ("input_cost", "cached_input_cost", "cache_write_cost", "output_cost", "cost")
_TIME_FIELDS = ("started_at", "first_byte_at", "ended_at")


def _encode(event: dict) -> bytes:
    def default(value):
        if isinstance(value, Decimal):
            return format(value, "f")
        if isinstance(value, uuid.UUID):
            return str(value)
        raise TypeError

    return orjson.dumps(event, default=default)


def _decode(line: bytes) -> dict:
    event = orjson.loads(line)
    for name in _DECIMAL_FIELDS:
        if name in event:
            event[name] = Decimal(event[name])
    for name in _TIME_FIELDS:
        if event.get(name):
            event[name] = datetime.fromisoformat(event[name])
    return event


_INSERT_PLAN: tuple[str, list] | None = None
_QUIET_CLASSES: dict[type, type] = {}


def _quiet_connection() -> None:
    """This thread's database connection keeps no DEBUG query log. With ``DEBUG`` on, Django
    formats every statement with its parameters and keeps the last 9,000: the ledger's can carry
    megabytes (a stored 400 KB agent context), which took a gateway to a gigabyte of memory and
    spent the GIL on formatting. The writer's statements are logged by its own warnings."""
    conn = connections[DEFAULT_DB_ALIAS]
    cls = type(conn)
    if cls in _QUIET_CLASSES.values():
        return
    quiet = _QUIET_CLASSES.get(cls)
    if quiet is None:
        quiet = type(
            f"Quiet{cls.__name__}", (cls,), {"queries_logged": property(lambda self: False)}
        )
        _QUIET_CLASSES[cls] = quiet
    conn.__class__ = quiet


def _insert_plan() -> tuple[str, list]:
    """One INSERT … ON CONFLICT (event_id) DO NOTHING statement and a per-column converter.

    The ORM's bulk_create instantiates a model per row; at hundreds of rows a second that work
    holds the GIL long enough to show in the event loop's tail latency, so rows are prepared
    here directly with the fields' own database preparation.
    """
    global _INSERT_PLAN
    if _INSERT_PLAN is None:
        from django.db import models

        from gateway.models import UsageEvent

        fields = [f for f in UsageEvent._meta.concrete_fields if not f.primary_key]
        qn = connection.ops.quote_name
        columns = ", ".join(qn(f.column) for f in fields)
        marks = ", ".join(["%s"] * len(fields))
        # identifiers come from model metadata; values are parameters
        sql = (
            f"INSERT INTO {qn(UsageEvent._meta.db_table)} ({columns}) VALUES ({marks}) "  # noqa: S608
            f"ON CONFLICT ({qn('event_id')}) DO NOTHING"
        )
        prepared = (models.DecimalField, models.DateTimeField, models.UUIDField)
        plan = []
        for f in fields:
            convert = (
                (lambda v, f=f: f.get_db_prep_save(v, connection))
                if isinstance(f, prepared)
                else None
            )
            plan.append((f.attname, f.get_default, convert))
        _INSERT_PLAN = (sql, plan)
    return _INSERT_PLAN


def _insert(events: list[dict]) -> None:
    sql, plan = _insert_plan()
    rows = []
    for event in events:
        row = []
        for name, default, convert in plan:
            value = event[name] if name in event else default()
            row.append(convert(value) if convert is not None and value is not None else value)
        rows.append(row)
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.executemany(sql, rows)


class LedgerWriter:
    def __init__(self, *, spool_dir: Path | None = None) -> None:
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._spool_dir = Path(spool_dir or settings.FINOPS_SPOOL_DIR)
        self._spool = self._spool_dir / f"ledger-{os.getpid()}.jsonl"
        self._last_used: dict[int, datetime] = {}
        self._new_features: set[tuple[int, str, int]] = set()
        self._features_refused: set[tuple[int, str]] = set()  # (key id, slug) over the cap
        self._prompts: list[tuple] = []  # routers' prompt samples waiting to be written
        self._retention: dict[int, int] = {}  # router id -> prompts kept
        self._prompts_taken: dict[int, int] = {}  # router id -> prompts taken since the flush
        self._pairs: list[dict] = []  # evaluation pairs waiting to be written
        self._responses: list[dict] = []  # stored Responses answers (gateway.response_store)
        self._last_side_flush = 0.0
        self.written = 0
        self.spooled = 0
        self.replayed = 0
        self._spool_pending = True  # files a crashed process left are looked for at start
        self._last_replay = 0.0
        # write-ahead log: every event is appended (page cache, no fsync) before it is queued,
        # so a SIGKILLed process leaves its unwritten events for the next start to replay
        self._wal_fd: int | None = None
        self._wal_path: Path | None = None
        self._wal_seq = 0
        self._wal_token = uuid.uuid4().hex[:8]  # pids repeat across restarts (containers)
        self._wal_retired: list[tuple[int, Path]] = []
        self._wal_rotated = 0.0
        self._wal_failed = False

    # --- request side (event loop): never blocks -------------------------------------------
    def submit(self, event: dict) -> None:
        fd = self._wal_fd
        if fd is not None:
            try:
                os.write(fd, _encode(event) + b"\n")
            except OSError as exc:
                if not self._wal_failed:
                    self._wal_failed = True
                    log.error("ledger write-ahead log failed (%s); continuing without it", exc)
        self._queue.put(event)

    def key_used(self, key_id: int, when: datetime) -> None:
        self._queue.put(("used", key_id, when))

    def feature_named(self, team_id: int, slug: str, key_id: int) -> None:
        self._queue.put(("feature", team_id, slug, key_id))

    def router_prompt(
        self, router_id: int, retention: int, messages, *, scorer: str, score, when: datetime
    ) -> None:
        """A prompt for the router's sample: a best-effort side effect, never spooled."""
        self._queue.put(("prompt", router_id, retention, messages, scorer, score, when))

    def response_keep(self, response: dict) -> None:
        """A ``store``d Responses answer (``response_store.response_save`` keyword arguments),
        written with the next batch: off the request path (its redaction and its write cost a
        long prompt milliseconds); readers wait for it (``response_store``)."""
        self._queue.put(("response", response))

    def eval_pair(self, pair: dict) -> None:
        """A shadowed call's evaluation pair (``evaluation.services.pairs.pair_store`` keyword
        arguments): a best-effort side effect, never spooled."""
        self._queue.put(("pair", pair))

    # --- lifecycle -------------------------------------------------------------------------
    def start(self) -> None:
        if self._thread is None:
            self._spool_dir.mkdir(parents=True, exist_ok=True)
            self._wal_open()
            self._thread = threading.Thread(target=self._run, name="ledger-writer", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Drain everything queued, then stop; the write-ahead log goes once all is written."""
        if self._thread is not None:
            self._queue.put(_STOP)
            self._thread.join(timeout)
            drained = not self._thread.is_alive()
            self._thread = None
            fd, path = self._wal_fd, self._wal_path
            self._wal_fd = None
            segments = [*self._wal_retired, (fd, path)] if fd is not None else self._wal_retired
            self._wal_retired = []
            for old_fd, old_path in segments:
                os.close(old_fd)
                if drained:
                    old_path.unlink(missing_ok=True)

    # --- write-ahead log (segments rotated by the writer thread) ----------------------------
    def _wal_open(self) -> None:
        self._wal_seq += 1
        path = self._spool_dir / f"wal-{os.getpid()}-{self._wal_token}-{self._wal_seq}.wal"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self._wal_fd, self._wal_path = fd, path
        self._wal_rotated = time.monotonic()

    def _wal_rotate(self) -> None:
        """After a batch is safely written: start a new segment and delete the one retired at
        the previous rotation — every event in it was queued before then, so it is written.
        Its descriptor is closed only now, too, so the event loop never writes to a reused one."""
        if self._wal_fd is None or time.monotonic() - self._wal_rotated < 1.0:
            return
        old = (self._wal_fd, self._wal_path)
        self._wal_open()
        for fd, path in self._wal_retired:
            os.close(fd)
            path.unlink(missing_ok=True)
        self._wal_retired = [old]

    # --- writer thread ---------------------------------------------------------------------
    def _run(self) -> None:
        _quiet_connection()
        flush_every = settings.FINOPS_LEDGER_FLUSH_SECONDS
        batch_size = settings.FINOPS_LEDGER_BATCH_SIZE
        self._replay_spools()
        stopping = False
        while not stopping:
            batch: list[dict] = []
            deadline = time.monotonic() + flush_every
            while len(batch) < batch_size:
                timeout = deadline - time.monotonic()
                try:
                    item = (
                        self._queue.get(timeout=max(timeout, 0.001))
                        if timeout > 0
                        else self._queue.get_nowait()
                    )
                except queue.Empty:
                    break
                if item is _STOP:
                    stopping = True
                    # drain what is left without waiting
                    while True:
                        try:
                            rest = self._queue.get_nowait()
                        except queue.Empty:
                            break
                        if rest is not _STOP:
                            self._take(rest, batch)
                    break
                self._take(item, batch)
            if self._responses:
                self._responses_write()
            if batch:
                self._write(batch)
            elif self._spool_pending and time.monotonic() - self._last_replay > 1.0:
                self._replay_spools()  # the database may be back: do not wait for new traffic
            self._side_effects(force=stopping)
        close_old_connections()
        connection.close()

    def _take(self, item, batch: list[dict]) -> None:
        if isinstance(item, dict):
            batch.append(item)
        elif item[0] == "used":
            _, key_id, when = item
            if when > self._last_used.get(key_id, when.min.replace(tzinfo=when.tzinfo)):
                self._last_used[key_id] = when
        elif item[0] == "feature":
            self._new_features.add(item[1:])
        elif item[0] == "response":
            if len(self._responses) < _RESPONSES_PENDING_MAX:
                self._responses.append(item[1])
            else:
                log.warning(
                    "stored-response backlog full: %s not kept", item[1]["response"].get("id")
                )
        elif item[0] == "pair":
            if len(self._pairs) < _PAIRS_PENDING_MAX:  # the sample is bounded, never queued
                self._pairs.append(item[1])
        elif item[0] == "prompt":
            # a sample: at most _PROMPTS_PER_FLUSH per router per flush (busy traffic is
            # sampled, the write stays small), the rest dropped rather than queued
            router_id = item[1]
            taken = self._prompts_taken.get(router_id, 0)
            if taken < _PROMPTS_PER_FLUSH and len(self._prompts) < _PROMPTS_PENDING_MAX:
                self._prompts_taken[router_id] = taken + 1
                self._prompts.append(item[1:])

    def _write(self, batch: list[dict]) -> None:

        metrics.LEDGER_QUEUE.set(self._queue.qsize())
        try:
            close_old_connections()
            self._features_settle(batch)
            _insert(batch)
            self.written += len(batch)
        except Exception as exc:  # noqa: BLE001 - any database failure: spool, never drop
            log.warning(
                "ledger write failed (%s); spooling %d events", type(exc).__name__, len(batch)
            )
            self._spool_append(batch)
            connection.close()
            self._wal_rotate()
            return
        self._wal_rotate()
        if self._spool_pending:
            self._replay_spools()

    def _responses_write(self) -> None:
        from gateway.response_store import responses_save

        pending, self._responses = self._responses, []
        for start in range(0, len(pending), _RESPONSES_PER_STATEMENT):
            try:
                responses_save(pending[start : start + _RESPONSES_PER_STATEMENT])
            except Exception as exc:  # noqa: BLE001 - the database is down: try again next batch
                log.warning("could not store responses (%s); retrying", type(exc).__name__)
                self._responses = pending[start:] + self._responses
                connection.close()
                return

    def _features_settle(self, events: list[dict]) -> None:
        """Create the feature names queued so far (atomically per key, across processes), then
        relabel the events of refused names to ``_other`` before they are written. Raises if
        the database does: the caller spools the events (or keeps the file) and tries again."""
        if self._new_features:
            named = sorted(self._new_features)
            refused = attribution.features_create(
                named=named, cap=settings.FINOPS_NEW_FEATURES_PER_KEY
            )
            self._new_features.clear()
            # a name refused once may fit later (a feature was deleted): the newest answer wins
            self._features_refused -= {(key, slug) for _, slug, key in named}
            if len(self._features_refused) > 50_000:  # bounded; the key cache stops them too
                self._features_refused.clear()
            self._features_refused |= refused
        if self._features_refused:
            for event in events:
                if (event.get("key_id"), event.get("feature")) in self._features_refused:
                    event["feature"] = attribution.OVERFLOW_FEATURE

    def _spool_append(self, batch: list[dict]) -> None:
        self._spool_dir.mkdir(parents=True, exist_ok=True)
        with open(self._spool, "ab") as fh:
            for event in batch:
                fh.write(_encode(event) + b"\n")
            fh.flush()
            os.fsync(fh.fileno())
        self.spooled += len(batch)
        metrics.LEDGER_SPOOLED.inc(len(batch))
        self._spool_pending = True

    def _replay_spools(self) -> None:
        """Replay spool files (ours and those a crashed process left). The unique event id
        makes a replay count once even if a file is replayed twice."""

        self._last_replay = time.monotonic()
        if not self._spool_dir.exists():
            self._spool_pending = False
            return
        for segment in self._spool_dir.glob("wal-*.wal"):
            # the write-ahead log of a process that died: replay it like a spool file
            _, pid, token, _ = segment.name.split("-", 3)
            ours = int(pid) == os.getpid() and token == self._wal_token
            if not ours and (int(pid) == os.getpid() or not pid_alive(int(pid))):
                segment.rename(segment.with_suffix(".jsonl"))
        for orphan in self._spool_dir.glob("*.replay-*"):
            # a process that died while replaying left its claim: hand the file back
            if not pid_alive(int(orphan.suffix.rsplit("-", 1)[1])):
                orphan.rename(orphan.with_suffix(".jsonl"))
        for path in sorted(self._spool_dir.glob("*.jsonl")):
            claimed = path.with_suffix(f".replay-{os.getpid()}")
            try:
                path.rename(claimed)
            except OSError:
                continue  # another process took it
            try:
                events = [
                    _decode(line) for line in claimed.read_bytes().splitlines() if line.strip()
                ]
                close_old_connections()
                self._features_settle(events)
                for start in range(0, len(events), 1000):
                    _insert(events[start : start + 1000])
                claimed.unlink()
                self.replayed += len(events)
                log.info("replayed %d spooled ledger events from %s", len(events), path.name)
            except Exception as exc:  # noqa: BLE001 - keep the file for the next try
                claimed.rename(path)
                log.warning("spool replay failed (%s); will retry", type(exc).__name__)
                connection.close()
                return
        self._spool_pending = False

    def _side_effects(self, *, force: bool) -> None:
        now = time.monotonic()
        if not force and now - self._last_side_flush < 2.0:
            return
        self._last_side_flush = now
        if self._prompts:
            self._prompts_write()
        if self._pairs:
            self._pairs_write()
        if not self._last_used and not self._new_features:
            return
        from teams.models import VirtualKey

        try:
            close_old_connections()
            for key_id, when in self._last_used.items():
                # .update() skips signals: usage must not invalidate the key cache
                VirtualKey.objects.filter(pk=key_id).update(last_used_at=when)
            self._features_settle([])
            self._last_used.clear()
        except Exception as exc:  # noqa: BLE001 - retried on the next flush
            log.warning("could not write key usage or new features (%s)", type(exc).__name__)
            connection.close()

    def _pairs_write(self) -> None:
        """Store the evaluation pairs (through evaluation's ``pair_store`` hook, which redacts and
        clips them; without it they are dropped)."""
        pending, self._pairs = self._pairs, []
        if hooks.pair_store is None:
            return
        try:
            close_old_connections()
            for pair in pending:
                hooks.pair_store(**pair)
        except Exception as exc:  # noqa: BLE001 - a sample: lose it rather than retry forever
            log.warning("could not write evaluation pairs (%s)", type(exc).__name__)
            connection.close()

    def _prompts_write(self) -> None:
        """Write the routers' prompt samples, then delete what is beyond each one's retention."""
        from gateway.models import RouterPrompt
        from gateway.routing.features import messages_clip

        pending, self._prompts = self._prompts, []
        self._prompts_taken.clear()
        try:
            close_old_connections()
            rows = []
            for router_id, retention, messages, scorer, score, when in pending:
                self._retention[router_id] = retention
                rows.append(
                    RouterPrompt(
                        router_id=router_id,
                        created_at=when,
                        messages=messages_clip(messages),
                        scorer=scorer,
                        score=score,
                    )
                )
            RouterPrompt.objects.bulk_create(rows, ignore_conflicts=True)
            for router_id in {row.router_id for row in rows}:
                keep = self._retention[router_id]
                cutoff = (
                    RouterPrompt.objects.filter(router_id=router_id)
                    .order_by("-id")
                    .values_list("id", flat=True)[keep : keep + 1]
                )
                cutoff = list(cutoff)
                if cutoff:
                    # plain SQL: the ORM's delete would load every row (prompts are large)
                    # to send delete signals nobody needs for a sample
                    qn = connection.ops.quote_name
                    with connection.cursor() as cursor:
                        cursor.execute(
                            f"DELETE FROM {qn(RouterPrompt._meta.db_table)} "  # noqa: S608
                            "WHERE router_id = %s AND id <= %s",
                            [router_id, cutoff[0]],
                        )
        except Exception as exc:  # noqa: BLE001 - a sample: lose it rather than retry forever
            log.warning("could not write router prompts (%s)", type(exc).__name__)
            connection.close()


@metrics.scrape_source
def _spool_gauge():
    """Bytes spooled on disk and not yet in the database (every process's spool files)."""
    from django.conf import settings
    from prometheus_client.core import GaugeMetricFamily

    spool = GaugeMetricFamily(
        "finops_ledger_spool_bytes",
        "Bytes of ledger events spooled on disk, waiting for the database.",
    )
    spool_dir = settings.FINOPS_SPOOL_DIR
    size = (
        sum(p.stat().st_size for p in spool_dir.glob("*.jsonl") if p.is_file())
        if spool_dir.exists()
        else 0
    )
    spool.add_metric([], float(size))
    yield spool
