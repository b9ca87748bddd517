"""The tenant on every log line and every task message.

One context variable holds the tenant of the work in hand: bound by the request
middleware (the user's tenants), by guest-token authentication, and before each
task runs (from the message's ``tenant_id`` header). A log-record factory stamps
it on every record as ``tenant_id``, so Django's and Celery's formats can print
it; a publish hook copies it into the headers of tasks sent from that context,
so follow-up work carries its tenant without every caller remembering to.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

from django.http import HttpRequest, HttpResponse

NO_TENANT = "-"
current_tenant: ContextVar[str] = ContextVar("current_tenant", default=NO_TENANT)


def bind_tenant(tenant_id: Any) -> None:
    current_tenant.set(str(tenant_id) if tenant_id not in (None, "") else NO_TENANT)


def install_log_record_factory() -> None:
    """Give every LogRecord a ``tenant_id`` attribute (idempotent)."""
    factory = logging.getLogRecordFactory()
    if getattr(factory, "_pms_tenant", False):
        return

    def record_with_tenant(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = factory(*args, **kwargs)
        record.tenant_id = current_tenant.get()
        return record

    record_with_tenant._pms_tenant = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(record_with_tenant)


class TenantLogMiddleware:
    """Bind the requesting user's tenant(s) for the request's log lines."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        token = current_tenant.set(NO_TENANT)
        try:
            user = getattr(request, "user", None)
            if getattr(user, "is_authenticated", False):
                # Not at the top: config.celery imports this module before Django's
                # app registry is ready, and selectors import models.
                from tenants.selectors import tenant_ids_for_user

                ids = tenant_ids_for_user(user)
                current_tenant.set(",".join(map(str, ids)) if ids else NO_TENANT)
            return self.get_response(request)
        finally:
            current_tenant.reset(token)


def bind_task_tenant(sender: Any = None, task: Any = None, **kwargs: Any) -> None:
    """task_prerun: the task's log lines carry the tenant from its message headers."""
    request = getattr(task, "request", None)
    bind_tenant(getattr(request, "tenant_id", None))


def propagate_tenant_header(headers: dict[str, Any] | None = None, **kwargs: Any) -> None:
    """before_task_publish: a task sent while working for one tenant carries its id."""
    if headers is None or headers.get("tenant_id") is not None:
        return
    tenant = current_tenant.get()
    if tenant != NO_TENANT and "," not in tenant:
        headers["tenant_id"] = int(tenant) if tenant.isdigit() else tenant
