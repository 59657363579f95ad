"""What the simulator's two batch APIs share (``simulator.openai_batches``,
``simulator.anthropic_batches``): the clock of a batch, running one line through an endpoint's
own answer code, the routes, and the batch knobs a test may change at run time.

A batch of N lines created at ``t0`` with delay ``D`` (``--batch-delay``, the create request's
``x-sim-batch-delay-ms``, or ``POST /_sim/batches``) runs line ``i`` at ``t0 + 0.9 D i / N``
(the first at once), is finalizing from ``t0 + 0.9 D`` and ends at ``t0 + D``. A cancel stops
it where it is: the lines already run keep their answers, the others are cancelled; with
``expire`` set (``POST /_sim/batches {"expire": true}``) a batch created afterwards runs only
its first half and expires at ``t0 + D``. A line is billed (``simulator.billing``, marked
batch) when it runs, with the usage its answer reports.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass

from simulator.billing import Billed
from simulator.wire import SimError

MAX_BATCHES = 1000  # per API; the oldest are forgotten beyond
MAX_LINES = 100_000
FINALIZING = 0.9  # share of the delay after which every line has run


@dataclass(slots=True)
class BatchKnobs:
    """What ``POST /_sim/batches`` may change for batches created afterwards."""

    default_delay: float
    delay: float | None = None  # None: the default (the --batch-delay flag)
    expire: bool = False

    @property
    def current(self) -> float:
        return self.default_delay if self.delay is None else self.delay


@dataclass(frozen=True, slots=True)
class BatchRequest:
    """One request to a batch API, as the app hands it over."""

    endpoint: str  # e.g. "batch_create" (see ``batch_route``)
    ident: str | None  # the id in the path
    body: bytes
    opts: object  # the request's ``x-sim-*`` options
    scope: dict
    key: bytes | None  # billed lines are the creating key's
    project: bytes | None


def new_id(prefix: str) -> str:
    return prefix + secrets.token_hex(12)


class Clock:
    """When each line of a batch runs and when the batch ends."""

    def __init__(self, n: int, delay: float, *, expire: bool = False) -> None:
        self.created = time.time()
        self.n = n
        self.delay = delay
        self.expire = expire
        self.stopped: float | None = None  # when a cancel stopped it

    def due(self, index: int) -> float:
        return self.created + self.delay * FINALIZING * index / self.n

    def runs(self, index: int) -> bool:
        """Whether line ``index`` runs at all (an expiring batch runs its first half)."""
        return not self.expire or index < (self.n + 1) // 2

    @property
    def finalizing_at(self) -> float:
        return self.created + self.delay * FINALIZING

    @property
    def ends_at(self) -> float:
        return self.created + self.delay

    def ran_by(self, now: float) -> int:
        """How many lines have run by ``now`` (stopped by a cancel, or an expiry)."""
        cutoff = now if self.stopped is None else min(now, self.stopped)
        count = 0
        while count < self.n and self.runs(count) and self.due(count) <= cutoff:
            count += 1
        return count


class Capture:
    """An ASGI ``send`` that keeps the answer of an endpoint's handler."""

    def __init__(self) -> None:
        self.status = 0
        self.body = b""

    async def __call__(self, message) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
        else:
            self.body += message.get("body", b"")


async def _no_receive():
    return {"type": "http.disconnect"}


async def run_line(
    handler, body: bytes, opts
) -> tuple[int, bytes | None, Billed | None, SimError | None]:
    """(status, answer body, what it bills, the error) of one line through ``handler``."""
    capture = Capture()
    try:
        billed = await handler(body, opts, None, _no_receive, capture)
    except SimError as exc:
        return exc.status, None, None, exc
    return capture.status or 200, capture.body, billed, None


# /v1/{tail} of the batch APIs: (endpoint, the id in the path) per method
def batch_route(method: str, tail: str) -> tuple[str | None, str | None]:
    """(endpoint, id) of a batch API path, ``("method", id)`` for a known path asked with
    another method, ``(None, None)`` for a path that is none of them."""
    anthropic = tail.startswith("messages/batches")
    base = "messages/batches" if anthropic else tail.split("/", 1)[0]
    if base not in ("files", "batches", "messages/batches"):
        return None, None
    rest = tail[len(base) :].strip("/")
    prefix = {"files": "file", "batches": "batch", "messages/batches": "msgbatch"}[base]
    if not rest:
        table = {"POST": "create", "GET": "list"}
        ident = None
    else:
        ident, _, action = rest.partition("/")
        if not ident or "/" in action:
            return None, None
        if not action:
            table = {"GET": "get", "DELETE": "delete"}
            if base == "batches":
                table = {"GET": "get"}
        else:
            table = {
                ("files", "content"): {"GET": "content"},
                ("batches", "cancel"): {"POST": "cancel"},
                ("messages/batches", "cancel"): {"POST": "cancel"},
                ("messages/batches", "results"): {"GET": "results"},
            }.get((base, action))
            if table is None:
                return None, None
    name = table.get(method)
    return (f"{prefix}_{name}" if name else "method"), ident
