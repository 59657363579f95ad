"""The savings statement's figures, shared by the dashboards, the chargeback statement, its email
and the savings API: per lever what it saved next to the spend, each with its method in one
sentence, and what the levers themselves cost (shadow traffic, judge calls).

Sums of the rollups' saving measures (``reports.models.SAVED_FIELDS``, ``LEVER_SPEND_FIELDS``,
``eval_cost``, ``judge_cost``), which are the ledger's ``saved_usd`` and ``cost`` by
``saving_lever`` (computed at metering time: ``gateway.savings``). Callers pass rows they may
read (a scoped selector's queryset, or a system job's); nothing here reads or records by itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal

from django.db.models import Sum

from finops.money import money
from gateway.savings import LEVERS
from reports.models import LEVER_SPEND_FIELDS, SAVED_FIELDS

ZERO = Decimal(0)
HUNDRED = Decimal(100)
CENT = Decimal("0.01")

LEVER_LABELS = {
    "router": "Cost router",
    "cache": "Response cache",
    "batch": "Batch API",
    "downgrade": "Budget downgrades",
    "fallback": "Cheaper fallbacks",
}
# One sentence each (shown on pages, in CSVs and emails: no quotes, apostrophes or ampersands,
# which HTML would escape)
LEVER_METHODS = {
    "router": "Each call the cost router sent to its weak model, priced again at the strong "
    "model price in force when it started (same tokens), less what it cost; a strong decision "
    "saves nothing.",
    "cache": "Each answer served from the response cache instead of the provider, at what the "
    "same call would have cost upstream at the price in force, less what the hit cost.",
    "batch": "Each call run through a provider Batch API, at the synchronous price of the same "
    "tokens, less the batch price paid.",
    "downgrade": "Each call an exhausted downgrade budget sent to its cheaper model, at the price "
    "of the model asked for (of a group, its cheapest member) for the same tokens, less what it "
    "cost.",
    "fallback": "Each call a fallback answered on a cheaper model after its first choice failed, "
    "at the first choice price for the same tokens, less what it cost (a dearer fallback "
    "records nothing).",
}
LEVER_COST_LABELS = {"shadow": "Shadow traffic", "judge": "Judge calls"}
LEVER_COST_METHODS = {
    "shadow": "Router calls mirrored in the background to the model the router did not choose, "
    "to measure what it saves and at what quality (evaluation spend, billed apart).",
    "judge": "Calls of the judge model grading the stored pairs of shadowed answers (evaluation "
    "spend, billed apart).",
}
SAVINGS_MEASURES = ("cost", "eval_cost", "judge_cost", *SAVED_FIELDS, *LEVER_SPEND_FIELDS)


def savings_sums() -> dict[str, Sum]:
    """The aggregates a ``Savings`` is built from, for ``.aggregate()`` or ``.annotate()``."""
    return {name: Sum(name) for name in SAVINGS_MEASURES}


def _dec(value) -> Decimal:
    return value if isinstance(value, Decimal) else Decimal(str(value or 0))


def _pct(part: Decimal, whole: Decimal) -> str | None:
    return str((part * HUNDRED / whole).quantize(CENT)) if whole else None


@dataclass
class Savings:
    """Saving measures summed over rollup rows: production spend, per lever its saving and the
    spend of its rows, and the evaluation spend (the judge's part apart)."""

    cost: Decimal = ZERO
    eval_cost: Decimal = ZERO
    judge_cost: Decimal = ZERO
    saved: dict[str, Decimal] = field(default_factory=lambda: dict.fromkeys(LEVERS, ZERO))
    spend: dict[str, Decimal] = field(default_factory=lambda: dict.fromkeys(LEVERS, ZERO))

    @classmethod
    def of(cls, sums: Mapping) -> Savings:
        found = cls()
        found.add(sums)
        return found

    def add(self, sums: Mapping) -> None:
        """Add one group of ``savings_sums()`` (missing names count as zero)."""
        self.cost += _dec(sums.get("cost"))
        self.eval_cost += _dec(sums.get("eval_cost"))
        self.judge_cost += _dec(sums.get("judge_cost"))
        for lever in LEVERS:
            self.saved[lever] += _dec(sums.get(f"saved_{lever}"))
            self.spend[lever] += _dec(sums.get(f"spend_{lever}"))

    @property
    def total_saved(self) -> Decimal:
        return sum(self.saved.values(), ZERO)

    @property
    def shadow_cost(self) -> Decimal:
        return self.eval_cost - self.judge_cost

    def as_json(self) -> dict:
        """Money as fixed-point strings (12 places). ``without_levers``: what the production
        calls would have cost without any lever; ``net_saved``: the savings less what the levers
        cost (all evaluation spend: shadow traffic and judge calls)."""
        total = self.total_saved
        return {
            "cost": money(self.cost),
            "saved": money(total),
            "without_levers": money(self.cost + total),
            "saved_pct": _pct(total, self.cost + total),
            "levers": [
                {
                    "lever": lever,
                    "label": LEVER_LABELS[lever],
                    "method": LEVER_METHODS[lever],
                    "saved": money(self.saved[lever]),
                    "spend": money(self.spend[lever]),
                }
                for lever in LEVERS
            ],
            "lever_costs": [
                {
                    "name": name,
                    "label": LEVER_COST_LABELS[name],
                    "method": LEVER_COST_METHODS[name],
                    "cost": money(cost),
                }
                for name, cost in (("shadow", self.shadow_cost), ("judge", self.judge_cost))
            ],
            "lever_cost": money(self.eval_cost),
            "net_saved": money(total - self.eval_cost),
        }
