"""Channel sync's panels on the dashboard: double bookings to settle, channels not in sync."""

from __future__ import annotations

from django.db.models import Q
from django.http import HttpRequest
from django.urls import reverse

from channelsync.choices import ChannelStatus, ConflictStatus
from channelsync.models import Channel, Conflict
from pms.dashboard import (
    ROWS_PER_PANEL,
    DashboardDay,
    DashboardPanel,
    DashboardRow,
    changelist_url,
    dashboard_panel,
)
from tenants.scoping import scope_queryset


def _channel_trouble(channel: Channel) -> str:
    parts = [channel.get_status_display()]
    if channel.consecutive_failures:
        parts.append(f"{channel.consecutive_failures} failed syncs")
    if channel.last_success_at:
        parts.append(f"last good {channel.last_success_at:%Y-%m-%d %H:%M}")
    else:
        parts.append("never synced")
    return " · ".join(parts)


@dashboard_panel("conflicts", order=80)
def open_conflicts(request: HttpRequest, dash: DashboardDay) -> DashboardPanel | None:
    if not request.user.has_perm("channelsync.view_conflict"):
        return None
    conflicts = scope_queryset(
        Conflict.objects.filter(status=ConflictStatus.OPEN).select_related("property", "channel"),
        request.user,
        perms=["channelsync.view_conflict"],
    )
    rows = [
        DashboardRow(
            label=f"{conflict.property.name}: {conflict.start} to {conflict.end}",
            detail=f"{conflict.channel.name} overlaps a stay",
            url=reverse("admin:channelsync_conflict_change", args=[conflict.pk]),
            tone="bad" if conflict.start <= dash.tomorrow else "warn",
        )
        for conflict in conflicts.order_by("start")[:ROWS_PER_PANEL]
    ]
    return DashboardPanel(
        key="conflicts",
        title="Open conflicts",
        count=conflicts.count(),
        rows=rows,
        link=changelist_url("channelsync.conflict", status=ConflictStatus.OPEN),
        tone="bad",
        empty="No double bookings.",
    )


@dashboard_panel("channels", order=90)
def channels_out_of_sync(request: HttpRequest, dash: DashboardDay) -> DashboardPanel | None:
    """Channels whose last sync failed or that have not synced for three poll intervals."""
    if not request.user.has_perm("channelsync.view_channel"):
        return None
    troubled = scope_queryset(
        Channel.objects.filter(is_paused=False)
        .filter(
            Q(status__in=[ChannelStatus.ERROR, ChannelStatus.STALE]) | Q(consecutive_failures__gt=0)
        )
        .select_related("property"),
        request.user,
        perms=["channelsync.view_channel"],
    )
    rows = [
        DashboardRow(
            label=f"{channel.name} · {channel.property.name}",
            detail=f"{channel.get_status_display()}"
            + (
                f" · {channel.consecutive_failures} failed syncs"
                if channel.consecutive_failures
                else ""
            )
            + (
                f" · last good {channel.last_success_at:%Y-%m-%d %H:%M}"
                if channel.last_success_at
                else " · never synced"
            ),
            url=reverse("admin:channelsync_channel_change", args=[channel.pk]),
            tone="bad" if channel.status == ChannelStatus.ERROR else "warn",
        )
        for channel in troubled.order_by("-consecutive_failures", "name")[:ROWS_PER_PANEL]
    ]
    return DashboardPanel(
        key="channels",
        title="Channels out of sync",
        count=troubled.count(),
        rows=rows,
        link=changelist_url(
            "channelsync.channel", status__in=f"{ChannelStatus.ERROR},{ChannelStatus.STALE}"
        ),
        tone="warn",
        empty="Every channel is in sync.",
    )
