"""Automation's panels on the dashboard: turnovers and their cleaning, and what nobody has taken."""

from __future__ import annotations

from django.db.models import Q, QuerySet
from django.http import HttpRequest
from django.urls import reverse

from automation.choices import CleaningStatus, MaintenancePriority, MaintenanceStatus
from automation.models import CleaningTask, MaintenanceRequest
from pms.dashboard import (
    ROWS_PER_PANEL,
    DashboardDay,
    DashboardPanel,
    DashboardRow,
    changelist_url,
    dashboard_panel,
)
from tenants.choices import Role
from tenants.scoping import scope_queryset
from tenants.selectors import tenant_ids_for_user

OPEN_CLEANING = (CleaningStatus.SCHEDULED, CleaningStatus.STARTED)
OPEN_MAINTENANCE = (
    MaintenanceStatus.OPEN,
    MaintenanceStatus.ASSIGNED,
    MaintenanceStatus.IN_PROGRESS,
)


def _cleaning(request: HttpRequest) -> QuerySet[CleaningTask] | None:
    """Cleaning tasks the user may see: a cleaner only their own (as in the admin list)."""
    if not request.user.has_perm("automation.view_cleaningtask"):
        return None
    tasks = scope_queryset(
        CleaningTask.objects.select_related("property", "assignee", "booking"),
        request.user,
        perms=["automation.view_cleaningtask"],
    )
    if not request.user.is_superuser and (
        cleaner_tenants := tenant_ids_for_user(request.user, roles=(Role.CLEANER,))
    ):
        tasks = tasks.filter(~Q(tenant_id__in=cleaner_tenants) | Q(assignee_id=request.user.pk))
    return tasks


def _task_row(task: CleaningTask, dash: DashboardDay) -> DashboardRow:
    who = task.assignee.get_username() if task.assignee else "nobody assigned"
    when = "today" if task.scheduled_for == dash.today else f"{task.scheduled_for}"
    return DashboardRow(
        label=f"{task.property.name}" + (" · same-day turnover" if task.same_day_turnover else ""),
        detail=f"{when} {task.window_start:%H:%M} to {task.window_end:%H:%M} · "
        f"{task.get_status_display()} · {who}",
        url=reverse("admin:automation_cleaningtask_change", args=[task.pk]),
        tone="bad" if task.assignee is None else ("warn" if task.same_day_turnover else ""),
    )


@dashboard_panel("turnovers", order=30)
def turnovers(request: HttpRequest, dash: DashboardDay) -> DashboardPanel | None:
    """Today's and tomorrow's cleaning, same-day turnovers first, with status and cleaner."""
    tasks = _cleaning(request)
    if tasks is None:
        return None
    due = tasks.filter(scheduled_for__in=[dash.today, dash.tomorrow]).exclude(
        status=CleaningStatus.CANCELLED
    )
    ordered = due.order_by("scheduled_for", "-same_day_turnover", "window_start")
    return DashboardPanel(
        key="turnovers",
        title="Cleaning today and tomorrow",
        count=due.count(),
        rows=[_task_row(task, dash) for task in ordered[:ROWS_PER_PANEL]],
        link=changelist_url(
            "automation.cleaningtask",
            scheduled_for__gte=dash.today.isoformat(),
            scheduled_for__lte=dash.tomorrow.isoformat(),
        ),
        empty="No cleaning today or tomorrow.",
    )


@dashboard_panel("unassigned_cleaning", order=40)
def unassigned_cleaning(request: HttpRequest, dash: DashboardDay) -> DashboardPanel | None:
    tasks = _cleaning(request)
    if tasks is None:
        return None
    if not request.user.is_superuser:
        # A cleaner assigns nothing: the panel is for the tenants where the user is not one.
        cleaner_tenants = tenant_ids_for_user(request.user, roles=(Role.CLEANER,))
        if set(tenant_ids_for_user(request.user)) <= set(cleaner_tenants):
            return None
        tasks = tasks.exclude(tenant_id__in=cleaner_tenants)
    unassigned = tasks.filter(
        assignee__isnull=True, status__in=OPEN_CLEANING, scheduled_for__gte=dash.today
    )
    return DashboardPanel(
        key="unassigned_cleaning",
        title="Cleaning nobody has taken",
        count=unassigned.count(),
        rows=[
            _task_row(task, dash) for task in unassigned.order_by("scheduled_for")[:ROWS_PER_PANEL]
        ],
        link=changelist_url(
            "automation.cleaningtask",
            assignee__isnull="True",
            scheduled_for__gte=dash.today.isoformat(),
        ),
        tone="bad",
        empty="Every cleaning has a cleaner.",
    )


@dashboard_panel("maintenance", order=70)
def urgent_maintenance(request: HttpRequest, dash: DashboardDay) -> DashboardPanel | None:
    if not request.user.has_perm("automation.view_maintenancerequest"):
        return None
    urgent = scope_queryset(
        MaintenanceRequest.objects.filter(
            status__in=OPEN_MAINTENANCE,
            priority__in=[MaintenancePriority.HIGH, MaintenancePriority.URGENT],
        ).select_related("property"),
        request.user,
        perms=["automation.view_maintenancerequest"],
    )
    rows = [
        DashboardRow(
            label=f"{request_.title} · {request_.property.name}",
            detail=f"{request_.get_priority_display()} · {request_.get_status_display()} · "
            f"reported by {request_.get_reported_by_display().lower()}",
            url=reverse("admin:automation_maintenancerequest_change", args=[request_.pk]),
            tone="bad" if request_.priority == MaintenancePriority.URGENT else "warn",
        )
        for request_ in urgent.order_by("-priority", "created_at")[:ROWS_PER_PANEL]
    ]
    return DashboardPanel(
        key="maintenance",
        title="Urgent maintenance",
        count=urgent.count(),
        rows=rows,
        link=changelist_url("automation.maintenancerequest", priority__in="high,urgent"),
        tone="bad",
        empty="Nothing urgent is broken.",
    )
