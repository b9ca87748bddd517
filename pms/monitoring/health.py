"""Health endpoints.

- ``/health/live/``: liveness for load balancers and orchestrators. This process
  answers and the database runs ``SELECT 1``; nothing else (no broker, no
  workers), so a stuck queue never takes the web tier out of rotation. Open to
  every address (it reveals nothing); JSON, 200 or 503.
- ``/health/``: the operator's deep check, django-health-check with the
  database, the cache (Redis), the broker and a worker ping (which also fails
  when a declared queue has no worker). ``?format=json`` (or ``Accept:
  application/json``) answers JSON; any failing check answers 500. Behind the
  same address/token rule as /metrics. Too slow and too broad for a probe.
"""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from typing import Any

from celery import current_app
from django.conf import settings
from django.db import DatabaseError, connection
from django.http import HttpRequest, HttpResponse, HttpResponseForbidden, JsonResponse
from django.views.decorators.cache import never_cache
from health_check.base import HealthCheck
from health_check.checks import Cache, Database
from health_check.contrib.celery import Ping
from health_check.exceptions import ServiceUnavailable
from health_check.views import HealthCheckView

from pms.monitoring.metrics import request_allowed


@dataclasses.dataclass
class Broker(HealthCheck):
    """The Celery broker (Redis or RabbitMQ) accepts a connection."""

    timeout = timedelta(seconds=3)

    def run(self) -> None:
        try:
            with current_app.connection_for_write() as connection:
                connection.ensure_connection(max_retries=1, timeout=2)
        except Exception as exc:
            raise ServiceUnavailable("broker unreachable") from exc


def health_checks() -> list[Any]:
    """Check classes with their options, as django-health-check's view takes them."""
    ping_timeout = timedelta(seconds=settings.QUEUE_HEALTH_INSPECT_TIMEOUT)
    return [
        Database,
        Cache,
        Broker,
        (Ping, {"app": current_app, "timeout": ping_timeout}),
    ]


async def health_view(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
    if not request_allowed(request):
        return HttpResponseForbidden("forbidden\n", content_type="text/plain")
    view = HealthCheckView.as_view(checks=health_checks())
    return await view(request, *args, **kwargs)


@never_cache
def liveness_view(request: HttpRequest) -> JsonResponse:
    """Shallow liveness: the process answers and the database runs ``SELECT 1``."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except DatabaseError as exc:
        if not connection.in_atomic_block:
            connection.close_if_unusable_or_obsolete()
        return JsonResponse(
            {"status": "fail", "database": f"unavailable: {type(exc).__name__}"}, status=503
        )
    return JsonResponse({"status": "ok", "database": "ok"})
