"""The gateway's wall clock, which a test can move forward in a live process.

Circuit breaker times (cooldowns, probe leases) are wall-clock seconds so that the processes of
one deployment can share them through Redis. A test that runs the gateway under uvicorn cannot
patch ``time.time`` in that process, and sleeping through a 30-second cooldown would make the
suite slow; so where the test settings name ``FINOPS_TEST_CLOCK_FILE`` (honoured only with
``FINOPS_TESTING`` on), the clock is ``time.time()`` plus the seconds that file holds, and the test
advances every process at once by rewriting it. Without it this is ``time.time``.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from django.conf import settings


class OffsetClock:
    """``time.time()`` plus the offset in a file, re-read when the file changes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._stamp: int | None = None
        self._offset = 0.0

    def __call__(self) -> float:
        try:
            stamp = os.stat(self.path).st_mtime_ns
        except FileNotFoundError:
            return time.time()
        if stamp != self._stamp:
            try:
                self._offset = float(self.path.read_text() or 0)
            except (OSError, ValueError):
                self._offset = 0.0
            self._stamp = stamp
        return time.time() + self._offset

    def advance(self, seconds: float) -> None:
        """Move the clock of every process reading this file forward (test side)."""
        current = float(self.path.read_text() or 0) if self.path.exists() else 0.0
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(repr(current + seconds))
        os.replace(tmp, self.path)


_clock = None


def now() -> float:
    """Wall-clock seconds as the gateway's circuit breakers see them."""
    global _clock
    if _clock is None:
        path = getattr(settings, "FINOPS_TEST_CLOCK_FILE", "") if settings.TESTING else ""
        _clock = OffsetClock(Path(path)) if path else time.time
    return _clock()
