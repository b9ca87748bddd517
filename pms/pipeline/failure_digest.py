"""Staff alerts for failed tasks: one digest per tenant, not one mail per failure."""

from __future__ import annotations

import logging
from collections import defaultdict
from datetime import datetime

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import send_mail

from pms.models import FailedTask
from pms.pipeline.pending import claim
from tenants.choices import Role
from tenants.models import Membership

logger = logging.getLogger(__name__)


def _recipients(tenant_id: int | None) -> list[str]:
    emails = set(settings.STAFF_ALERT_EMAILS)
    emails |= set(
        get_user_model()
        .objects.filter(is_superuser=True, is_active=True)
        .exclude(email="")
        .values_list("email", flat=True)
    )
    if tenant_id is not None:
        emails |= set(
            Membership.objects.filter(
                tenant_id=tenant_id,
                role__in=[Role.OWNER, Role.MANAGER, Role.STAFF],
                user__is_active=True,
            )
            .exclude(user__email="")
            .values_list("user__email", flat=True)
        )
    return sorted(emails)


def _mark_alerted(failed: FailedTask, now: datetime) -> None:
    failed.alerted_at = now


def failed_task_alerts_send() -> int:
    """Send a digest per tenant of failures with no alert yet. Returns failures reported.

    Rows are claimed (``alerted_at`` set) in a short transaction with SKIP LOCKED, so
    two alert tasks never report one failure twice; mail goes out after commit,
    holding no lock. A tenant whose mail fails has its rows unclaimed and the error
    re-raised, so the task's retry sends exactly those again. Tenant digests go only
    to that tenant's staff (and operators): no cross-tenant detail.
    """
    pending = claim(
        FailedTask.objects.filter(alerted_at__isnull=True, status="open"),
        order_by=["last_failed_at"],
        hold=_mark_alerted,
        fields=["alerted_at"],
        batch_size=500,
    )
    by_tenant: dict[int | None, list[FailedTask]] = defaultdict(list)
    for failed in pending:
        by_tenant[failed.tenant_id].append(failed)
    first_error: Exception | None = None
    for tenant_id, failures in by_tenant.items():
        recipients = _recipients(tenant_id)
        if not recipients:
            logger.warning(
                "no recipient for %d failed-task alerts (tenant=%s)", len(failures), tenant_id
            )
            continue
        lines = [
            f"- {f.task_name} [{f.queue}] {f.exception_class}: {f.exception_message[:200]}"
            for f in failures
        ]
        try:
            send_mail(
                subject=f"[PMS] {len(failures)} task(s) need review",
                message="These tasks gave up and wait in Admin > Failed tasks:\n\n"
                + "\n".join(lines),
                from_email=settings.DEFAULT_FROM_EMAIL,
                recipient_list=recipients,
            )
        except Exception as exc:
            FailedTask.objects.filter(pk__in=[f.pk for f in failures]).update(alerted_at=None)
            first_error = first_error or exc
    if first_error is not None:
        raise first_error
    return len(pending)
