"""Outbound webhooks: subscribe, sign, deliver, retry over hours, auto-disable.

Each request carries:
- ``X-PMS-Event-Id`` (and ``webhook-id``): the event id; receivers de-duplicate on it;
- Standard Webhooks signature headers ``webhook-id``, ``webhook-timestamp``,
  ``webhook-signature`` (see channelsync.webhook_signing), and for one more release
  the deprecated ``X-PMS-Timestamp`` / ``X-PMS-Signature: v1=<hex>``; receivers
  reject old timestamps.

Retries follow ``WEBHOOK_RETRY_SCHEDULE`` (seconds after each failure) through
``next_attempt_at`` and the beat sweep, never long Celery countdowns.

Every attempt is fair work (pms.pipeline.fairness, scope ``webhooks``) in the
receiver's lane, sent on the ``outbound`` queue: a tenant's receiver that hangs holds
at most ``FAIR_INFLIGHT_PER_ENDPOINT`` outbound workers, its circuit opens after
``ENDPOINT_BREAKER_FAILURES`` failed or slow attempts, and its deliveries then wait
(pending, shown as deferred in the admin) instead of holding workers other tenants need.
A circuit's waits are not attempts: they never count towards auto-disable.

Auto-disable needs both ``WEBHOOK_DISABLE_AFTER_FAILURES`` failed attempts in a
row AND a first failure at least ``WEBHOOK_DISABLE_AFTER_SECONDS`` old: a burst
of events during a one-minute receiver outage fails many attempts at once and
must not disable the subscription. A disabled subscription's pending deliveries
stay pending (not attempted, not swept); re-enabling makes them due again, so
an outage loses no event that was already recorded. The tenant's managers are
told of a disable once.
"""

from __future__ import annotations

import hmac
import json
import logging
import time
import uuid
from datetime import datetime, timedelta
from typing import Any

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from channelsync.choices import OutboundStatus
from channelsync.feeds.fetch import FetchHTTPError, FetchRefused, FetchTooLarge, safe_request
from channelsync.models import WebhookDelivery, WebhookSubscription, new_webhook_secret
from channelsync.selectors import webhook_subscriptions_for
from channelsync.services.manager_mail import manager_mail_send
from channelsync.services.webhook_events import TEST_EVENT_TYPE, webhook_test_data
from channelsync.webhook_signing import legacy_signature, signed_headers
from pms.pipeline.endpoints import endpoint_call, endpoint_lane
from pms.pipeline.enqueue import enqueue_on_commit
from pms.pipeline.errors import TransientError
from pms.pipeline.fairness import FairWork, fair_submit_many, without_open_work
from pms.pipeline.pending import claim_one
from tenants.models import Tenant

logger = logging.getLogger(__name__)

SEND_WEBHOOK_TASK = "channelsync.tasks.send_webhook"
ALERT_WEBHOOK_DISABLED_TASK = "channelsync.tasks.alert_webhook_disabled"
# While a send is in flight the row is pushed this far ahead, so the sweep leaves it alone.
IN_FLIGHT_SECONDS = 60


def signature(*, secret: str, timestamp: str, body: bytes) -> str:
    """The deprecated ``X-PMS-Signature`` (kept for one release)."""
    return legacy_signature(secret=secret, timestamp=timestamp, body=body)


def signature_valid(
    *, secret: str, timestamp: str, body: bytes, header: str, tolerance: int = 300
) -> bool:
    """What a receiver does (used by our tests' receiver; documented for integrators)."""
    try:
        if abs(time.time() - int(timestamp)) > tolerance:
            return False
    except ValueError:
        return False
    return hmac.compare_digest(signature(secret=secret, timestamp=timestamp, body=body), header)


_fair_key_prefix = "webhook:"


def _fair_key(delivery_id: int) -> str:
    return f"{_fair_key_prefix}{delivery_id}"


def webhook_deliveries_submit(deliveries: list[tuple[int, int, str]], *, new: bool = False) -> None:
    """Submit attempts of (delivery id, tenant id, receiver URL) as fair work.

    Written in the caller's transaction: the item commits with the delivery, so no
    attempt is lost between commit and publish. ``new``: the deliveries were just created.
    """
    fair_submit_many(
        [
            FairWork(
                tenant_id=tenant_id,
                scope="webhooks",
                task_name=SEND_WEBHOOK_TASK,
                args=[delivery_id],
                queue="outbound",
                dedupe_key=_fair_key(delivery_id),
                lane=endpoint_lane(url),
            )
            for delivery_id, tenant_id, url in deliveries
        ],
        new=new,
    )


def _submit_new(delivery: WebhookDelivery, subscription: WebhookSubscription) -> None:
    webhook_deliveries_submit([(delivery.pk, subscription.tenant_id, subscription.url)], new=True)


def webhook_subscription_create(
    *, tenant: Tenant, url: str, event_types: list[str], send_test: bool = True
) -> WebhookSubscription:
    with transaction.atomic():
        subscription = WebhookSubscription.objects.create(
            tenant=tenant, url=url, event_types=event_types
        )
        if send_test:
            webhook_test_send(subscription=subscription)
    return subscription


# Fields an edit may change (the secret is rotated, never typed; the tenant never changes).
WEBHOOK_SUBSCRIPTION_EDITABLE_FIELDS = frozenset({"url", "event_types"})


def webhook_subscription_update(
    *, subscription: WebhookSubscription, **changes: Any
) -> WebhookSubscription:
    """Change a subscription's URL or event types (admin edits call this).

    Deliveries already recorded keep going to the subscription, at its new URL.
    """
    unknown = set(changes) - WEBHOOK_SUBSCRIPTION_EDITABLE_FIELDS
    if unknown:
        raise ValueError(f"not editable: {', '.join(sorted(unknown))}")
    with transaction.atomic():
        locked = WebhookSubscription.objects.select_for_update().get(pk=subscription.pk)
        fields = [name for name, value in changes.items() if getattr(locked, name) != value]
        for name in fields:
            setattr(locked, name, changes[name])
        if fields:
            locked.full_clean(exclude=["tenant", "secret"])
            locked.save(update_fields=fields)
    return locked


def webhook_test_send(*, subscription: WebhookSubscription) -> WebhookDelivery:
    """Queue a ``webhook.test`` delivery (on subscribing, or from the admin)."""
    event_id = uuid.uuid4()
    with transaction.atomic():
        delivery = WebhookDelivery.objects.create(
            tenant_id=subscription.tenant_id,
            subscription=subscription,
            event_id=event_id,
            event_type=TEST_EVENT_TYPE,
            payload=webhook_test_data(subscription_id=subscription.pk),
            next_attempt_at=timezone.now(),
        )
        _submit_new(delivery, subscription)
    return delivery


def webhook_subscription_secret_rotate(*, subscription: WebhookSubscription) -> str:
    """Give the subscription a new signing secret and return it (to be shown once).

    Every delivery attempted from now on is signed with the new secret, retries of
    older deliveries included: the receiver must switch to it.
    """
    with transaction.atomic():
        locked = WebhookSubscription.objects.select_for_update().get(pk=subscription.pk)
        locked.secret = new_webhook_secret()
        locked.save(update_fields=["secret"])
    return locked.secret


# What older code wrote on deliveries it dropped because the subscription was
# disabled; re-enabling re-opens those too.
DISABLED_DROP_ERROR = "subscription disabled"


def webhook_subscription_enable(*, subscription: WebhookSubscription) -> int:
    """Re-enable and re-open the deliveries held while disabled. Returns how many."""
    now = timezone.now()
    with transaction.atomic():
        WebhookSubscription.objects.filter(pk=subscription.pk).update(
            is_active=True,
            consecutive_failures=0,
            failing_since=None,
            disabled_at=None,
            disabled_reason="",
            disable_alerted_at=None,
        )
        held = WebhookDelivery.objects.filter(subscription_id=subscription.pk).filter(
            Q(status=OutboundStatus.PENDING)
            | Q(status=OutboundStatus.FAILED, last_error=DISABLED_DROP_ERROR)
        )
        reopened = list(held.values_list("pk", flat=True))
        held.update(status=OutboundStatus.PENDING, next_attempt_at=now)
        webhook_deliveries_submit(
            [(delivery_id, subscription.tenant_id, subscription.url) for delivery_id in reopened]
        )
    return len(reopened)


def webhook_deliveries_record(
    *, tenant_id: int, event_id: Any, event_type: str, payload: dict[str, Any]
) -> int:
    """Inside the handler's transaction: one pending delivery per interested subscription.

    ``payload`` is the public ``data`` of the event (``services.webhook_events``): what
    is stored is what every attempt sends.
    """
    created = 0
    for subscription in webhook_subscriptions_for(tenant_id=tenant_id, event_type=event_type):
        delivery, is_new = WebhookDelivery.objects.get_or_create(
            subscription=subscription,
            event_id=event_id,
            defaults={
                "tenant_id": tenant_id,
                "event_type": event_type,
                "payload": payload,
                "next_attempt_at": timezone.now(),
            },
        )
        if is_new:
            created += 1
            _submit_new(delivery, subscription)
    return created


def _sendable() -> QuerySet[WebhookDelivery]:
    """Pending deliveries that may be sent: a disabled subscription holds its own (not its
    tests), which stay pending, neither attempted nor swept, until it is re-enabled."""
    return WebhookDelivery.objects.filter(status=OutboundStatus.PENDING).filter(
        Q(subscription__is_active=True) | Q(event_type=TEST_EVENT_TYPE)
    )


def _hold(delivery: WebhookDelivery, now: datetime) -> None:
    delivery.next_attempt_at = now + timedelta(seconds=IN_FLIGHT_SECONDS)


def _claim(delivery_id: int) -> WebhookDelivery | None:
    return claim_one(
        _sendable().select_related("subscription"),
        pk=delivery_id,
        due_field="next_attempt_at",
        hold=_hold,
        fields=["next_attempt_at"],
    )


def webhook_delivery_attempt(*, delivery_id: int) -> str:
    """Send one due delivery and record the outcome. Returns what happened."""
    delivery = _claim(delivery_id)
    if delivery is None:
        return "not-due"  # or held: its subscription is disabled
    subscription = delivery.subscription
    body = json.dumps(
        {
            "id": str(delivery.event_id),
            "type": delivery.event_type,
            "created_at": delivery.created_at.isoformat(),
            "data": delivery.payload,
        },
        separators=(",", ":"),
        sort_keys=True,
    ).encode()
    timestamp = str(int(time.time()))
    headers = {
        "Content-Type": "application/json",
        "X-PMS-Event-Id": str(delivery.event_id),
        "X-PMS-Event-Type": delivery.event_type,
        "X-PMS-Delivery-Attempt": str(delivery.attempts + 1),
        **signed_headers(
            secret=subscription.secret,
            msg_id=str(delivery.event_id),
            timestamp=timestamp,
            body=body,
        ),
    }
    status_code: int | None = None
    error = ""
    try:
        with endpoint_call(tenant_id=delivery.tenant_id, url=subscription.url):
            result = safe_request(
                "POST",
                subscription.url,
                headers=headers,
                data=body,
                timeout=settings.WEBHOOK_TIMEOUT,
                max_bytes=64 * 1024,
            )
        status_code = result.status
    except FetchHTTPError as exc:
        status_code, error = exc.status, str(exc)
    except TransientError as exc:
        status_code, error = getattr(exc, "status", None), str(exc)
    except (FetchRefused, FetchTooLarge) as exc:
        error = str(exc)
    except SoftTimeLimitExceeded:
        # Not expected (the exchange has its own, shorter deadline), but if the task's
        # limit does cut it, it is still an attempt: counted, rescheduled, towards disable.
        error = "stopped by the task's time limit"
    return _record_outcome(delivery.pk, status_code=status_code, error=error)


def _record_outcome(delivery_id: int, *, status_code: int | None, error: str) -> str:
    now = timezone.now()
    schedule = settings.WEBHOOK_RETRY_SCHEDULE
    with transaction.atomic():
        delivery = WebhookDelivery.objects.select_for_update().get(pk=delivery_id)
        subscription = WebhookSubscription.objects.select_for_update().get(
            pk=delivery.subscription_id
        )
        delivery.attempts += 1
        delivery.last_status_code = status_code
        if not error:
            delivery.status = OutboundStatus.SENT
            delivery.delivered_at = now
            delivery.last_error = ""
            delivery.save(
                update_fields=[
                    "attempts",
                    "last_status_code",
                    "status",
                    "delivered_at",
                    "last_error",
                ]
            )
            if subscription.consecutive_failures or subscription.failing_since:
                subscription.consecutive_failures = 0
                subscription.failing_since = None
                subscription.save(update_fields=["consecutive_failures", "failing_since"])
            return "delivered"
        delivery.last_error = error[:2000]
        if delivery.attempts > len(schedule):
            delivery.status = OutboundStatus.FAILED
        else:
            delivery.next_attempt_at = now + timedelta(seconds=schedule[delivery.attempts - 1])
        delivery.save(
            update_fields=[
                "attempts",
                "last_status_code",
                "last_error",
                "status",
                "next_attempt_at",
            ]
        )
        subscription.consecutive_failures += 1
        fields = ["consecutive_failures"]
        if subscription.failing_since is None:
            subscription.failing_since = now
            fields.append("failing_since")
        failing_for = now - subscription.failing_since
        if (
            subscription.is_active
            and subscription.consecutive_failures >= settings.WEBHOOK_DISABLE_AFTER_FAILURES
            and failing_for >= timedelta(seconds=settings.WEBHOOK_DISABLE_AFTER_SECONDS)
        ):
            subscription.is_active = False
            subscription.disabled_at = now
            subscription.disabled_reason = (
                f"{subscription.consecutive_failures} failed attempts in a row over "
                f"{_duration(failing_for)}; last: {error}"
            )[:2000]
            fields += ["is_active", "disabled_at", "disabled_reason"]
            enqueue_on_commit(
                ALERT_WEBHOOK_DISABLED_TASK,
                args=[subscription.pk],
                queue="messaging",
                caught_up_by="nothing (the subscription shows as disabled in the admin)",
            )
        subscription.save(update_fields=fields)
    return "disabled" if "is_active" in fields else "failed"


def _duration(value: timedelta) -> str:
    minutes = int(value.total_seconds() // 60)
    return f"{minutes // 60} h {minutes % 60} min" if minutes >= 60 else f"{minutes} min"


def webhook_deliveries_due(*, grace: timedelta = timedelta(0), limit: int = 500) -> list[int]:
    """Pending deliveries overdue by ``grace`` whose attempt is not already promised.

    A delivery whose fair work item still waits (behind its tenant's share, or its
    receiver's open circuit) is not lost and is left out, so one tenant's thousands of
    held deliveries never crowd another's out of the sweep. Deliveries held by a
    disabled subscription are left out too: enabling re-sends them.
    """
    overdue = _sendable().filter(next_attempt_at__lte=timezone.now() - grace)
    return list(
        without_open_work(overdue, scope="webhooks", key_prefix=_fair_key_prefix)
        .order_by("next_attempt_at")
        .values_list("pk", flat=True)[:limit]
    )


def webhook_deliveries_submit_due(*, grace: timedelta) -> int:
    """The sweep: submit every overdue delivery not already promised. Returns how many."""
    due = webhook_deliveries_due(grace=grace)
    rows = WebhookDelivery.objects.filter(pk__in=due).values_list(
        "pk", "tenant_id", "subscription__url"
    )
    with transaction.atomic():
        webhook_deliveries_submit(list(rows))
    return len(due)


def webhook_claim_disable_alert(*, subscription_id: int) -> WebhookSubscription | None:
    with transaction.atomic():
        subscription = (
            WebhookSubscription.objects.select_for_update()
            .filter(pk=subscription_id, is_active=False, disable_alerted_at__isnull=True)
            .first()
        )
        if subscription is None:
            return None
        subscription.disable_alerted_at = timezone.now()
        subscription.save(update_fields=["disable_alerted_at"])
    return subscription


def webhook_unclaim_disable_alert(*, subscription_id: int) -> None:
    """The disabled-webhook mail failed: let the retry claim it again."""
    WebhookSubscription.objects.filter(pk=subscription_id).update(disable_alerted_at=None)


def webhook_disabled_alert_send(*, subscription: WebhookSubscription) -> int:
    """Mail the managers about a claimed disable (no transaction open)."""
    return manager_mail_send(
        tenant_id=subscription.tenant_id,
        subject="Webhook subscription disabled",
        body=(
            f"Deliveries to {subscription.url} failed {subscription.consecutive_failures} times "
            f"in a row, so the subscription was disabled.\n{subscription.disabled_reason}\n\n"
            "Fix the receiver, then re-enable it in Admin > Channel sync > Webhook subscriptions."
        ),
    )
