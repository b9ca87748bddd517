"""Manager alerts of channel sync: conflicts, stale channels, disabled webhooks.

Each incident is claimed once (a timestamp on its row) before the mail is sent
from a task, outside any transaction; if sending fails the claim is undone so
the retry sends it.
"""

from __future__ import annotations

from django.conf import settings
from django.core.mail import send_mail

from channelsync.models import Channel, Conflict, WebhookSubscription
from channelsync.selectors import manager_emails


def _send(*, tenant_id: int, subject: str, body: str) -> int:
    recipients = manager_emails(tenant_id=tenant_id)
    if not recipients:
        return 0
    return send_mail(
        subject=f"[PMS] {subject}",
        message=body,
        from_email=settings.DEFAULT_FROM_EMAIL,
        recipient_list=recipients,
    )


def conflict_alert_send(*, conflict: Conflict) -> int:
    against = (
        f"booking {conflict.booking.reference}"
        if conflict.booking
        else f"a block from another channel ({conflict.other_block})"
    )
    return _send(
        tenant_id=conflict.tenant_id,
        subject=f"Calendar conflict on {conflict.property.name}",
        body=(
            f"{conflict.channel.name} imported a block "
            f"{conflict.block.start}..{conflict.block.end} that overlaps {against} "
            f"({conflict.start}..{conflict.end}).\n\n"
            "Resolve it in Admin > Channel sync > Conflicts."
        ),
    )


def stale_channel_alert_send(*, channel: Channel) -> int:
    last = channel.last_success_at.isoformat() if channel.last_success_at else "never"
    return _send(
        tenant_id=channel.tenant_id,
        subject=f"Channel {channel.name} of {channel.property.name} is stale",
        body=(
            f"No successful sync since {last} (poll interval {channel.poll_interval}).\n"
            f"Last error: {channel.last_error or '-'}\n\n"
            "See Admin > Channel sync > Channels; 'Sync now' retries at once."
        ),
    )


def webhook_disabled_alert_send(*, subscription: WebhookSubscription) -> int:
    return _send(
        tenant_id=subscription.tenant_id,
        subject="Webhook subscription disabled",
        body=(
            f"Deliveries to {subscription.url} failed {subscription.consecutive_failures} times "
            f"in a row, so the subscription was disabled.\n{subscription.disabled_reason}\n\n"
            "Fix the receiver, then re-enable it in Admin > Channel sync > Webhook subscriptions."
        ),
    )
