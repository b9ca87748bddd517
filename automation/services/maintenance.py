"""Maintenance requests: reported by guests (API), staff (admin) or a recurring plan.

Every change is one service that writes the row and an event in one
transaction; notifications (urgent -> managers at once) are event handlers.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

from django.core.files.base import File
from django.db import IntegrityError, transaction
from django.utils import timezone

from automation.choices import (
    MAINTENANCE_TRANSITIONS,
    MaintenancePriority,
    MaintenanceStatus,
    ReportedBy,
)
from automation.events import (
    MAINTENANCE_ASSIGNED,
    MAINTENANCE_REPORTED,
    MAINTENANCE_REQUEST_AGGREGATE,
    MAINTENANCE_STATUS_CHANGED,
    MAINTENANCE_UPDATED,
    MaintenanceSnapshot,
    maintenance_assigned_payload,
    maintenance_reported_payload,
    maintenance_status_changed_payload,
    maintenance_updated_payload,
)
from automation.localtime import local_now
from automation.models import MaintenancePlan, MaintenanceRequest
from bookings.models import Booking
from pms.errors import DomainError
from pms.models import Property
from pms.pipeline.fairness import FairWork, fair_submit_many
from pms.pipeline.publishing import emit_event
from tenants.models import Membership


class MaintenanceError(DomainError):
    """A maintenance request rule was broken (bad input, a transition not allowed)."""


def _emit(
    request: MaintenanceRequest, event_type: str, payload: MaintenanceSnapshot, actor: str
) -> None:
    emit_event(
        tenant_id=request.tenant_id,
        aggregate_type=MAINTENANCE_REQUEST_AGGREGATE,
        aggregate_id=request.pk,
        event_type=event_type,
        payload=dict(payload),
        actor=actor,
    )


def maintenance_request_create(
    *,
    property: Property,
    title: str,
    reported_by: str,
    description: str = "",
    priority: str = MaintenancePriority.NORMAL,
    booking: Booking | None = None,
    reporter: Any = None,
    photo: File[Any] | None = None,
    plan: MaintenancePlan | None = None,
    due_on: date | None = None,
    actor: str = "",
) -> MaintenanceRequest:
    if priority not in MaintenancePriority.values:
        raise MaintenanceError("invalid", f"Unknown priority {priority!r}.")
    if reported_by not in ReportedBy.values:
        raise MaintenanceError("invalid", f"Unknown reporter kind {reported_by!r}.")
    if booking is not None and booking.property_id != property.pk:
        raise MaintenanceError("invalid", "The booking is not at this property.")
    title = title.strip()
    if not title:
        raise MaintenanceError("invalid", "A title is required.")
    with transaction.atomic():
        request = MaintenanceRequest(
            tenant_id=property.tenant_id,
            property=property,
            booking=booking,
            plan=plan,
            due_on=due_on,
            reported_by=reported_by,
            reporter=reporter,
            title=title[:200],
            description=description.strip(),
            priority=priority,
        )
        if photo is not None:
            request.photo = photo
        request.save()
        _emit(request, MAINTENANCE_REPORTED, maintenance_reported_payload(request), actor)
    return request


def maintenance_request_assign(
    *, request: MaintenanceRequest, assignee: Any, actor: str = ""
) -> MaintenanceRequest:
    with transaction.atomic():
        locked = MaintenanceRequest.objects.select_for_update().get(pk=request.pk)
        if MaintenanceStatus.ASSIGNED not in MAINTENANCE_TRANSITIONS[locked.status]:
            raise MaintenanceError(
                "invalid_transition",
                f"A {locked.get_status_display().lower()} request cannot be assigned.",
            )
        if not Membership.objects.filter(user=assignee, tenant_id=locked.tenant_id).exists():
            raise MaintenanceError("invalid", "The assignee is not a member of this tenant.")
        locked.assignee = assignee
        locked.status = MaintenanceStatus.ASSIGNED
        locked.save(update_fields=["assignee", "status", "updated_at"])
        _emit(locked, MAINTENANCE_ASSIGNED, maintenance_assigned_payload(locked), actor)
    return locked


def maintenance_request_update(
    *,
    request: MaintenanceRequest,
    title: str,
    description: str,
    priority: str,
    photo: File[Any] | None,
    actor: str = "",
) -> MaintenanceRequest:
    """Staff correct what was reported (``photo`` None: none): a ``maintenance.updated`` event
    naming the fields that changed. Changing nothing emits nothing."""
    if priority not in MaintenancePriority.values:
        raise MaintenanceError("invalid", f"Unknown priority {priority!r}.")
    title = title.strip()
    if not title:
        raise MaintenanceError("invalid", "A title is required.")
    with transaction.atomic():
        locked = MaintenanceRequest.objects.select_for_update().get(pk=request.pk)
        new = {"title": title[:200], "description": description.strip(), "priority": priority}
        changed = [name for name, value in new.items() if getattr(locked, name) != value]
        for name in changed:
            setattr(locked, name, new[name])
        if (locked.photo.name or "") != (photo.name if photo else ""):
            locked.photo = photo or ""  # a new upload is stored by the save
            changed.append("photo")
        if not changed:
            return locked
        locked.save(update_fields=[*changed, "updated_at"])
        _emit(
            locked, MAINTENANCE_UPDATED, maintenance_updated_payload(locked, changed=changed), actor
        )
    return locked


def maintenance_request_transition(
    *, request: MaintenanceRequest, to_status: str, actor: str = ""
) -> MaintenanceRequest:
    if to_status == MaintenanceStatus.ASSIGNED:
        raise MaintenanceError("invalid_transition", "Assign through maintenance_request_assign.")
    with transaction.atomic():
        locked = MaintenanceRequest.objects.select_for_update().get(pk=request.pk)
        if to_status not in MAINTENANCE_TRANSITIONS[locked.status]:
            raise MaintenanceError(
                "invalid_transition",
                f"A {locked.get_status_display().lower()} request cannot become "
                f"{MaintenanceStatus(to_status).label.lower()}.",
            )
        previous = locked.status
        locked.status = to_status
        fields = ["status", "updated_at"]
        if to_status in (MaintenanceStatus.DONE, MaintenanceStatus.CANCELLED):
            locked.resolved_at = timezone.now()
            fields.append("resolved_at")
        locked.save(update_fields=fields)
        payload = maintenance_status_changed_payload(locked, previous_status=previous)
        _emit(locked, MAINTENANCE_STATUS_CHANGED, payload, actor)
    return locked


# Opens one tenant's due plans, a batch at a time (registered in automation.tasks).
MAINTENANCE_OPEN_TASK = "automation.tasks.open_tenant_maintenance"
MAINTENANCE_BATCH = 50


def _due_plans(now: datetime) -> Any:
    # A plan due "today" somewhere on earth is due by UTC tomorrow at the latest.
    horizon = now.date() + timedelta(days=1)
    return MaintenancePlan.objects.filter(is_active=True, next_due__lte=horizon)


def maintenance_plans_submit_due(*, now: datetime | None = None) -> int:
    """Beat, hourly: one fair work item per tenant with plans due. Returns how many tenants.

    Each item opens a batch of that tenant's plans and submits the next one, so tenants
    take turns (pms.pipeline.fairness, scope ``maintenance``): a tenant with 10,000
    plans due does not hold the automation workers until all of them are open.
    """
    tenants = sorted(set(_due_plans(now or timezone.now()).values_list("tenant_id", flat=True)))
    fair_submit_many([_tenant_work(tenant_id) for tenant_id in tenants])
    return len(tenants)


def _tenant_work(tenant_id: int) -> FairWork:
    return FairWork(
        tenant_id=tenant_id,
        scope="maintenance",
        task_name=MAINTENANCE_OPEN_TASK,
        args=[tenant_id],
        queue="automation",
        dedupe_key=f"maintenance:{tenant_id}",
    )


def maintenance_plans_open_tenant(*, tenant_id: int, now: datetime | None = None) -> int:
    """One tenant's item: open a batch of its due plans; more due: submit the next batch."""
    opened, more = maintenance_plans_open_batch(
        now=now, tenant_id=tenant_id, batch_size=MAINTENANCE_BATCH
    )
    if more:
        fair_submit_many([_tenant_work(tenant_id)])
    return opened


def maintenance_plans_open_due(*, now: datetime | None = None, batch_size: int = 200) -> int:
    """Open the requests of every tenant's due plans at once (tests, the shell)."""
    total = 0
    while True:
        opened, more = maintenance_plans_open_batch(now=now, batch_size=batch_size)
        total += opened
        if not more:
            return total


def maintenance_plans_open_batch(
    *, now: datetime | None = None, batch_size: int = 200, tenant_id: int | None = None
) -> tuple[int, bool]:
    """Open a request for up to ``batch_size`` recurring plans due today (property-local).

    Returns (how many opened, whether a full batch was taken: there may be more).
    Plans are claimed with SKIP LOCKED and advanced in the same transaction as
    the request they open; a unique (plan, due_on) makes a repeat a no-op.
    """
    now = now or timezone.now()
    opened = 0
    due = _due_plans(now)
    if tenant_id is not None:
        due = due.filter(tenant_id=tenant_id)
    with transaction.atomic():
        plans = list(
            due.select_for_update(skip_locked=True, of=("self",))
            .select_related("property")
            .order_by("next_due", "pk")[:batch_size]
        )
        for plan in plans:
            today = local_now(plan.property.timezone, now).date()
            if plan.next_due > today:
                continue
            due_on = plan.next_due
            try:
                with transaction.atomic():
                    maintenance_request_create(
                        property=plan.property,
                        title=plan.title,
                        description=plan.description,
                        priority=plan.priority,
                        reported_by=ReportedBy.SCHEDULE,
                        plan=plan,
                        due_on=due_on,
                        actor="system:maintenance-plans",
                    )
                opened += 1
            except IntegrityError:
                pass  # this due date was opened already
            # Skip the dates missed while beat was down: one request, then the next period.
            while plan.next_due <= today:
                plan.next_due += timedelta(days=plan.every_days)
            plan.save(update_fields=["next_due"])
    # Plans not yet due locally stay in the horizon: "more" only when some were opened.
    return opened, len(plans) == batch_size and opened > 0
