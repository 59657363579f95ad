"""The Celery app and its periodic schedule, declared here in one place.

Embedded default: kombu's filesystem transport under ``FINOPS_VAR_DIR/broker`` (a real worker
and beat, no broker server), with remote control and results off. Production: Redis or RabbitMQ
through ``CELERY_BROKER_URL``.
"""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "finops.settings")

app = Celery("finops")


def _configure() -> None:
    from django.conf import settings

    conf: dict = {
        "broker_url": settings.CELERY_BROKER_URL,
        "task_always_eager": settings.CELERY_TASK_ALWAYS_EAGER,
        "task_ignore_result": True,
        "result_backend": None,
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "task_soft_time_limit": 240,
        "task_time_limit": 300,
        "timezone": "UTC",
        "beat_schedule_filename": str(settings.VAR_DIR / "celerybeat-schedule"),
        "beat_schedule": {
            "rollup": {
                "task": "reports.tasks.rollup_task",
                "schedule": settings.ROLLUP_INTERVAL_SECONDS,
                "options": {"expires": settings.ROLLUP_INTERVAL_SECONDS * 2},
            },
            "evaluation-pairs-purge": {
                "task": "evaluation.tasks.pairs_purge_task",
                "schedule": 3600.0,
                "options": {"expires": 7200.0},
            },
            "evaluation-judge": {
                "task": "evaluation.tasks.judge_pairs_task",
                "schedule": settings.FINOPS_JUDGE_INTERVAL_SECONDS,
                "options": {"expires": settings.FINOPS_JUDGE_INTERVAL_SECONDS * 2},
            },
            "responses-purge": {
                "task": "gateway.tasks.responses_purge_task",
                "schedule": 3600.0,
                "options": {"expires": 7200.0},
            },
            "counters-reconcile": {
                "task": "gateway.tasks.counters_reconcile_task",
                "schedule": settings.FINOPS_RECONCILE_INTERVAL_SECONDS,
                "options": {"expires": settings.FINOPS_RECONCILE_INTERVAL_SECONDS * 2},
            },
            "invoices-pull": {
                "task": "reports.tasks.invoices_pull_task",
                "schedule": settings.FINOPS_INVOICE_PULL_INTERVAL_SECONDS,
                "options": {"expires": settings.FINOPS_INVOICE_PULL_INTERVAL_SECONDS},
            },
            "budget-check": {
                "task": "reports.tasks.budget_check_task",
                "schedule": settings.BUDGET_CHECK_INTERVAL_SECONDS,
                "options": {"expires": settings.BUDGET_CHECK_INTERVAL_SECONDS * 2},
            },
        },
    }
    if settings.CELERY_EMBEDDED_BROKER:
        folder = settings.CELERY_BROKER_DIR
        for sub in ("out", "processed", "control"):
            (folder / sub).mkdir(parents=True, exist_ok=True)
        conf.update(
            broker_transport_options={
                "data_folder_in": str(folder / "out"),
                "data_folder_out": str(folder / "out"),
                "data_folder_processed": str(folder / "processed"),
                "control_folder": str(folder / "control"),
                "store_processed": False,
            },
            worker_enable_remote_control=False,
            worker_send_task_events=False,
            broker_connection_retry_on_startup=True,
        )
    app.conf.update(conf)


_configure()
app.autodiscover_tasks()
