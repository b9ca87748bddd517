"""Cleaning: one task per stay on its check-out day, assigned to a cleaner, listed daily.

Handlers call ``cleaning_task_reconcile`` (DB only) on booking events; the beat
sweep calls ``cleaning_runs_claim_due`` and the daily lists are queued as
outbound messages in the same transaction as the claim.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection, transaction
from django.db.models import Count, Q
from django.utils import timezone

from automation.choices import CLEANING_TRANSITIONS, CleaningStatus
from automation.localtime import end_of_day, local_moment, local_now
from automation.models import CleaningRun, CleaningTask
from automation.services.outbound import (
    outbound_message_draft,
    outbound_message_queue,
    outbound_messages_queue,
)
from bookings.choices import OCCUPYING_STATUSES, BookingStatus
from bookings.models import Booking
from pms.errors import DomainError
from pms.models import Property
from pms.pipeline.announce import CLEANING, announce
from tenants.choices import Role
from tenants.models import Membership

# Stays that need cleaning after them.
CLEANING_STATUSES = (BookingStatus.CONFIRMED, BookingStatus.CHECKED_IN, BookingStatus.CHECKED_OUT)
ACTIVE_TASK_STATUSES = (CleaningStatus.SCHEDULED, CleaningStatus.STARTED)


class CleaningError(DomainError):
    """A cleaning task cannot do what was asked (e.g. a done task cannot start)."""


def _window(prop: Property, day: date, *, exclude_booking_id: int | None) -> tuple[Any, Any, bool]:
    """(start, end, same_day_turnover): check-out time until the next check-in or midnight."""
    start = local_moment(day, prop.check_out_time, prop.timezone)
    arrivals = Booking.objects.filter(property=prop, check_in=day, status__in=OCCUPYING_STATUSES)
    if exclude_booking_id is not None:
        arrivals = arrivals.exclude(pk=exclude_booking_id)
    turnover = arrivals.exists()
    end = (
        local_moment(day, prop.check_in_time, prop.timezone)
        if turnover
        else end_of_day(day, prop.timezone)
    )
    return start, max(end, start), turnover


def _pick_cleaner(task: CleaningTask) -> int | None:
    """The available cleaner (no overlapping task) with the fewest tasks that day.

    Locks the tenant's cleaner memberships first, so two deliveries assigning
    at once are serialised and cannot both pick the same free slot.
    """
    cleaners = list(
        Membership.objects.select_for_update()
        .filter(tenant_id=task.tenant_id, role=Role.CLEANER, user__is_active=True)
        .order_by("user_id")
        .values_list("user_id", flat=True)
    )
    if not cleaners:
        return None
    others = CleaningTask.objects.filter(
        tenant_id=task.tenant_id, assignee_id__in=cleaners, status__in=ACTIVE_TASK_STATUSES
    ).exclude(pk=task.pk)
    busy = set(
        others.filter(
            window_start__lt=task.window_end, window_end__gt=task.window_start
        ).values_list("assignee_id", flat=True)
    )
    load = dict(
        others.filter(scheduled_for=task.scheduled_for)
        .values("assignee_id")
        .annotate(n=Count("pk"))
        .values_list("assignee_id", "n")
    )
    free = [user_id for user_id in cleaners if user_id not in busy]
    if not free:
        return None  # nobody free: the manager assigns it in the admin
    return min(free, key=lambda user_id: (load.get(user_id, 0), user_id))


def _notify_assignee(task: CleaningTask, what: str) -> None:
    if task.assignee_id is None:
        return
    user = get_user_model().objects.filter(pk=task.assignee_id).first()
    if user is None or not user.email:
        return
    prop = task.property
    local_start = task.window_start.astimezone(prop.timezone)
    local_end = task.window_end.astimezone(prop.timezone)
    if what == "cancelled":
        subject = f"Cleaning cancelled: {prop.name} on {task.scheduled_for}"
        body = f"The cleaning at {prop.name} on {task.scheduled_for} is cancelled."
    else:
        subject = f"Cleaning at {prop.name} on {task.scheduled_for}"
        body = (
            f"You are assigned the cleaning at {prop.name} on {task.scheduled_for}, "
            f"between {local_start:%H:%M} and {local_end:%H:%M} ({prop.timezone}).\n"
            + ("Same-day turnover: the next guests arrive that day.\n" * task.same_day_turnover)
            + (f"Address: {prop.address}\n" if prop.address else "")
        )
    outbound_message_queue(
        tenant_id=task.tenant_id,
        idempotency_key=f"cleaning:{task.pk}:{what}:{task.assignee_id}:{task.scheduled_for}",
        kind=f"cleaning_{what}",
        recipient=user.email,
        subject=subject,
        body=body,
        booking=task.booking,
    )


def cleaning_task_reconcile(*, booking_id: int) -> CleaningTask | None:
    """Schedule, move or cancel the cleaning after a stay to match the booking. DB only.

    Runs in the handler's transaction; the booking row lock serialises it with
    the booking services, so the task follows the booking's latest state
    whatever order events arrive in. Also refreshes the same-day-turnover flag
    of the stay that checks out on this booking's check-in day.
    """
    booking = (
        Booking.objects.select_for_update(of=("self",))
        .select_related("property")
        .filter(pk=booking_id)
        .first()
    )
    if booking is None:
        return None
    task = CleaningTask.objects.select_for_update().filter(booking=booking).first()
    if booking.status not in CLEANING_STATUSES:
        if task is not None and task.status == CleaningStatus.SCHEDULED:
            task.status = CleaningStatus.CANCELLED
            task.save(update_fields=["status", "updated_at"])
            _notify_assignee(task, "cancelled")
        refresh_turnovers(property_id=booking.property_id, day=booking.check_in)
        return task
    prop, day = booking.property, booking.check_out
    start, end, turnover = _window(prop, day, exclude_booking_id=booking.pk)
    if task is None:
        task = CleaningTask.objects.create(
            tenant_id=booking.tenant_id,
            property=prop,
            booking=booking,
            scheduled_for=day,
            window_start=start,
            window_end=end,
            same_day_turnover=turnover,
        )
        task.assignee_id = _pick_cleaner(task)
        task.save(update_fields=["assignee"])
        _notify_assignee(task, "assigned")
    elif task.status == CleaningStatus.SCHEDULED and (
        task.scheduled_for != day or task.property_id != prop.pk
    ):
        task.property, task.scheduled_for = prop, day
        task.window_start, task.window_end, task.same_day_turnover = start, end, turnover
        task.assignee_id = _pick_cleaner(task)
        task.save(
            update_fields=[
                "property",
                "scheduled_for",
                "window_start",
                "window_end",
                "same_day_turnover",
                "assignee",
                "updated_at",
            ]
        )
        _notify_assignee(task, "assigned")
    elif (task.window_end, task.same_day_turnover) != (end, turnover):
        task.window_start, task.window_end, task.same_day_turnover = start, end, turnover
        task.save(update_fields=["window_start", "window_end", "same_day_turnover", "updated_at"])
    refresh_turnovers(property_id=booking.property_id, day=booking.check_in)
    return task


def refresh_turnovers(*, property_id: int, day: date) -> None:
    """The stay checking out on ``day`` ends before a same-day check-in, or no longer does."""
    for task in (
        CleaningTask.objects.select_for_update()
        .filter(property_id=property_id, scheduled_for=day, status__in=ACTIVE_TASK_STATUSES)
        .select_related("property")
    ):
        _start, end, turnover = _window(task.property, day, exclude_booking_id=task.booking_id)
        if (task.window_end, task.same_day_turnover) != (end, turnover):
            task.window_end, task.same_day_turnover = end, turnover
            task.save(update_fields=["window_end", "same_day_turnover", "updated_at"])


def _announce(task: CleaningTask) -> None:
    announce(
        tenant_id=task.tenant_id,
        topic=CLEANING,
        property_id=task.property_id,
        booking_id=task.booking_id,
    )


@transaction.atomic
def cleaning_task_transition(*, task: CleaningTask, to_status: str, user: Any) -> CleaningTask:
    """A cleaner marks their task started or done (or a manager does)."""
    locked = CleaningTask.objects.select_for_update().get(pk=task.pk)
    if to_status not in CLEANING_TRANSITIONS[locked.status]:
        raise CleaningError(
            "invalid_transition",
            f"A {locked.get_status_display().lower()} cleaning cannot become "
            f"{CleaningStatus(to_status).label.lower()}.",
        )
    locked.status = to_status
    fields = ["status", "updated_at"]
    if to_status == CleaningStatus.STARTED:
        locked.started_at = timezone.now()
        fields.append("started_at")
    if to_status == CleaningStatus.DONE:
        locked.done_at = timezone.now()
        fields.append("done_at")
    locked.save(update_fields=fields)
    _announce(locked)
    return locked


MAX_NOTES_LENGTH = 5000


@transaction.atomic
def cleaning_task_note(*, task: CleaningTask, notes: str, user: Any) -> CleaningTask:
    """The cleaner's notes on their task (replacing the earlier ones)."""
    notes = notes.strip()
    if len(notes) > MAX_NOTES_LENGTH:
        raise CleaningError("too_long", f"Notes are at most {MAX_NOTES_LENGTH} characters.")
    locked = CleaningTask.objects.select_for_update().get(pk=task.pk)
    locked.notes = notes
    locked.save(update_fields=["notes", "updated_at"])
    _announce(locked)
    return locked


@transaction.atomic
def cleaning_task_assign(*, task: CleaningTask, assignee: Any) -> CleaningTask:
    """A manager gives the task to another cleaner of its tenant (or to nobody: None)."""
    locked = CleaningTask.objects.select_for_update().get(pk=task.pk)
    if (
        assignee is not None
        and not Membership.objects.filter(
            user=assignee, tenant_id=locked.tenant_id, role=Role.CLEANER
        ).exists()
    ):
        raise CleaningError("invalid", "The assignee is not a cleaner of this tenant.")
    locked.assignee = assignee
    locked.save(update_fields=["assignee", "updated_at"])
    _announce(locked)
    return locked


def cleaning_runs_claim_due(*, now: datetime | None = None) -> list[tuple[int, date]]:
    """Claim today's cleaning run of every property whose local run hour has passed.

    One claim row per (property, local date), inserted with ON CONFLICT DO
    NOTHING RETURNING: two beats or an overlapping sweep never claim the same
    run. The lists are queued in the same transaction, so a claimed run always
    has its messages. Statements: a fixed number, whatever the number of properties,
    tasks and cleaners (the turnover flags in at most two UPDATEs, every list in one
    INSERT and their sends in one fair submission, pms.pipeline.fairness).
    """
    now = now or timezone.now()
    hour = settings.CLEANING_RUN_LOCAL_HOUR
    candidates: list[tuple[int, int, date]] = []
    for pk, tenant_id, zone in Property.objects.filter(is_active=True).values_list(
        "pk", "tenant_id", "timezone"
    ):
        local = local_now(zone, now)
        if local.hour >= hour:
            candidates.append((pk, tenant_id, local.date()))
    if not candidates:
        return []
    with transaction.atomic():
        with connection.cursor() as cursor:
            values = ", ".join(["(%s, %s, %s, now())"] * len(candidates))
            cursor.execute(
                "INSERT INTO automation_cleaningrun (property_id, tenant_id, date, created_at) "
                f"VALUES {values} ON CONFLICT (property_id, date) DO NOTHING "
                "RETURNING property_id, date",
                [value for row in candidates for value in row],
            )
            claimed = [(int(pk), day) for pk, day in cursor.fetchall()]
        if claimed:
            _send_daily_lists(claimed)
    return claimed


def _send_daily_lists(runs: list[tuple[int, date]]) -> None:
    """Each cleaner's list per property and day; same-day turnovers flagged."""
    wanted = Q()
    for property_id, day in runs:
        wanted |= Q(property_id=property_id, scheduled_for=day)
    tasks = list(
        CleaningTask.objects.filter(wanted, status__in=ACTIVE_TASK_STATUSES)
        .select_related("property", "booking", "assignee")
        .order_by("property_id", "window_start")
    )
    # Flag turnovers from the bookings as they are now (one query for all runs).
    arrivals = set(
        Booking.objects.filter(
            Q(*[Q(property_id=p, check_in=d) for p, d in runs], _connector=Q.OR),
            status__in=OCCUPYING_STATUSES,
        ).values_list("property_id", "check_in")
    )
    lists: dict[tuple[int, int, date], list[CleaningTask]] = defaultdict(list)
    changed: dict[bool, list[int]] = {True: [], False: []}
    for task in tasks:
        turnover = (task.property_id, task.scheduled_for) in arrivals
        if turnover != task.same_day_turnover:
            task.same_day_turnover = turnover
            changed[turnover].append(task.pk)
        assignee = task.assignee
        if assignee is not None and assignee.email:
            lists[(assignee.pk, task.property_id, task.scheduled_for)].append(task)
    for turnover, pks in changed.items():
        if pks:
            CleaningTask.objects.filter(pk__in=pks).update(same_day_turnover=turnover)
    drafts = []
    for (assignee_id, property_id, day), items in lists.items():
        prop, user = items[0].property, items[0].assignee
        assert user is not None  # grouped by assignee: every task here has one
        lines = []
        for task in items:
            start = task.window_start.astimezone(prop.timezone)
            end = task.window_end.astimezone(prop.timezone)
            flag = "  SAME-DAY TURNOVER" if task.same_day_turnover else ""
            lines.append(f"- {start:%H:%M}-{end:%H:%M} after {task.booking.reference}{flag}")
        turnovers = sum(task.same_day_turnover for task in items)
        drafts.append(
            outbound_message_draft(
                tenant_id=prop.tenant_id,
                idempotency_key=f"cleaning-list:{property_id}:{day}:{assignee_id}",
                kind="cleaning_daily_list",
                recipient=user.email,
                subject=f"Cleaning today at {prop.name}: {len(items)} task(s)"
                + (f", {turnovers} same-day turnover(s)" if turnovers else ""),
                body=f"Your cleaning list for {prop.name} on {day}:\n" + "\n".join(lines) + "\n",
            )
        )
    outbound_messages_queue(drafts)


def cleaning_runs_purge(*, keep_days: int = 14) -> int:
    cutoff = timezone.now().date() - timedelta(days=keep_days)
    deleted, _ = CleaningRun.objects.filter(date__lt=cutoff).delete()
    return deleted
