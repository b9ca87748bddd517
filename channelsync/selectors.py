from __future__ import annotations

from datetime import datetime

from django.db.models import DateTimeField, ExpressionWrapper, F, Q, QuerySet, Value
from django.utils import timezone

from channelsync.choices import ConflictStatus
from channelsync.models import Channel, Conflict, WebhookSubscription
from pms.monitoring.channels import ChannelHealth
from tenants.choices import Role
from tenants.models import Membership, Tenant


def channel_get_by_export_token(*, token: str) -> Channel | None:
    """Export tokens are global secrets: the lookup is deliberately not tenant-scoped."""
    if not token or len(token) > 64:
        return None
    return Channel.objects.select_related("property").filter(export_token=token).first()


def channel_list(*, tenant: Tenant) -> QuerySet[Channel]:
    return Channel.objects.filter(tenant=tenant).select_related("property")


def conflict_list_open(*, tenant: Tenant) -> QuerySet[Conflict]:
    return Conflict.objects.filter(tenant=tenant, status=ConflictStatus.OPEN)


def webhook_subscriptions_for(*, tenant_id: int, event_type: str) -> list[WebhookSubscription]:
    return [
        subscription
        for subscription in WebhookSubscription.objects.filter(tenant_id=tenant_id, is_active=True)
        if subscription.wants(event_type)
    ]


def channels_stale(*, now: datetime | None = None) -> QuerySet[Channel]:
    """Polled channels with no success for 3 poll intervals, not alerted yet."""
    now = now or timezone.now()
    cutoff = ExpressionWrapper(Value(now) - F("poll_interval") * 3, output_field=DateTimeField())
    return (
        Channel.objects.filter(is_paused=False, stale_alerted_at__isnull=True)
        .exclude(import_url="")
        .annotate(stale_before=cutoff)
        .filter(
            Q(last_success_at__lt=F("stale_before"))
            | Q(last_success_at__isnull=True, created_at__lt=F("stale_before"))
        )
        .select_related("property")
    )


def manager_emails(*, tenant_id: int) -> list[str]:
    """Who is told about conflicts, stale channels and disabled webhooks."""
    return sorted(
        set(
            Membership.objects.filter(
                tenant_id=tenant_id, role__in=[Role.OWNER, Role.MANAGER], user__is_active=True
            )
            .exclude(user__email="")
            .values_list("user__email", flat=True)
        )
    )


def channel_health_report() -> list[ChannelHealth]:
    """Every polled channel's health for operator monitoring (pms.monitoring.channels)."""
    now = timezone.now()
    report: list[ChannelHealth] = []
    for channel in (
        Channel.objects.filter(is_paused=False)
        .exclude(import_url="")
        .only(
            "pk",
            "name",
            "tenant_id",
            "last_success_at",
            "created_at",
            "poll_interval",
            "consecutive_failures",
        )
    ):
        reference = channel.last_success_at or channel.created_at
        report.append(
            ChannelHealth(
                channel_id=channel.pk,
                name=channel.name,
                tenant_id=channel.tenant_id,
                stale=reference < now - 3 * channel.poll_interval,
                last_success_at=channel.last_success_at,
                consecutive_failures=channel.consecutive_failures,
            )
        )
    return report
