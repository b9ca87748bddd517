from __future__ import annotations

import time
from typing import Any

from django.apps import AppConfig
from django.db import connections

# A connection a task used less than this long ago is not pinged again before the next.
HEALTH_CHECK_AFTER_IDLE_SECONDS = 1.0


def _refresh_db_connections(**kwargs: Any) -> None:
    # Workers keep connections across tasks (CELERY_DB_REUSE_MAX); this applies
    # Django's own per-request hygiene per task instead: drop a connection that
    # broke (e.g. PostgreSQL restarted) or outlived CONN_MAX_AGE.
    #
    # With CONN_HEALTH_CHECKS, Django then pings (SELECT 1) before the first query of
    # each task: a second statement for a one-statement task. A connection the last
    # task left healthy less than a second ago is not pinged; one that sat idle (the
    # server may have restarted meanwhile) still is, and a task that meets a broken
    # connection anyway fails with a transient error and retries.
    now = time.monotonic()
    for conn in connections.all(initialized_only=True):
        conn.close_if_unusable_or_obsolete()
        last_used = getattr(conn, "pms_task_ended_at", None)
        if (
            conn.connection is not None
            and last_used is not None
            and now - last_used < HEALTH_CHECK_AFTER_IDLE_SECONDS
        ):
            conn.health_check_done = True  # type: ignore[attr-defined]


def _note_db_connections_used(**kwargs: Any) -> None:
    now = time.monotonic()
    for conn in connections.all(initialized_only=True):
        if conn.connection is not None and not conn.errors_occurred:
            conn.pms_task_ended_at = now  # type: ignore[attr-defined]
        else:
            conn.pms_task_ended_at = None  # type: ignore[attr-defined]


class PmsConfig(AppConfig):
    name = "pms"
    verbose_name = "PMS core"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Imported here, not at the top: they import models, which need the app registry.
        from celery import signals
        from django.utils.module_loading import autodiscover_modules

        from pms.pipeline import fairness, log_context, task_base
        from pms.pipeline.failures import record_task_failure, record_task_success

        signals.task_failure.connect(record_task_failure, dispatch_uid="pms.record_task_failure")
        task_base.retry_lost.connect(record_task_failure, dispatch_uid="pms.record_retry_lost")
        signals.task_success.connect(record_task_success, dispatch_uid="pms.record_task_success")
        # Bulk work admitted by the fair dispatcher frees its tenant's slot when it ends.
        task_base.task_returned.connect(
            fairness.free_slot_on_return, dispatch_uid="pms.fair_free_slot"
        )
        signals.task_prerun.connect(_refresh_db_connections, dispatch_uid="pms.refresh_db")
        signals.task_postrun.connect(_note_db_connections_used, dispatch_uid="pms.db_used")
        # Tenant ids on every log line and on follow-up task messages (pms.pipeline.log_context).

        signals.task_prerun.connect(log_context.bind_task_tenant, dispatch_uid="pms.log_tenant")
        signals.before_task_publish.connect(
            log_context.propagate_tenant_header, dispatch_uid="pms.tenant_header"
        )
        # Queue monitoring: publish timestamps, beat's tick, per-queue counts and runtimes.
        from pms.monitoring import signals as monitoring_signals

        monitoring_signals.connect()
        # Event handlers register themselves on import: load every app's handlers module.
        autodiscover_modules("handlers")
        # The admin index's panels (pms.dashboard): every app's dashboard module.
        autodiscover_modules("dashboard")
        # What happened to a booking or a channel (pms.story): every app's story module.
        autodiscover_modules("story")
        # The pages that update while open (pms.live): every app's live_pages module, and
        # the signals that make a viewer's open pages check their rights again.
        autodiscover_modules("live_pages")
        from pms.live import signals as live_signals

        live_signals.connect()
