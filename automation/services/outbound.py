"""Outbound messages: record the intent, then send once, after commit.

Time-critical kinds (``automation.choices.TIME_CRITICAL_KINDS``: the booking
confirmation, the guest's link, payment instructions, conversation replies) are sent
at once on ``messaging``. Everything else is batch work, admitted per tenant on
``messaging_batch`` (pms.pipeline.fairness, scope ``messages``): the tenants' batches
interleave, and none of them queues ahead of a time-critical message.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import NotRequired, TypedDict, Unpack

from django.conf import settings
from django.core.mail import EmailMessage
from django.db import transaction
from django.db.models import Case, IntegerField, Value, When
from django.utils import timezone

from automation.choices import TIME_CRITICAL_KINDS, MessageChannel, OutboundStatus
from automation.models import MessageTemplate, OutboundMessage
from automation.sms import get_sms_backend
from bookings.models import Booking
from bookings.services import guest_token_issue
from pms.db_inserts import insert_new_only
from pms.pipeline.enqueue import enqueue, enqueue_on_commit
from pms.pipeline.errors import PermanentError
from pms.pipeline.fairness import FairWork, fair_submit_many
from pms.pipeline.pending import claim, sweep

logger = logging.getLogger(__name__)

# Sends one recorded message (registered in automation.tasks).
SEND_TASK = "automation.tasks.send_outbound_message"


def resend_deadline(now: datetime | None = None) -> datetime:
    """When the sweep re-enqueues a pending message whose send task was lost."""
    return (now or timezone.now()) + timedelta(seconds=settings.AUTOMATION_MESSAGE_RESEND_AFTER)


class MessageFields(TypedDict):
    """What a message to send is made of (``outbound_message_draft``'s arguments)."""

    tenant_id: int
    idempotency_key: str
    kind: str
    recipient: str
    subject: str
    body: str
    booking: NotRequired[Booking | None]
    channel: NotRequired[str]  # MessageChannel; email by default
    send_after: NotRequired[datetime | None]  # later than now: scheduled for then
    template: NotRequired[MessageTemplate | None]


def outbound_message_draft(**fields: Unpack[MessageFields]) -> OutboundMessage:
    """A message to send, not stored yet (``outbound_messages_queue`` stores drafts)."""
    now = timezone.now()
    send_after = fields.get("send_after")
    scheduled = send_after is not None and send_after > now
    return OutboundMessage(
        idempotency_key=fields["idempotency_key"],
        tenant_id=fields["tenant_id"],
        kind=fields["kind"],
        channel=fields.get("channel", MessageChannel.EMAIL),
        booking=fields.get("booking"),
        template=fields.get("template"),
        recipient=fields["recipient"],
        subject=fields["subject"][:200],
        body=fields["body"],
        status=OutboundStatus.SCHEDULED if scheduled else OutboundStatus.PENDING,
        send_after=send_after if scheduled else resend_deadline(now),
    )


def outbound_messages_queue(drafts: Sequence[OutboundMessage]) -> list[OutboundMessage]:
    """Store the drafts whose key is new, in one statement; returns those stored.

    Due now: ``pending``, a send task is enqueued after commit (and the sweep
    re-enqueues it if that publish is lost); batch kinds go through the fair
    dispatcher, all in one submission. Due later: ``scheduled``; the reminder sweep
    claims it at ``send_after``. Handlers queue messages inside their delivery's
    transaction, where every statement counts: this is one where ``get_or_create``
    took four, and a sweep's many messages are one too.
    """
    created = insert_new_only(drafts, unique_field="idempotency_key")
    batch = []
    for message in created:
        if message.status != OutboundStatus.PENDING:
            continue
        if message.kind in TIME_CRITICAL_KINDS:
            enqueue_send_after_commit(message.pk, message.tenant_id)
        else:
            batch.append((message.pk, message.tenant_id))
    if batch:
        submit_batch_sends(batch, new=True)
    return created


def outbound_message_queue(**fields: Unpack[MessageFields]) -> tuple[OutboundMessage, bool]:
    """Record one message to send (once per key): it and whether it was created now.

    See ``outbound_messages_queue``.
    """
    message = outbound_message_draft(**fields)
    if outbound_messages_queue([message]):
        return message, True
    return OutboundMessage.objects.get(idempotency_key=message.idempotency_key), False


def enqueue_send_after_commit(message_id: int, tenant_id: int) -> None:
    # Lost, it is sent by the sweep: the row is pending with a resend deadline.
    enqueue_on_commit(
        SEND_TASK,
        args=[message_id],
        headers={"tenant_id": tenant_id},
        caught_up_by="the due-message sweep",
    )


def submit_batch_sends(messages: Sequence[tuple[int, int]], *, new: bool = False) -> None:
    """Sends of batch messages (id, tenant id), admitted per tenant on ``messaging_batch``.

    ``new``: the messages were created in this transaction (see ``fair_submit_many``).
    """
    fair_submit_many(
        [
            FairWork(
                tenant_id=tenant_id,
                scope="messages",
                task_name=SEND_TASK,
                args=[message_id],
                queue="messaging_batch",
                dedupe_key=f"message:{message_id}",
            )
            for message_id, tenant_id in messages
        ],
        new=new,
    )


def outbound_messages_send_due() -> int:
    """The sweep: claim due messages batch by batch and send each. Returns how many.

    Time-critical messages are claimed first and sent at once; batch messages are
    submitted as fair work, so tenants interleave (pms.pipeline.fairness).
    """

    def send(claimed: Sequence[tuple[int, int, str]]) -> None:
        batch = []
        for message_id, tenant_id, kind in claimed:
            if kind not in TIME_CRITICAL_KINDS:
                batch.append((message_id, tenant_id))
                continue
            enqueue(
                SEND_TASK,
                args=[message_id],
                headers={"tenant_id": tenant_id},
                caught_up_by="the next sweep (the row is pending with a resend deadline)",
            )
        if batch:
            # A broker or database error here leaves the rows pending with a resend
            # deadline: the next sweeps claim them again.
            submit_batch_sends(batch)

    return sweep(outbound_messages_claim_due, send, batch_size=int(settings.AUTOMATION_SWEEP_BATCH))


# Time-critical messages first, whatever their due time.
_URGENCY = Case(
    When(kind__in=sorted(TIME_CRITICAL_KINDS), then=Value(0)),
    default=Value(1),
    output_field=IntegerField(),
)


def outbound_messages_claim_due(
    *, now: datetime | None = None, batch_size: int | None = None
) -> list[tuple[int, int, str]]:
    """Claim due messages for sending: (id, tenant_id, kind). The reminder sweep's core.

    Due = scheduled with ``send_after`` passed, or pending past its resend
    deadline (its send task was lost). Rows are locked with ``SKIP LOCKED`` and
    moved to pending with a fresh resend deadline in one short transaction, so
    two sweeps (two beats, an overlapping run) never claim the same row, and a
    claimed row is not due again until that deadline. Two statements whatever
    the number of bookings or messages (the (status, send_after) index). The
    caller enqueues after this returns: no broker I/O while rows are locked.
    """
    now = now or timezone.now()

    def hold(message: OutboundMessage, now: datetime) -> None:
        message.status = OutboundStatus.PENDING
        message.send_after = resend_deadline(now)

    claimed = claim(
        OutboundMessage.objects.filter(
            status__in=[OutboundStatus.SCHEDULED, OutboundStatus.PENDING]
        ).only("pk", "tenant_id", "kind", "status", "send_after"),
        due_field="send_after",
        order_by=[_URGENCY],
        hold=hold,
        fields=["status", "send_after"],
        batch_size=batch_size or settings.AUTOMATION_SWEEP_BATCH,
        now=now,
    )
    return [(message.pk, message.tenant_id, message.kind) for message in claimed]


def _claim(message_id: int) -> OutboundMessage | None:
    """Move pending -> sending in its own transaction. None: nothing to send."""
    with transaction.atomic():
        message = OutboundMessage.objects.select_for_update().filter(pk=message_id).first()
        if message is None or message.status in (
            OutboundStatus.SENT,
            OutboundStatus.CANCELLED,
            OutboundStatus.SCHEDULED,  # rescheduled later since this task was enqueued
        ):
            return None
        if message.status == OutboundStatus.SENDING:
            # A previous run died between claiming and recording the outcome: it
            # may or may not have sent. Never send twice: hand it to a person.
            raise PermanentError(
                f"outcome of message {message.pk} unknown (worker died while sending); "
                "check with the recipient before retrying"
            )
        message.status = OutboundStatus.SENDING
        message.attempts += 1
        message.sending_started_at = timezone.now()
        message.save(update_fields=["status", "attempts", "sending_started_at"])
        return message


def _render_body(message: OutboundMessage) -> str:
    if "{guest_link}" in message.body and message.booking is not None:
        raw = guest_token_issue(booking=message.booking)
        return message.body.replace(
            "{guest_link}",
            f"{settings.GUEST_LINK_BASE_URL}{message.booking.reference}/?token={raw}",
        )
    return message.body


def outbound_message_send(*, message_id: int, final_attempt: bool = False) -> str:
    """Send one message at most once.

    A failure puts it back to pending and re-raises (the task retries), or marks
    it failed when it is permanent or this was the last attempt.
    """
    message = _claim(message_id)
    if message is None:
        return "nothing to send"
    try:
        if message.channel == MessageChannel.EMAIL:
            EmailMessage(
                subject=message.subject,
                body=_render_body(message),
                from_email=settings.DEFAULT_FROM_EMAIL,
                to=[message.recipient],
                headers={"Message-ID": f"<outbound-{message.pk}@pms.localhost>"},
            ).send()
        elif message.channel == MessageChannel.SMS:
            get_sms_backend().send(
                to=message.recipient,
                body=_render_body(message),
                idempotency_key=message.idempotency_key,
            )
        else:
            raise PermanentError(f"no sender for channel {message.channel!r}")
    except Exception as exc:
        # Nothing left our side for certain (connection refused, SMTP 4xx/5xx,
        # gateway 5xx): back to pending so the retry sends it, or failed when it
        # is permanent or the last attempt.
        final = final_attempt or isinstance(exc, PermanentError)
        status = OutboundStatus.FAILED if final else OutboundStatus.PENDING
        OutboundMessage.objects.filter(pk=message.pk).update(
            status=status, last_error=str(exc)[:2000], send_after=resend_deadline()
        )
        raise
    OutboundMessage.objects.filter(pk=message.pk).update(
        status=OutboundStatus.SENT, sent_at=timezone.now(), last_error=""
    )
    return "sent"


def guest_link_email(*, booking: Booking) -> bool:
    """Queue an email with a fresh private link (staff asked for it). False: no email address."""
    if not booking.guest.email:
        return False
    outbound_message_queue(
        tenant_id=booking.tenant_id,
        idempotency_key=f"guest_link:{booking.pk}:{uuid.uuid4()}",
        kind="guest_access",
        booking=booking,
        recipient=booking.guest.email,
        subject=f"Your booking {booking.reference} at {booking.property.name}",
        body="Here is your private link to your booking (keep it private):\n{guest_link}\n",
    )
    return True
