"""The manager's dashboard: panels each app contributes to the admin index.

The kernel knows no app, so each app registers its panels (``@dashboard_panel`` in its
``dashboard.py``, imported by its ``AppConfig.ready``). A panel is built for one request:
it scopes its rows to the tenants where the user's role lets them see its model (None:
the user may not see it at all), reads a bounded number of rows in a fixed number of
queries, and links to the admin list that shows all of them, filtered the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date
from urllib.parse import urlencode

from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone

ROWS_PER_PANEL = 8


@dataclass(frozen=True)
class DashboardRow:
    label: str
    detail: str = ""
    url: str = ""
    tone: str = ""  # "", "warn" or "bad": how the row is marked


@dataclass(frozen=True)
class DashboardPanel:
    key: str
    title: str
    count: int  # all of them, not only the rows shown
    link: str  # the admin list of all of them
    rows: Sequence[DashboardRow] = field(default_factory=tuple)
    empty: str = "Nothing here."
    tone: str = ""  # the panel's mark when count > 0


@dataclass(frozen=True)
class DashboardDay:
    """The days a dashboard is about (the installation's local date)."""

    today: date
    tomorrow: date


PanelBuilder = Callable[[HttpRequest, DashboardDay], DashboardPanel | None]

_PANELS: dict[str, tuple[int, PanelBuilder]] = {}


def dashboard_panel(key: str, *, order: int) -> Callable[[PanelBuilder], PanelBuilder]:
    """Register a panel builder under ``key``; panels show in ``order``."""

    def register(builder: PanelBuilder) -> PanelBuilder:
        _PANELS[key] = (order, builder)
        return builder

    return register


def changelist_url(model: str, **filters: object) -> str:
    """The admin list of ``model`` ("app_label.model"), filtered by ``filters``."""
    app_label, name = model.split(".")
    url = reverse(f"admin:{app_label}_{name}_changelist")
    return f"{url}?{urlencode(filters)}" if filters else url


def dashboard_day() -> DashboardDay:
    today = timezone.localdate()
    return DashboardDay(today=today, tomorrow=date.fromordinal(today.toordinal() + 1))


def dashboard_panels(request: HttpRequest) -> list[DashboardPanel]:
    """Every registered panel the user may see, in order."""
    day = dashboard_day()
    built = (builder(request, day) for _, builder in sorted(_PANELS.values(), key=lambda p: p[0]))
    return [panel for panel in built if panel is not None]


@dashboard_panel("failed_tasks", order=100)
def open_failed_tasks(request: HttpRequest, dash: DashboardDay) -> DashboardPanel | None:
    """Work that failed and waits for a person (Admin > Failed tasks)."""
    # Imported here: this module is the registry every app imports at load time.
    from pms.choices import FailedTaskStatus
    from pms.models import FailedTask
    from tenants.scoping import scope_queryset

    if not request.user.has_perm("pms.view_failedtask"):
        return None
    failed = scope_queryset(
        FailedTask.objects.filter(status=FailedTaskStatus.OPEN),
        request.user,
        perms=["pms.view_failedtask"],
    )
    rows = [
        DashboardRow(
            label=task.task_name.rsplit(".", 1)[-1].replace("_", " "),
            detail=f"{task.exception_class}: {task.exception_message[:80]}",
            url=reverse("admin:pms_failedtask_change", args=[task.pk]),
            tone="bad",
        )
        for task in failed.order_by("-last_failed_at")[:ROWS_PER_PANEL]
    ]
    return DashboardPanel(
        key="failed_tasks",
        title="Failed tasks to resolve",
        count=failed.count(),
        rows=rows,
        link=changelist_url("pms.failedtask", status=FailedTaskStatus.OPEN),
        tone="bad",
        empty="Nothing failed.",
    )
