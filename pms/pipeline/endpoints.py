"""Remote endpoints a tenant's work talks to: lanes and their circuit breakers.

A *lane* is one endpoint (``scheme://host:port``) of one tenant. Fair admission
(pms.pipeline.fairness) admits at most ``FAIR_INFLIGHT_PER_ENDPOINT`` items per lane
at a time, so a receiver that hangs holds that many worker processes and no more,
and it lets nothing through a lane whose circuit is open.

The breaker is kept per tenant, never shared: tenant A's failing receiver on a host
must not stop tenant B's work to the same host (a shared channel manager, say).

- closed: calls go through; a failed call (timeout, connection error, HTTP 429 or 5xx)
  or a slow one (longer than ``ENDPOINT_SLOW_CALL_SECONDS``, even if it succeeded)
  adds one to ``consecutive_failures``; any other answer resets it;
- open: after ``ENDPOINT_BREAKER_FAILURES`` in a row; nothing is admitted until
  ``open_until`` (``ENDPOINT_BREAKER_COOLDOWN``, doubled on every failed probe, at most
  ``ENDPOINT_BREAKER_COOLDOWN_MAX``). The work waits as fair work items: nothing is
  dropped, and the admin shows it as deferred;
- half open: after the cooldown one call is admitted; its outcome closes the circuit
  or opens it again.

Why a table and not pybreaker's Redis storage: the state must be shared by every
worker on every host, read by the dispatcher's SQL (which lanes are open), shown in
the admin, and survive a Redis flush; pybreaker keeps one process's view and wraps
calls, while here the call and the admission happen in different processes.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from pms.models import EndpointCircuit
from pms.pipeline.enqueue import enqueue_on_commit
from pms.pipeline.errors import TransientError
from pms.pipeline.fairness import FAIR_DISPATCH_TASK
from pms.pipeline.log_context import NO_TENANT

logger = logging.getLogger(__name__)


def endpoint_lane(url: str) -> str:
    """The lane of a URL: its scheme, host and port ("" when it has no host)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return ""
    if not parts.hostname:
        return ""
    scheme = parts.scheme.lower() or "https"
    port = port or (443 if scheme == "https" else 80)
    return f"{scheme}://{parts.hostname.lower()}:{port}"[:300]


def cooldown(times_opened: int) -> timedelta:
    """How long the circuit stays open after its ``times_opened``-th opening."""
    seconds = settings.ENDPOINT_BREAKER_COOLDOWN * 2 ** max(times_opened - 1, 0)
    return timedelta(seconds=min(seconds, settings.ENDPOINT_BREAKER_COOLDOWN_MAX))


def circuit_record(
    *, tenant_id: int, lane: str, failed: bool, seconds: float, error: str = ""
) -> str:
    """Record one call's outcome; returns the circuit's state after it.

    ``failed``: the endpoint did not answer usefully (timeout, connection error, 429,
    5xx). A slow answer counts as failed too: it held a worker as long.
    """
    if not lane:
        return "closed"
    slow = seconds > settings.ENDPOINT_SLOW_CALL_SECONDS
    now = timezone.now()
    if not (failed or slow):
        # The common case: one UPDATE that touches nothing when all is well.
        EndpointCircuit.objects.filter(tenant_id=tenant_id, lane=lane).exclude(
            consecutive_failures=0, times_opened=0
        ).update(consecutive_failures=0, times_opened=0, open_until=None, last_success_at=now)
        return "closed"
    reason = error or f"answered after {seconds:.1f} s (slow)"
    with transaction.atomic():
        circuit, _ = EndpointCircuit.objects.select_for_update().get_or_create(
            tenant_id=tenant_id, lane=lane
        )
        circuit.consecutive_failures += 1
        circuit.last_error = reason[:2000]
        circuit.last_failure_at = now
        if circuit.consecutive_failures >= settings.ENDPOINT_BREAKER_FAILURES and not _is_open(
            circuit, now
        ):
            circuit.times_opened += 1
            circuit.open_until = now + cooldown(circuit.times_opened)
            logger.warning(
                "circuit of %s opened until %s after %d failed calls: %s",
                lane,
                circuit.open_until.isoformat(),
                circuit.consecutive_failures,
                reason,
            )
            # A dispatch pass when it half-opens, so the probe goes at once (the
            # periodic pass would admit it too, a few seconds later).
            enqueue_on_commit(
                FAIR_DISPATCH_TASK,
                countdown=(circuit.open_until - now).total_seconds() + 0.2,
                headers={"tenant_id": NO_TENANT},
                caught_up_by="the periodic dispatch pass",
            )
        circuit.save()
    return "open" if _is_open(circuit, now) else "closed"


@contextmanager
def endpoint_call(*, tenant_id: int, url: str) -> Iterator[None]:
    """Time one call to ``url`` and record its outcome on the tenant's circuit.

    A ``TransientError`` (timeout, connection error, 429, 5xx) or the task's soft time
    limit is a failure; any other exception means the endpoint answered (a 4xx, a
    refused redirect) and is not held against it. Exceptions are re-raised.
    """
    lane = endpoint_lane(url)
    started = time.monotonic()
    try:
        yield
    except (TransientError, SoftTimeLimitExceeded) as exc:
        circuit_record(
            tenant_id=tenant_id,
            lane=lane,
            failed=True,
            seconds=time.monotonic() - started,
            error=str(exc) or type(exc).__name__,
        )
        raise
    except Exception:
        circuit_record(
            tenant_id=tenant_id, lane=lane, failed=False, seconds=time.monotonic() - started
        )
        raise
    circuit_record(tenant_id=tenant_id, lane=lane, failed=False, seconds=time.monotonic() - started)


def _is_open(circuit: EndpointCircuit, now: datetime) -> bool:
    return circuit.open_until is not None and circuit.open_until > now


def circuit_close(*, circuit: EndpointCircuit) -> None:
    """Staff closed it by hand (the receiver is fixed): admit its work again now."""
    EndpointCircuit.objects.filter(pk=circuit.pk).update(
        consecutive_failures=0, times_opened=0, open_until=None
    )
