"""The cleaner's pages. Only the tasks assigned to the signed-in user, in the tenants where
their role still lets them change cleaning tasks (an assignment outlives a removed or
demoted membership: the pages follow the membership, as the admin does)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db import transaction
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_http_methods, require_POST

from automation.choices import CleaningStatus, ReportedBy
from automation.cleaner.forms import NotesForm, ProblemForm
from automation.models import CleaningTask
from automation.services import (
    CleaningError,
    MaintenanceError,
    cleaning_task_note,
    cleaning_task_transition,
    maintenance_request_create,
)
from pms.pipeline.log_context import bind_tenant
from tenants.scoping import scope_queryset

OPEN = (CleaningStatus.SCHEDULED, CleaningStatus.STARTED)


def _my_tasks(request: HttpRequest) -> QuerySet[CleaningTask]:
    return scope_queryset(
        CleaningTask.objects.filter(assignee_id=request.user.pk).select_related(
            "property", "booking"
        ),
        request.user,
        perms=["automation.change_cleaningtask"],
    )


def _my_task(request: HttpRequest, task_id: int) -> CleaningTask:
    task = _my_tasks(request).filter(pk=task_id).first()
    if task is None:
        raise Http404("No such task of yours.")
    bind_tenant(task.tenant_id)
    return task


def _back(task: CleaningTask) -> HttpResponse:
    return redirect(reverse("cleaner:task", args=[task.pk]))


@login_required
def today(request: HttpRequest) -> HttpResponse:
    """Today's and tomorrow's tasks, and any still open from before (started, not done)."""
    day = timezone.localdate()
    tasks = (
        _my_tasks(request)
        .exclude(status=CleaningStatus.CANCELLED)
        .filter(scheduled_for__lte=day + timedelta(days=1))
        .exclude(scheduled_for__lt=day, status=CleaningStatus.DONE)
        .order_by("scheduled_for", "-same_day_turnover", "window_start")
    )
    return render(request, "cleaner/today.html", {"tasks": tasks, "today": day})


@login_required
@require_http_methods(["GET", "POST"])
def task(request: HttpRequest, task_id: int) -> HttpResponse:
    current = _my_task(request, task_id)
    notes = NotesForm(request.POST or None, initial={"notes": current.notes})
    if request.method == "POST":
        if notes.is_valid():
            try:
                cleaning_task_note(
                    task=current, notes=notes.cleaned_data["notes"], user=request.user
                )
            except CleaningError as exc:
                notes.add_error("notes", exc.message)
            else:
                messages.success(request, "Notes saved.")
                return _back(current)
        return _page(request, current, notes=notes, status=400)
    return _page(request, current, notes=notes)


def _page(
    request: HttpRequest, current: CleaningTask, status: int = 200, **forms: Any
) -> HttpResponse:
    context = {
        "task": current,
        "property": current.property,
        "notes": forms.get("notes") or NotesForm(initial={"notes": current.notes}),
        "problem": forms.get("problem") or ProblemForm(),
        "can_start": current.status == CleaningStatus.SCHEDULED,
        "can_finish": current.status in OPEN,
    }
    return render(request, "cleaner/task.html", context, status=status)


@login_required
@require_POST
def move(request: HttpRequest, task_id: int, to: str) -> HttpResponse:
    current = _my_task(request, task_id)
    target = {"start": CleaningStatus.STARTED, "done": CleaningStatus.DONE}.get(to)
    if target is None:
        raise Http404("No such step.")
    try:
        with transaction.atomic():
            cleaning_task_transition(task=current, to_status=target, user=request.user)
    except CleaningError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(
            request, "Started." if target == CleaningStatus.STARTED else "Done. Thank you!"
        )
    return _back(current)


@login_required
@require_POST
def problem(request: HttpRequest, task_id: int) -> HttpResponse:
    """A problem found while cleaning: a maintenance request, with the photo, for the manager."""
    current = _my_task(request, task_id)
    form = ProblemForm(request.POST, request.FILES)
    if not form.is_valid():
        return _page(request, current, problem=form, status=400)
    data = form.cleaned_data
    try:
        maintenance_request_create(
            property=current.property,
            booking=current.booking,
            title=data["title"],
            description=data["description"],
            priority=form.priority,
            reported_by=ReportedBy.STAFF,
            reporter=request.user,
            photo=data["photo"] or None,
            actor=f"user:{request.user.pk}",
        )
    except MaintenanceError as exc:
        form.add_error(None, exc.message)
        return _page(request, current, problem=form, status=400)
    messages.success(request, "Reported: the manager has it.")
    return _back(current)
