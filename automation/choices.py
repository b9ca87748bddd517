from __future__ import annotations

from django.db import models


class MessageChannel(models.TextChoices):
    EMAIL = "email", "Email"
    SMS = "sms", "SMS"


class OutboundStatus(models.TextChoices):
    # scheduled: waits for its ``send_after`` (the reminder sweep claims it then);
    # pending: due, a send task is (or will be) enqueued.
    SCHEDULED = "scheduled", "Scheduled"
    PENDING = "pending", "Pending"
    SENDING = "sending", "Sending"
    SENT = "sent", "Sent"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


class TemplateTrigger(models.TextChoices):
    BOOKING_CONFIRMED = "booking_confirmed", "Booking confirmed"
    BEFORE_CHECK_IN = "before_check_in", "N days before check-in, at a local time"
    CHECK_IN_DAY = "check_in_day", "Check-in day, at a local time"
    AFTER_CHECK_OUT = "after_check_out", "N days after check-out, at a local time"
    BOOKING_CANCELLED = "booking_cancelled", "Booking cancelled"


# Message kinds a person is waiting for: sent at once on ``messaging``. Every other kind
# (reminders, cleaning lists, notices to staff) is batch work: admitted per tenant
# (pms.pipeline.fairness, scope ``messages``) on ``messaging_batch``, so one tenant's
# thousands of reminders due at 09:00 never queue ahead of another's confirmation.
TIME_CRITICAL_KINDS = frozenset(
    {
        "guest_access",  # the booking confirmation with the guest's private link
        "guest_request_received",  # a request to book, held while the host answers
        "guest_request_declined",  # the host declined it, or it expired unanswered
        "manager_booking_request",  # a request the host must answer before it expires
        "payment_instructions",
        "stay_change",  # the guest's stay changed or was cancelled
        "thread_message",  # a conversation between guest and host
        "template:booking_confirmed",
        "template:booking_cancelled",
    }
)


# Triggers sent at a property-local time (the rest go out as soon as the event is handled).
TIMED_TRIGGERS = (
    TemplateTrigger.BEFORE_CHECK_IN,
    TemplateTrigger.CHECK_IN_DAY,
    TemplateTrigger.AFTER_CHECK_OUT,
)


class CleaningStatus(models.TextChoices):
    SCHEDULED = "scheduled", "Scheduled"
    STARTED = "started", "Started"
    DONE = "done", "Done"
    CANCELLED = "cancelled", "Cancelled"


CLEANING_TRANSITIONS: dict[str, tuple[str, ...]] = {
    CleaningStatus.SCHEDULED: (
        CleaningStatus.STARTED,
        CleaningStatus.DONE,
        CleaningStatus.CANCELLED,
    ),
    CleaningStatus.STARTED: (CleaningStatus.DONE,),
    CleaningStatus.DONE: (),
    CleaningStatus.CANCELLED: (CleaningStatus.SCHEDULED,),
}


class MaintenancePriority(models.TextChoices):
    LOW = "low", "Low"
    NORMAL = "normal", "Normal"
    HIGH = "high", "High"
    URGENT = "urgent", "Urgent"


class MaintenanceStatus(models.TextChoices):
    OPEN = "open", "Open"
    ASSIGNED = "assigned", "Assigned"
    IN_PROGRESS = "in_progress", "In progress"
    DONE = "done", "Done"
    CANCELLED = "cancelled", "Cancelled"


# The whole workflow: from -> allowed targets. Assigning is its own service
# (it sets the assignee); the rest go through maintenance_request_transition.
MAINTENANCE_TRANSITIONS: dict[str, tuple[str, ...]] = {
    MaintenanceStatus.OPEN: (
        MaintenanceStatus.ASSIGNED,
        MaintenanceStatus.IN_PROGRESS,
        MaintenanceStatus.DONE,
        MaintenanceStatus.CANCELLED,
    ),
    MaintenanceStatus.ASSIGNED: (
        MaintenanceStatus.ASSIGNED,
        MaintenanceStatus.IN_PROGRESS,
        MaintenanceStatus.DONE,
        MaintenanceStatus.CANCELLED,
    ),
    MaintenanceStatus.IN_PROGRESS: (MaintenanceStatus.DONE, MaintenanceStatus.CANCELLED),
    MaintenanceStatus.DONE: (),
    MaintenanceStatus.CANCELLED: (),
}


class ReportedBy(models.TextChoices):
    GUEST = "guest", "Guest"
    STAFF = "staff", "Staff"
    SCHEDULE = "schedule", "Recurring plan"
