"""What the gateway needs from the apps above it, registered by them at ``AppConfig.ready()``.

The gateway is the bottom layer (beside the control plane) and imports no higher app. Where a
call must reach one, that app registers a function here when Django starts:

- ``feedback_record(org_id=, key_id=, body=)``: store a key's score of one of its own requests
  (evaluation); raises :class:`HookError` to refuse it;
- ``pair_store(**pair)``: store a shadowed call's evaluation pair (evaluation);
- ``experiments_load(org_id, models)``: the org's active experiments as routing records
  (``gateway.cache.ExperimentRecord``; evaluation).

Figures that ``/metrics`` reads at scrape time come from ``gateway.metrics.scrape_source``
in the same way (budget utilisation is the rollups', registered by reports). A hook left
unregistered turns its feature off: ``/v1/feedback`` answers 404, pairs are dropped, no
experiment applies.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields


class HookError(Exception):
    """A hook's refusal, answered to the client in the wire format's error shape."""

    def __init__(self, status: int, code: str, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.param = status, code, message, param


@dataclass(slots=True)
class Hooks:
    feedback_record: Callable | None = None
    pair_store: Callable | None = None
    experiments_load: Callable | None = None


hooks = Hooks()


def hook_register(name: str, fn: Callable) -> None:
    """Register ``fn`` as the hook ``name`` (one of the fields of :class:`Hooks`)."""
    if name not in {f.name for f in fields(Hooks)}:
        raise ValueError(f"no gateway hook named {name!r}")
    setattr(hooks, name, fn)
