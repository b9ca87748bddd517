from __future__ import annotations

import json
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.text import Truncator

from pms import fair_work_admin  # noqa: F401  (registers its admins)
from pms.admin_helpers import ExtensibleAdminMixin, ReadOnlyAdminMixin
from pms.choices import FailedTaskStatus
from pms.models import DomainEvent, EventDelivery, FailedTask, FailedTaskAction, Guest, Property
from pms.monitoring import admin as monitoring_admin  # noqa: F401  (registers its admins)
from pms.pipeline.failures import failed_task_discard, failed_task_resolve, failed_task_retry
from pms.pipeline.reconcile import reconcile
from tenants.scoping import TenantScopedAdmin, TenantScopedTabularInline


def pretty_json(value: Any) -> SafeString:
    return format_html(
        "<pre style='white-space:pre-wrap'>{}</pre>",
        json.dumps(value, indent=2, sort_keys=True, default=str),
    )


@admin.register(Property)
class PropertyAdmin(ExtensibleAdminMixin, TenantScopedAdmin):
    # bookings adds its pricing rules (seasons, taxes) as inlines: admin_extend.
    list_display = [
        "name",
        "tenant",
        "timezone",
        "max_guests",
        "nightly_rate",
        "currency",
        "booking_mode",
        "is_active",
        "calendar_link",
    ]
    list_filter = ["tenant", "is_active", "booking_mode", "currency"]
    search_fields = ["name", "slug", "address"]
    list_select_related = ["tenant"]
    prepopulated_fields = {"slug": ("name",)}

    @admin.display(description="Calendar")
    def calendar_link(self, obj: Property) -> SafeString:
        return format_html(
            '<a href="{}">month grid</a>',
            reverse("admin:bookings_property_calendar", args=[obj.pk]),
        )


@admin.register(Guest)
class GuestAdmin(TenantScopedAdmin):
    list_display = ["name", "email", "phone", "tenant", "created_at"]
    list_filter = ["tenant"]
    search_fields = ["name", "email", "phone"]
    list_select_related = ["tenant"]


class DeliveryInline(ReadOnlyAdminMixin, TenantScopedTabularInline):
    model = EventDelivery
    fields = readonly_fields = (
        "handler",
        "queue",
        "status",
        "publish_count",
        "due_at",
        "completed_at",
    )
    extra = 0


@admin.register(DomainEvent)
class DomainEventAdmin(ReadOnlyAdminMixin, TenantScopedAdmin):
    list_display = [
        "event_type",
        "aggregate_type",
        "aggregate_id",
        "sequence",
        "tenant",
        "actor",
        "created_at",
    ]
    list_filter = ["event_type", "aggregate_type", "tenant"]
    search_fields = ["=id", "=aggregate_id", "event_type"]
    list_select_related = ["tenant"]
    date_hierarchy = "created_at"
    readonly_fields = [
        "id",
        "tenant",
        "aggregate_type",
        "aggregate_id",
        "sequence",
        "event_type",
        "payload_pretty",
        "actor",
        "created_at",
    ]
    exclude = ["payload"]
    inlines = [DeliveryInline]
    show_full_result_count = False

    @admin.display(description="Payload")
    def payload_pretty(self, obj: DomainEvent) -> SafeString:
        return pretty_json(obj.payload)


@admin.register(EventDelivery)
class EventDeliveryAdmin(ReadOnlyAdminMixin, TenantScopedAdmin):
    list_display = [
        "handler",
        "queue",
        "status",
        "publish_count",
        "due_at",
        "completed_at",
        "tenant",
    ]
    list_filter = ["status", "queue", "handler", "tenant"]
    search_fields = ["=event__id", "handler"]
    list_select_related = ["tenant"]
    show_full_result_count = False


class ActionNoteForm(forms.Form):
    note = forms.CharField(widget=forms.Textarea(attrs={"rows": 3, "cols": 60}), required=True)


class FailedTaskActionInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = FailedTaskAction
    fields = readonly_fields = ("created_at", "action", "user", "note")
    extra = 0


@admin.register(FailedTask)
class FailedTaskAdmin(TenantScopedAdmin):
    list_display = [
        "task_name",
        "queue",
        "tenant",
        "exception_class",
        "message_excerpt",
        "status",
        "attempts",
        "failure_count",
        "last_failed_at",
    ]
    list_filter = ["status", "queue", "task_name", "tenant", "exception_class", "last_failed_at"]
    search_fields = ["task_id", "task_name", "exception_message"]
    list_select_related = ["tenant"]
    date_hierarchy = "last_failed_at"
    actions = ["retry_selected", "resolve_selected", "discard_selected"]
    inlines = [FailedTaskActionInline]
    fieldsets = [
        (None, {"fields": ["task_name", "task_id", "queue", "tenant", "event", "status"]}),
        (
            "Failure",
            {
                "fields": [
                    "exception_class",
                    "exception_message",
                    "traceback_pretty",
                    "attempts",
                    "failure_count",
                    "first_failed_at",
                    "last_failed_at",
                ]
            },
        ),
        ("Replay", {"fields": ["args_pretty", "kwargs_pretty"]}),
        ("Review", {"fields": ["acted_by", "acted_at", "action_note", "alerted_at"]}),
    ]
    readonly_fields = [
        "task_name",
        "task_id",
        "queue",
        "tenant",
        "event",
        "status",
        "exception_class",
        "exception_message",
        "traceback_pretty",
        "attempts",
        "failure_count",
        "first_failed_at",
        "last_failed_at",
        "args_pretty",
        "kwargs_pretty",
        "acted_by",
        "acted_at",
        "action_note",
        "alerted_at",
    ]

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # never delete a failure: discard it with a reason

    # Retry / resolve / discard: allowed on the rows of the tenants where the role has it.
    extra_permissions = {"act": "pms.act_on_failedtask"}

    def has_act_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self.may(request, "act", obj)

    @admin.display(description="Message")
    def message_excerpt(self, obj: FailedTask) -> str:
        return Truncator(obj.exception_message).chars(120)

    @admin.display(description="Traceback")
    def traceback_pretty(self, obj: FailedTask) -> SafeString:
        return format_html(
            "<pre style='white-space:pre-wrap;max-height:30em;overflow:auto'>{}</pre>",
            obj.traceback,
        )

    @admin.display(description="Args")
    def args_pretty(self, obj: FailedTask) -> SafeString:
        return pretty_json(obj.args)

    @admin.display(description="Kwargs")
    def kwargs_pretty(self, obj: FailedTask) -> SafeString:
        return pretty_json(obj.kwargs)

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        tenant_ids = self.tenant_ids_for(request, "view")
        reports = (
            [reconcile()] if tenant_ids is None else [reconcile(tenant_id=t) for t in tenant_ids]
        )
        extra_context = {
            **(extra_context or {}),
            "reconcile": {
                "lost": sum(r.lost for r in reports),
                "in_flight": sum(r.in_flight for r in reports),
                "applied": sum(r.applied for r in reports),
                "failed_for_review": sum(r.failed_for_review for r in reports),
            },
        }
        return super().changelist_view(request, extra_context=extra_context)

    @admin.action(description="Retry selected tasks (original arguments)", permissions=["act"])
    def retry_selected(self, request: HttpRequest, queryset: QuerySet[FailedTask]) -> None:
        done, refused = 0, []
        for failed in queryset:
            try:
                failed_task_retry(failed_task=failed, user=request.user)
                done += 1
            except ValueError as exc:
                refused.append(str(exc))
        if done:
            self.message_user(request, f"{done} task(s) re-enqueued.", messages.SUCCESS)
        for text in refused:
            self.message_user(request, text, messages.WARNING)

    @admin.action(description="Resolve selected (with a note)", permissions=["act"])
    def resolve_selected(
        self, request: HttpRequest, queryset: QuerySet[FailedTask]
    ) -> HttpResponse | None:
        return self._with_note(
            request, queryset, "resolve_selected", "Resolve", failed_task_resolve, "note"
        )

    @admin.action(description="Discard selected (with a reason)", permissions=["act"])
    def discard_selected(
        self, request: HttpRequest, queryset: QuerySet[FailedTask]
    ) -> HttpResponse | None:
        return self._with_note(
            request, queryset, "discard_selected", "Discard", failed_task_discard, "reason"
        )

    def _with_note(
        self,
        request: HttpRequest,
        queryset: QuerySet[FailedTask],
        action: str,
        verb: str,
        service: Any,
        argument: str,
    ) -> HttpResponse | None:
        form = ActionNoteForm(request.POST if "apply" in request.POST else None)
        if form.is_valid():
            for failed in queryset:
                service(
                    failed_task=failed, user=request.user, **{argument: form.cleaned_data["note"]}
                )
            self.message_user(request, f"{verb}d {queryset.count()} task(s).", messages.SUCCESS)
            return None
        return TemplateResponse(
            request,
            "admin/pms/failedtask/action_note.html",
            {
                **self.admin_site.each_context(request),
                "title": f"{verb} failed tasks",
                "verb": verb,
                "action": action,
                "form": form,
                "queryset": queryset,
                "opts": self.model._meta,
                "action_checkbox_name": ACTION_CHECKBOX_NAME,
                "open_statuses": [FailedTaskStatus.OPEN, FailedTaskStatus.RETRYING],
            },
        )
