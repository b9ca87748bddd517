"""The admin of fair admission: per tenant and kind of work, what waits, runs and is
deferred, and the circuit of every remote endpoint (pms.pipeline.fairness, .endpoints).

Both are tenant-owned: a manager sees only their own tenants' work and endpoints.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib import admin, messages
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.utils.text import Truncator

from pms.admin_helpers import ReadOnlyAdminMixin
from pms.models import EndpointCircuit, FairWorkItem
from pms.pipeline.endpoints import circuit_close
from pms.pipeline.fair_summary import fair_work_summary
from pms.pipeline.fairness import kick_dispatcher, scope_cap
from tenants.scoping import TenantScopedAdmin


def _stale_before() -> Any:
    return timezone.now() - timedelta(seconds=settings.FAIR_INFLIGHT_DEADLINE)


def _open_circuits() -> QuerySet[EndpointCircuit]:
    return EndpointCircuit.objects.filter(
        tenant_id=OuterRef("tenant_id"),
        lane=OuterRef("lane"),
        consecutive_failures__gte=settings.ENDPOINT_BREAKER_FAILURES,
        open_until__gt=timezone.now(),
    )


class FairStateFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "state"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [
            ("waiting", "Waiting for its turn"),
            ("deferred", "Deferred (endpoint's circuit open)"),
            ("in_flight", "In flight"),
            ("finished", "Finished"),
        ]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.value()
        if value is None:
            return queryset
        if value == "finished":
            return queryset.filter(finished_at__isnull=False)
        unfinished = queryset.filter(finished_at__isnull=True)
        in_flight = Q(dispatched_at__gt=_stale_before())
        if value == "in_flight":
            return unfinished.filter(in_flight)
        waiting = unfinished.exclude(in_flight)
        deferred = Exists(_open_circuits())
        return waiting.filter(deferred) if value == "deferred" else waiting.exclude(deferred)


@admin.register(FairWorkItem)
class FairWorkItemAdmin(ReadOnlyAdminMixin, TenantScopedAdmin):
    """Bulk work waiting for, or holding, its tenant's share of the workers."""

    change_list_template = "admin/pms/fairworkitem/change_list.html"
    list_display = [
        "scope",
        "task_name",
        "args",
        "lane",
        "state",
        "tenant",
        "created_at",
        "dispatched_at",
        "dispatch_count",
        "finished_at",
    ]
    list_filter = [FairStateFilter, "scope", "tenant", "lane"]
    search_fields = ["=dedupe_key", "task_name", "lane"]
    list_select_related = ["tenant"]
    show_full_result_count = False

    @admin.display(description="State")
    def state(self, obj: FairWorkItem) -> str:
        if obj.finished_at is not None:
            return "finished"
        if obj.dispatched_at is not None and obj.dispatched_at > _stale_before():
            return "in flight"
        return "waiting"

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        loads = fair_work_summary(self.tenant_ids_for(request, "view"))
        extra_context = {
            **(extra_context or {}),
            "fair_loads": [(load, scope_cap(load.scope)) for load in loads],
            "lane_cap": settings.FAIR_INFLIGHT_PER_ENDPOINT,
        }
        return super().changelist_view(request, extra_context=extra_context)


@admin.register(EndpointCircuit)
class EndpointCircuitAdmin(TenantScopedAdmin):
    """Each tenant's remote endpoints and their circuit breakers."""

    list_display = [
        "lane",
        "tenant",
        "circuit_state",
        "consecutive_failures",
        "open_until",
        "times_opened",
        "error_excerpt",
        "last_failure_at",
        "last_success_at",
    ]
    list_filter = ["tenant"]
    search_fields = ["lane"]
    list_select_related = ["tenant"]
    readonly_fields = [
        "tenant",
        "lane",
        "consecutive_failures",
        "times_opened",
        "open_until",
        "last_error",
        "last_failure_at",
        "last_success_at",
    ]
    actions = ["close_selected"]

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # circuits are recorded by the calls, never typed

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="Circuit")
    def circuit_state(self, obj: EndpointCircuit) -> str:
        return obj.state

    @admin.display(description="Last error")
    def error_excerpt(self, obj: EndpointCircuit) -> str:
        return Truncator(obj.last_error).chars(100)

    @admin.action(description="Close the circuit (the receiver is fixed)", permissions=["change"])
    def close_selected(self, request: HttpRequest, queryset: QuerySet[EndpointCircuit]) -> None:
        count = 0
        for circuit in queryset:
            circuit_close(circuit=circuit)
            count += 1
        kick_dispatcher()
        self.message_user(
            request, f"{count} circuit(s) closed: their work is admitted again.", messages.SUCCESS
        )
