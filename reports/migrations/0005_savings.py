"""The savings statement's measures on every rollup table: the judge's part of evaluation cost,
and per saving lever what it saved and the spend of its rows (``reports.models.SpendMeasures``).

Rows rolled up before this migration read zero for them. Savings are new in the ledger too
(gateway 0013), so only ``judge_cost`` of older days needs ``manage.py rollup --since DATE``
to be filled in (``spend_reconcile`` reports those days until then).
"""

from decimal import Decimal

from django.db import migrations, models

LEVERS = ("router", "cache", "batch", "downgrade", "fallback")  # gateway.savings.LEVERS, frozen
FIELDS = (
    "judge_cost",
    *(f"saved_{lever}" for lever in LEVERS),
    *(f"spend_{lever}" for lever in LEVERS),
)
TABLES = ("hourlyspend", "dailyspend", "dailydimensionspend")


class Migration(migrations.Migration):
    dependencies = [
        ("reports", "0004_provider_reports"),
    ]

    operations = [
        migrations.AddField(
            model_name=table,
            name=name,
            field=models.DecimalField(decimal_places=12, default=Decimal("0"), max_digits=24),
        )
        for table in TABLES
        for name in FIELDS
    ]
