"""Admin: the queue-health page, alert rules (editable) and alert incidents (listed).

Queue data is operator-level (queue names, depths, workers, every tenant's
volumes), shown to superusers and the "operators" group, which holds
``pms.view_queue_health`` (tenant roles do not); the failed-task and outbox
counts on the page are tenant data and are scoped to the viewer's tenants
(superusers: all).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse

from config.queues import QUEUES
from pms.models import EventDelivery, FailedTask
from pms.models.monitoring import AlertIncident, AlertRule, IncidentStatus, QueueSample
from pms.monitoring.charts import line_chart
from pms.monitoring.overview import open_failed_tasks, pending_deliveries, queue_overview
from pms.monitoring.sampling import queue_samples_since
from tenants.scoping import scope_queryset

CHART_HOURS = (1, 6, 24, 48)


def _charts(hours: int) -> list[Any]:
    samples = queue_samples_since(hours=hours)
    times = [sample.taken_at for sample in samples]
    names = [spec.name for spec in QUEUES]

    def series(index: int) -> dict[str, list[float | None]]:
        return {
            name: [(sample.data.get(name) or [None] * 4)[index] for sample in samples]
            for name in names
        }

    return [
        line_chart(title="Messages waiting per queue", times=times, series=series(0)),
        line_chart(title="Tasks finished per minute, per queue", times=times, series=series(2)),
    ]


@admin.register(QueueSample)
class QueueHealthAdmin(admin.ModelAdmin):
    """The model's changelist is the queue-health page (Admin > PMS core > Queue health)."""

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.user.has_perm("pms.view_queue_health")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        try:
            hours = int(request.GET.get("hours", 6))
        except ValueError:
            hours = 6
        hours = hours if hours in CHART_HOURS else 6
        overview = queue_overview()
        # Incident messages name totals across tenants (outbox, channels): operators only.
        can_see_incidents = request.user.has_perm("pms.view_alertincident")
        # Counted only in the tenants where the viewer's role shows failures / the outbox.
        failed = scope_queryset(
            FailedTask.objects.all(),
            request.user,
            perms=("pms.view_failedtask", "pms.change_failedtask"),
        )
        deliveries = scope_queryset(
            EventDelivery.objects.all(),
            request.user,
            perms=("pms.view_eventdelivery", "pms.view_domainevent"),
        )
        context = {
            **self.admin_site.each_context(request),
            "title": "Queue health",
            "opts": self.model._meta,
            "overview": overview,
            "beat_last_tick": (
                datetime.fromtimestamp(overview.beat_last_tick, UTC)
                if overview.beat_last_tick
                else None
            ),
            "open_failed_tasks": open_failed_tasks(failed),
            "deliveries": pending_deliveries(deliveries),
            "incidents": (
                list(
                    AlertIncident.objects.select_related("rule").filter(status=IncidentStatus.OPEN)[
                        :50
                    ]
                )
                if can_see_incidents
                else []
            ),
            "can_see_incidents": can_see_incidents,
            "charts": _charts(hours),
            "hours": hours,
            "hour_choices": CHART_HOURS,
            **(extra_context or {}),
        }
        return TemplateResponse(request, "admin/pms/queue_health.html", context)


@admin.register(AlertRule)
class AlertRuleAdmin(admin.ModelAdmin):
    list_display = ["__str__", "kind", "queue", "threshold", "for_seconds", "enabled", "updated_at"]
    list_editable = ["threshold", "for_seconds", "enabled"]
    list_filter = ["kind", "enabled"]


@admin.register(AlertIncident)
class AlertIncidentAdmin(admin.ModelAdmin):
    list_display = [
        "rule",
        "subject",
        "status",
        "message",
        "firing_since",
        "opened_at",
        "resolved_at",
        "notified_at",
        "recovered_notified_at",
        "webhook_notified_at",
        "webhook_recovered_at",
        "resolution_note",
    ]
    list_filter = ["status", "rule__kind", "subject", "opened_at"]
    list_select_related = ["rule"]
    date_hierarchy = "opened_at"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
