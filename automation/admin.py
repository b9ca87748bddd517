from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.contrib.admin import ModelAdmin
from django.db.models import Q, QuerySet
from django.http import HttpRequest

from automation.choices import CleaningStatus, MaintenanceStatus, ReportedBy
from automation.models import (
    CleaningTask,
    MaintenancePlan,
    MaintenanceRequest,
    MessageTemplate,
    OutboundMessage,
)
from automation.services import (
    CleaningError,
    MaintenanceError,
    cleaning_task_assign,
    cleaning_task_transition,
    guest_link_email,
    maintenance_request_assign,
    maintenance_request_create,
    maintenance_request_transition,
    maintenance_request_update,
)
from bookings.models import Booking
from pms.admin_helpers import (
    ReadOnlyAdminMixin,
    ServiceRefusalsAsMessagesMixin,
    admin_extend,
    run_for_each,
)
from tenants.choices import Role
from tenants.scoping import TenantScopedAdmin, TenantScopedTabularInline
from tenants.selectors import tenant_ids_for_user


def _actor(request: HttpRequest) -> str:
    return f"admin:{request.user.get_username()}"


@admin.register(OutboundMessage)
class OutboundMessageAdmin(ReadOnlyAdminMixin, TenantScopedAdmin):
    """The log of every email/SMS: what was meant to go out, and what happened."""

    list_display = [
        "created_at",
        "kind",
        "channel",
        "recipient",
        "subject",
        "status",
        "send_after",
        "attempts",
        "sent_at",
        "tenant",
    ]
    list_filter = ["status", "channel", "kind", "tenant"]
    search_fields = ["recipient", "subject", "booking__reference"]
    list_select_related = ["tenant"]
    date_hierarchy = "created_at"
    readonly_fields = [
        "tenant",
        "idempotency_key",
        "kind",
        "channel",
        "booking",
        "template",
        "recipient",
        "subject",
        "body",
        "status",
        "send_after",
        "attempts",
        "last_error",
        "created_at",
        "sending_started_at",
        "sent_at",
    ]


class BookingMessagesInline(ReadOnlyAdminMixin, TenantScopedTabularInline):
    """On the booking page: every message about it, scheduled ones with their time and status."""

    model = OutboundMessage
    fk_name = "booking"
    extra = 0
    verbose_name_plural = "messages (scheduled, sent, failed, cancelled)"
    fields = readonly_fields = (
        "kind",
        "channel",
        "recipient",
        "subject",
        "status",
        "send_after",
        "sent_at",
        "last_error",
    )
    ordering = ["send_after", "pk"]


@admin.action(description="Email the guest a new private link", permissions=["change"])
def send_guest_link(
    model_admin: ModelAdmin[Booking], request: HttpRequest, queryset: QuerySet[Booking]
) -> None:
    sent = sum(
        1
        for booking in queryset.select_related("guest", "property")
        if guest_link_email(booking=booking)
    )
    model_admin.message_user(request, f"New link queued for {sent} guest(s).", messages.SUCCESS)


# The booking page is the bookings app's; its messages and the link email are automation's.
admin_extend(Booking, inlines=[BookingMessagesInline], actions=[send_guest_link])


@admin.register(MessageTemplate)
class MessageTemplateAdmin(TenantScopedAdmin):
    list_display = [
        "name",
        "trigger",
        "offset_days",
        "local_time",
        "channel",
        "is_active",
        "tenant",
    ]
    list_filter = ["trigger", "channel", "is_active", "tenant"]
    search_fields = ["name", "subject", "body"]
    list_select_related = ["tenant"]
    fields = [
        "tenant",
        "name",
        "trigger",
        "offset_days",
        "local_time",
        "channel",
        "subject",
        "body",
        "is_active",
    ]


def _cleaner_tenant_ids(request: HttpRequest) -> list[int]:
    """Tenants where the user is a cleaner: there they see and update only their own tasks."""
    if request.user.is_superuser:
        return []
    return tenant_ids_for_user(request.user, roles=(Role.CLEANER,))


CLEANING_TASK_FIELDS = (
    "tenant",
    "property",
    "booking",
    "scheduled_for",
    "window_start",
    "window_end",
    "same_day_turnover",
    "assignee",
    "status",
    "started_at",
    "done_at",
)


@admin.register(CleaningTask)
class CleaningTaskAdmin(ServiceRefusalsAsMessagesMixin, TenantScopedAdmin):
    service_refusals = (CleaningError,)
    list_display = [
        "scheduled_for",
        "property",
        "booking",
        "window_start",
        "window_end",
        "same_day_turnover",
        "assignee",
        "status",
    ]
    list_filter = ["status", "same_day_turnover", "scheduled_for", "property"]
    search_fields = ["booking__reference", "property__name", "assignee__username"]
    list_select_related = ["property", "booking", "assignee"]
    date_hierarchy = "scheduled_for"
    actions = ["mark_started", "mark_done"]
    fields = CLEANING_TASK_FIELDS

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        queryset = super().get_queryset(request)
        if cleaner_tenants := _cleaner_tenant_ids(request):
            queryset = queryset.filter(
                ~Q(tenant_id__in=cleaner_tenants) | Q(assignee_id=request.user.pk)
            )
        return queryset

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        # Dates follow the booking; status moves through the actions. Managers may
        # reassign; a cleaner (in this task's tenant) may not.
        if obj is not None and obj.tenant_id in _cleaner_tenant_ids(request):
            return list(CLEANING_TASK_FIELDS)
        return [f for f in CLEANING_TASK_FIELDS if f != "assignee"]

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        if db_field.name == "assignee":
            # Cleaners of this task's tenant, nobody else's.
            kwargs["queryset"] = self.member_choices(request, roles=(Role.CLEANER,))
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # tasks come from bookings

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        if "assignee" in form.changed_data:  # the only field a manager edits here
            cleaning_task_assign(task=obj, assignee=obj.assignee)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def _transition(self, request: HttpRequest, queryset: QuerySet[Any], to_status: str) -> None:
        run_for_each(
            self,
            request,
            queryset,
            lambda task: cleaning_task_transition(
                task=task, to_status=to_status, user=request.user
            ),
            refusals=(CleaningError,),
            done_message=f"{{count}} cleaning task(s) marked {to_status}.",
        )

    @admin.action(description="Mark started", permissions=["change"])
    def mark_started(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        self._transition(request, queryset, CleaningStatus.STARTED)

    @admin.action(description="Mark done", permissions=["change"])
    def mark_done(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        self._transition(request, queryset, CleaningStatus.DONE)


@admin.register(MaintenancePlan)
class MaintenancePlanAdmin(TenantScopedAdmin):
    list_display = ["title", "property", "every_days", "next_due", "priority", "is_active"]
    list_filter = ["is_active", "priority", "property"]
    search_fields = ["title", "property__name"]
    list_select_related = ["property"]


@admin.register(MaintenanceRequest)
class MaintenanceRequestAdmin(ServiceRefusalsAsMessagesMixin, TenantScopedAdmin):
    service_refusals = (MaintenanceError,)
    list_display = [
        "created_at",
        "title",
        "property",
        "priority",
        "status",
        "assignee",
        "reported_by",
        "due_on",
    ]
    list_filter = ["status", "priority", "reported_by", "property"]
    search_fields = ["title", "description", "property__name", "booking__reference"]
    list_select_related = ["property", "assignee"]
    actions = ["mark_in_progress", "mark_done", "mark_cancelled"]
    readonly_fields = ["reported_by", "plan", "due_on", "status", "created_at", "resolved_at"]

    def get_fields(self, request: HttpRequest, obj: Any = None) -> tuple[str, ...]:
        fields: tuple[str, ...] = (
            "tenant",
            "property",
            "booking",
            "title",
            "description",
            "priority",
            "photo",
        )
        if obj is not None:
            fields = (*fields, "assignee", *self.readonly_fields)
        return fields

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        if obj is None:
            return []
        return [*self.readonly_fields, "tenant", "property", "booking"]

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        if not change:
            created = maintenance_request_create(
                property=obj.property,
                title=obj.title,
                description=obj.description,
                priority=obj.priority,
                booking=obj.booking,
                reported_by=ReportedBy.STAFF,
                reporter=request.user,
                photo=obj.photo or None,
                actor=_actor(request),
            )
            obj.pk = created.pk
            return
        if {"title", "description", "priority", "photo"} & set(form.changed_data):
            maintenance_request_update(
                request=obj,
                title=obj.title,
                description=obj.description,
                priority=obj.priority,
                photo=obj.photo or None,
                actor=_actor(request),
            )
        if "assignee" in form.changed_data and obj.assignee is not None:
            try:
                maintenance_request_assign(
                    request=obj, assignee=obj.assignee, actor=_actor(request)
                )
            except MaintenanceError as exc:
                self.message_user(request, str(exc), messages.ERROR)

    def _transition(self, request: HttpRequest, queryset: QuerySet[Any], to_status: str) -> None:
        run_for_each(
            self,
            request,
            queryset,
            lambda item: maintenance_request_transition(
                request=item, to_status=to_status, actor=_actor(request)
            ),
            refusals=(MaintenanceError,),
            done_message=f"{{count}} request(s) marked {to_status}.",
        )

    @admin.action(description="Mark in progress", permissions=["change"])
    def mark_in_progress(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        self._transition(request, queryset, MaintenanceStatus.IN_PROGRESS)

    @admin.action(description="Mark done", permissions=["change"])
    def mark_done(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        self._transition(request, queryset, MaintenanceStatus.DONE)

    @admin.action(description="Cancel", permissions=["change"])
    def mark_cancelled(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        self._transition(request, queryset, MaintenanceStatus.CANCELLED)
