"""The channel-health selector interface monitoring uses; channelsync provides it.

Monitoring does not import channelsync. An app that owns channels registers one
provider at start-up (in its AppConfig.ready)::

    from pms.monitoring.channels import ChannelHealth, register_channel_health_provider

    register_channel_health_provider(lambda: [ChannelHealth(...), ...])

With no provider registered, there are no channels to report: the "channel
stale" rule never fires and the channel gauges are absent.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ChannelHealth:
    channel_id: int | str
    name: str
    tenant_id: int
    stale: bool
    last_success_at: datetime | None = None
    consecutive_failures: int = 0


ChannelHealthProvider = Callable[[], list[ChannelHealth]]
_provider: ChannelHealthProvider | None = None


def register_channel_health_provider(provider: ChannelHealthProvider | None) -> None:
    global _provider
    _provider = provider


def channel_health() -> list[ChannelHealth] | None:
    """Every channel's health, or None when no app provides channels (or it failed)."""
    if _provider is None:
        return None
    try:
        return list(_provider())
    except Exception:
        logger.warning("channel health provider failed", exc_info=True)
        return None
