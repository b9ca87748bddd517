from __future__ import annotations

from django.apps import AppConfig


class ChannelsyncConfig(AppConfig):
    """iCal import/export, channel API pushes and outbound webhooks."""

    name = "channelsync"
    verbose_name = "Channel sync"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Imported here: selectors import models, which need the app registry ready.
        from channelsync.selectors import channel_health_report
        from pms.monitoring.channels import register_channel_health_provider

        # Operator monitoring (gauges, the "channel stale" rule) reads channels through this.
        register_channel_health_provider(channel_health_report)
