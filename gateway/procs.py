"""Process liveness, for files named after the process that writes them (ledger spools, metric
directories): a dead writer's files are someone else's to take over or remove."""

from __future__ import annotations

import os


def pid_alive(pid: int) -> bool:
    """Whether a process with this id exists (spool and metrics files are named after theirs)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
