"""The mail a tenant's managers get from channel sync (conflicts, stale channels, disabled
webhooks). Sent from a task, outside any transaction, after the incident was claimed."""

from __future__ import annotations

from django.conf import settings
from django.core.mail import send_mail

from channelsync.selectors import manager_emails


def manager_mail_send(*, tenant_id: int, subject: str, body: str) -> int:
    """Mail the tenant's owners and managers; returns how many messages left (0: nobody)."""
    recipients = manager_emails(tenant_id=tenant_id)
    if not recipients:
        return 0
    return send_mail(
        subject=f"[PMS] {subject}",
        message=body,
        from_email=settings.DEFAULT_FROM_EMAIL,
        recipient_list=recipients,
    )
