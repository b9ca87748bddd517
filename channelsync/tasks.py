"""Channel sync tasks. Thin: take ids, re-fetch, return quietly if the row is gone,
call a service. Routed to ``channelsync`` (config.queues), except imports (``bulk``) and
pushes and webhooks (``outbound``), which fair admission sends; alerts go to
``messaging``.

Each task sent from a service is registered under the service's name constant
(``channelsync.services``): the services send by name and never import this module.
"""

from __future__ import annotations

import logging
import smtplib
import socket
from collections.abc import Callable
from typing import Any

from celery import shared_task
from django.conf import settings

from channelsync.models import Channel
from channelsync.services import (
    ALERT_CONFLICT_TASK,
    ALERT_STALE_TASK,
    ALERT_WEBHOOK_DISABLED_TASK,
    IMPORT_TASK,
    PUSH_TASK,
    SEND_WEBHOOK_TASK,
    channel_import_run,
    channel_imports_submit,
    channel_push_submit,
    channel_unmark_stale,
    channel_updates_defer,
    channel_updates_due_channels,
    channel_updates_push,
    channels_claim_due_polls,
    channels_mark_stale,
    channels_push_submit,
    conflict_alert_send,
    conflict_claim_alert,
    conflict_unclaim_alert,
    push_followup_claim,
    stale_channel_alert_send,
    stale_channel_alerts_submit,
    webhook_claim_disable_alert,
    webhook_deliveries_submit_due,
    webhook_delivery_attempt,
    webhook_disabled_alert_send,
    webhook_unclaim_disable_alert,
)
from pms.pipeline.redis_client import redis_client
from pms.pipeline.task_base import ReliableTask

logger = logging.getLogger(__name__)

# Channel work talks to slow remote servers: tighter limits than the global ones.
SOFT_TIME_LIMIT = 45
TIME_LIMIT = 60
MAIL_ERRORS = (smtplib.SMTPException, ConnectionError, socket.timeout, TimeoutError)
BUSY_RECHECK_SECONDS = 2


class ChannelTask(ReliableTask):
    """Retries honour the server's Retry-After; running out of retries calls ``on_exhausted``."""

    abstract = True

    def retry(self, *args: Any, **kwargs: Any) -> Any:
        exc = kwargs.get("exc")
        retry_after = getattr(exc, "retry_after", None)
        if retry_after is not None:
            # Bounded by the backoff cap: longer waits are scheduled through the
            # row (next_poll_at / next_attempt_at) instead; see the services.
            kwargs["countdown"] = min(float(retry_after), float(settings.TASK_RETRY_BACKOFF_MAX))
        if (self.request.retries or 0) >= (self.max_retries or 0):
            self.on_exhausted(*(self.request.args or ()), **(self.request.kwargs or {}))
        return super().retry(*args, **kwargs)

    def on_exhausted(self, *args: Any, **kwargs: Any) -> None:
        """Hook: retries ran out (the FailedTask is written by the task_failure path)."""


@shared_task(
    name="channelsync.tasks.poll_due_channels",
    base=ReliableTask,
    max_retries=0,
    soft_time_limit=SOFT_TIME_LIMIT,
    time_limit=TIME_LIMIT,
)
def poll_due_channels() -> int:
    """Beat: an import for every channel whose (jittered) poll time has come.

    Imports are admitted within each tenant's share (pms.pipeline.fairness), so a tenant
    with thousands of channels due at once cannot hold the sync workers.
    """
    claimed = channels_claim_due_polls()
    channel_imports_submit(
        channels=list(Channel.objects.filter(pk__in=claimed).only("tenant_id", "import_url"))
    )
    return len(claimed)


@shared_task(
    name=IMPORT_TASK,
    base=ChannelTask,
    bind=True,
    soft_time_limit=SOFT_TIME_LIMIT,
    time_limit=TIME_LIMIT,
)
def import_channel(self: ChannelTask, channel_id: int, full: bool = False) -> str:
    """Fetch the channel's feed (outside any transaction) and apply it."""
    channel = Channel.objects.select_related("property").filter(pk=channel_id).first()
    if channel is None or not channel.import_url:
        return "gone"
    if channel.is_paused and not full:
        return "paused"
    # One import per channel at a time ("sync now" during a scheduled poll): two
    # would each count a vanished UID once (cancelling it a fetch early) and an
    # older fetch could be applied after a newer one. The lock outlives the task's
    # hard limit, so a killed worker's lock expires on its own.
    lock = redis_client().lock(
        f"pms:channel-import:{channel_id}", timeout=TIME_LIMIT + 30, blocking=False
    )
    if not lock.acquire(blocking=False):
        return "busy"
    try:
        return channel_import_run(channel=channel, full=full)
    finally:
        try:
            lock.release()
        except Exception:  # expired: nothing to undo
            logger.info("import lock of channel %s had expired", channel_id)


class PushTask(ChannelTask):
    abstract = True

    def on_exhausted(self, channel_id: int, *args: Any, **kwargs: Any) -> None:
        channel_updates_defer(channel_id=channel_id)


@shared_task(
    name=PUSH_TASK,
    base=PushTask,
    bind=True,
    soft_time_limit=SOFT_TIME_LIMIT,
    time_limit=TIME_LIMIT,
)
def push_channel(self: PushTask, channel_id: int) -> dict[str, int]:
    """Send the push channel's pending availability updates, in order."""
    counts = channel_updates_push(channel_id=channel_id)
    channel = Channel.objects.filter(pk=channel_id).first()
    if counts["more"] and channel is not None:
        # The run used its budget (time or count) with updates still due: the rest
        # is sent by a fresh run, far from the soft time limit, admitted like any run.
        channel_push_submit(channel=channel)
    elif counts["busy"] and push_followup_claim(
        channel_id=channel_id, seconds=BUSY_RECHECK_SECONDS
    ):
        # Another worker is sending for this channel; look again shortly so an
        # update it did not see is not left to the sweep. One follow-up per
        # channel at a time (a Redis marker), not a re-enqueue loop per message.
        push_channel.apply_async(args=(channel_id,), countdown=BUSY_RECHECK_SECONDS)
    return counts


@shared_task(
    name=SEND_WEBHOOK_TASK,
    base=ReliableTask,
    soft_time_limit=SOFT_TIME_LIMIT,
    time_limit=TIME_LIMIT,
)
def send_webhook(delivery_id: int) -> str:
    """One attempt of a webhook delivery; failures are scheduled on the row, not retried here."""
    return webhook_delivery_attempt(delivery_id=delivery_id)


@shared_task(name="channelsync.tasks.sweep_outbound", base=ReliableTask, max_retries=0)
def sweep_outbound() -> dict[str, int]:
    """Beat: re-enqueue push updates and webhook deliveries still pending past their time."""
    grace = settings.OUTBOX_DELIVERY_DEADLINE
    heads = channel_updates_due_channels(grace=grace)
    channels = Channel.objects.in_bulk([channel_id for channel_id, _ in heads])
    # A stable id per head update: repeated failures reopen one FailedTask.
    channels_push_submit(
        runs=[
            (channels[channel_id], f"channelsync-push-{channel_id}-{head_id}")
            for channel_id, head_id in heads
            if channel_id in channels
        ]
    )
    # The same grace as the push heads; deliveries whose attempt waits in fair
    # admission are not submitted again.
    webhooks = webhook_deliveries_submit_due(grace=grace)
    return {"channels": len(heads), "webhooks": webhooks}


@shared_task(name="channelsync.tasks.check_stale_channels", base=ReliableTask, max_retries=0)
def check_stale_channels() -> int:
    """Beat: submit an alert per channel with no success for 3 poll intervals (once each).

    Each alert is a task of its own (``alert_stale_channel``): a failed mail retries
    that channel's alert only, and the check's statements do not grow with channels.
    """
    return stale_channel_alerts_submit()


def _alert_once(
    claim: Callable[[], Any], send: Callable[[Any], object], unclaim: Callable[[], None]
) -> bool:
    """Claim one alert, mail it, and give the claim back if the mail fails (then raise,
    so the task's retry claims it again). False: gone, or alerted already."""
    claimed = claim()
    if claimed is None:
        return False
    try:
        send(claimed)
    except MAIL_ERRORS:
        unclaim()
        raise
    return True


def _stale_channel_claim(channel_id: int) -> Channel | None:
    if not channels_mark_stale(channel_ids=[channel_id]):
        return None  # alerted meanwhile, or another run holds it
    return Channel.objects.select_related("property").filter(pk=channel_id).first()


@shared_task(name=ALERT_STALE_TASK, base=ReliableTask, autoretry_for=MAIL_ERRORS)
def alert_stale_channel(channel_id: int) -> bool:
    """Claim one stale channel's alert and mail its managers (once)."""
    return _alert_once(
        lambda: _stale_channel_claim(channel_id),
        lambda channel: stale_channel_alert_send(channel=channel),
        lambda: channel_unmark_stale(channel_id=channel_id),
    )


@shared_task(name=ALERT_CONFLICT_TASK, base=ReliableTask, autoretry_for=MAIL_ERRORS)
def alert_conflict(conflict_id: int) -> bool:
    return _alert_once(
        lambda: conflict_claim_alert(conflict_id=conflict_id),
        lambda conflict: conflict_alert_send(conflict=conflict),
        lambda: conflict_unclaim_alert(conflict_id=conflict_id),
    )


@shared_task(name=ALERT_WEBHOOK_DISABLED_TASK, base=ReliableTask, autoretry_for=MAIL_ERRORS)
def alert_webhook_disabled(subscription_id: int) -> bool:
    return _alert_once(
        lambda: webhook_claim_disable_alert(subscription_id=subscription_id),
        lambda subscription: webhook_disabled_alert_send(subscription=subscription),
        lambda: webhook_unclaim_disable_alert(subscription_id=subscription_id),
    )
