"""The operator-alert watchdog: evaluates the alert rules in its own process.

Alerts must not depend on what they watch. Beat's periodic task can only run
when beat publishes and a ``fallback`` worker consumes, so "beat silent" could
never fire from it. ``manage.py ops_watchdog`` (the ``watchdog`` line of the
Procfile) calls :func:`watchdog_iteration` every ``OPS_WATCHDOG_INTERVAL``
seconds, directly, with no Celery round trip. Beat's periodic evaluation may
keep running beside it: incidents are unique per (rule, subject) and each
message is claimed before it is sent, so the two never double-send.

For its first ``OPS_ALERT_STARTUP_GRACE_SECONDS`` the process does not evaluate:
started by the same ``make run`` as the workers and beat, it would otherwise see
queues with work and no consumer before the workers are up. (Each rule's
``for_seconds`` covers the same ground for beat's evaluation and for restarts.)
"""

from __future__ import annotations

import logging
import threading
import time

from django.db import close_old_connections

from pms.monitoring.alerts import alert_rules_evaluate
from pms.monitoring.overview import queue_overview

logger = logging.getLogger(__name__)


class WatchdogConfigError(ValueError):
    pass


def watchdog_interval(raw: object) -> float:
    """``OPS_WATCHDOG_INTERVAL`` as positive seconds, or a readable error."""
    try:
        interval = float(str(raw).strip())
    except ValueError:
        raise WatchdogConfigError(
            f"OPS_WATCHDOG_INTERVAL must be a number of seconds, got {raw!r}"
        ) from None
    if not interval > 0 or interval == float("inf"):
        raise WatchdogConfigError(f"OPS_WATCHDOG_INTERVAL must be positive, got {raw!r}")
    return interval


def watchdog_startup_grace(raw: object) -> float:
    """``OPS_ALERT_STARTUP_GRACE_SECONDS`` as seconds (0 or more), or a readable error."""
    try:
        grace = float(str(raw).strip())
    except ValueError:
        raise WatchdogConfigError(
            f"OPS_ALERT_STARTUP_GRACE_SECONDS must be a number of seconds, got {raw!r}"
        ) from None
    if not grace >= 0 or grace == float("inf"):
        raise WatchdogConfigError(f"OPS_ALERT_STARTUP_GRACE_SECONDS must be 0 or more, got {raw!r}")
    return grace


def watchdog_iteration() -> dict[str, int] | None:
    """One evaluation of every rule, then the messages. None when it failed (logged)."""
    # A long-lived process: drop a connection that broke (database restarted).
    close_old_connections()
    try:
        result = alert_rules_evaluate(overview=queue_overview(use_worker_cache=False))
    except Exception:
        logger.exception("ops watchdog: evaluation failed; trying again next interval")
        close_old_connections()
        return None
    if result["opened"] or result["resolved"] or result["notified"]:
        logger.info("ops watchdog: %s", result)
    return result


def watchdog_run(
    *, interval: float, stop: threading.Event, iterations: int = 0, startup_grace: float = 0
) -> int:
    """After ``startup_grace`` seconds, evaluate every ``interval`` seconds until ``stop``
    is set (or ``iterations`` ran)."""
    done = 0
    if startup_grace > 0:
        logger.info(
            "ops watchdog: start-up grace, first evaluation in %gs "
            "(OPS_ALERT_STARTUP_GRACE_SECONDS)",
            startup_grace,
        )
        if stop.wait(startup_grace):
            return done
    while not stop.is_set():
        started = time.monotonic()
        watchdog_iteration()
        done += 1
        if iterations and done >= iterations:
            break
        stop.wait(max(0.0, interval - (time.monotonic() - started)))
    return done
