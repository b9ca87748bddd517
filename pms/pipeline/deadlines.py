"""How long the relay waits before it sends a still-pending delivery again."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings


def relay_backoff(publish_count: int) -> timedelta:
    """The wait after the ``publish_count``-th send: the deadline, doubling, at most 16 times it."""
    deadline: timedelta = settings.OUTBOX_DELIVERY_DEADLINE
    return deadline * min(2**publish_count, 16)
