"""Requests to book that nobody answered in time: declined automatically.

The host answers a request with ``booking_confirm`` (accept) or ``booking_decline``
(lifecycle). A beat sweep submits the decline of every request past its expiry as fair
work, one item per booking (tenants take turns: one tenant's pile of stale requests does
not hold the bookings workers); each item's task calls ``booking_request_expire``, which
declines through the service, so each emits its own ``booking.cancelled`` event.
"""

from __future__ import annotations

import logging
from datetime import datetime

from django.db import transaction
from django.utils import timezone

from bookings.choices import BookingStatus, DeclineReason
from bookings.errors import BookingError
from bookings.models import Booking
from bookings.selectors import booking_requests_expired
from bookings.services.lifecycle import booking_decline
from pms.pipeline.fairness import FairWork, fair_submit_many, without_open_work

logger = logging.getLogger(__name__)

# Declines one expired request (registered in bookings.tasks).
EXPIRE_REQUEST_TASK = "bookings.tasks.expire_booking_request"
EXPIRY_SCOPE = "requests"
EXPIRY_KEY_PREFIX = "request-expiry:"
EXPIRY_ACTOR = "system:request-expiry"
# Requests submitted per sweep at most (oldest first); the next sweep takes the rest.
SWEEP_LIMIT = 500


def booking_requests_submit_expired(
    *, now: datetime | None = None, limit: int = SWEEP_LIMIT
) -> int:
    """Beat: submit the decline of every expired request not already submitted. Returns how many.

    A fixed number of statements whatever the number due: one query finds them (leaving
    out those whose item is still open), one de-duplication query and one insert submit
    them. Idempotent: a redelivered or concurrent sweep at worst submits a booking twice,
    and its task then finds the request already answered (the decline's transition check
    runs under the booking's row lock) and does nothing.
    """
    due = list(
        without_open_work(
            booking_requests_expired(now=now), scope=EXPIRY_SCOPE, key_prefix=EXPIRY_KEY_PREFIX
        )
        .order_by("created_at", "pk")
        .values_list("pk", "tenant_id")[:limit]
    )
    with transaction.atomic():
        fair_submit_many(
            [
                FairWork(
                    tenant_id=tenant_id,
                    scope=EXPIRY_SCOPE,
                    task_name=EXPIRE_REQUEST_TASK,
                    args=[booking_id],
                    queue="bookings",
                    dedupe_key=f"{EXPIRY_KEY_PREFIX}{booking_id}",
                    # A stable id: a booking whose decline keeps failing has one FailedTask.
                    task_id=f"bookings-request-expiry-{booking_id}",
                )
                for booking_id, tenant_id in due
            ]
        )
    return len(due)


def booking_request_expire(*, booking_id: int, now: datetime | None = None) -> bool:
    """Decline one request if it is still unanswered and past its expiry. Returns whether it did.

    Safe to run twice or concurrently with the host's answer: a request accepted, declined
    or changed meanwhile is left alone.
    """
    booking = Booking.objects.select_related("property").filter(pk=booking_id).first()
    if booking is None or booking.status != BookingStatus.REQUESTED:
        return False
    if booking.created_at + booking.property.request_expiry > (now or timezone.now()):
        return False  # the property's expiry was lengthened since the sweep saw it
    try:
        booking_decline(booking=booking, reason=DeclineReason.EXPIRED, actor=EXPIRY_ACTOR)
    except BookingError as refused:
        if refused.code not in ("invalid_transition", "not_a_request"):
            raise
        return False  # answered by the host between the read above and the lock
    logger.info(
        "request to book expired reference=%s tenant=%s", booking.reference, booking.tenant_id
    )
    return True
