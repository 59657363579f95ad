"""Processes: liveness, for files named after the process that writes them (ledger spools,
metric directories: a dead writer's files are someone else's to take over or remove), and
children that must not outlive the process that started them."""

from __future__ import annotations

import ctypes
import os
import signal
import sys


def pid_alive(pid: int) -> bool:
    """Whether a process with this id exists (spool and metrics files are named after theirs)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# loaded here, in the parent: a ``preexec_fn`` runs between fork and exec and should do no more
# than one C call (no imports, no allocation-heavy work) in case another thread held a lock
_LIBC = ctypes.CDLL("libc.so.6", use_errno=True) if sys.platform.startswith("linux") else None
PR_SET_PDEATHSIG = 1


def die_with_parent(parent_pid: int):
    """A ``preexec_fn``: have the kernel SIGTERM the child when its parent dies (Linux), so a
    supervisor that is killed leaves no server running behind it. The signal follows the
    *thread* that started the child: start children from a thread that lives as long as they
    should (``run_embedded``'s main thread), never from a pool."""

    def preexec() -> None:
        if _LIBC is not None:
            _LIBC.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent_pid:  # the parent died before prctl took effect
            os.kill(os.getpid(), signal.SIGTERM)

    return preexec
