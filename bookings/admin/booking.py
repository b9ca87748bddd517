from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseNotAllowed,
    HttpResponseRedirect,
)
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from bookings import services
from bookings.admin.calendar import MultiCalendarMixin
from bookings.admin.money import LedgerEntryInline, PaymentInline, RefundInline
from bookings.admin.months import month_from_query
from bookings.choices import BookingStatus, DeclineReason, MessageSender
from bookings.errors import BookingError
from bookings.models import Block, Booking, CalendarEntry, GuestMessage
from bookings.selectors import (
    booking_conflicts,
    booking_story_events,
    property_calendar_month,
)
from pms.admin_helpers import ExtensibleAdminMixin, ServiceRefusalsAsMessagesMixin, run_for_each
from pms.models import Property
from pms.story import StorySubject, story
from tenants.scoping import TenantScopedAdmin, TenantScopedTabularInline, filter_to_tenants

# Changing one of these is a booking_modify (new price, availability checked again).
STAY_FIELDS = {"property", "check_in", "check_out", "guests_count"}


class BookingAdminForm(forms.ModelForm):
    class Meta:
        model = Booking
        fields = [
            "tenant",
            "property",
            "guest",
            "check_in",
            "check_out",
            "guests_count",
            "source",
            "external_reference",
        ]

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data
        tenant, prop, guest = (
            data.get("tenant") or getattr(self.instance, "tenant", None),
            data.get("property"),
            data.get("guest"),
        )
        if prop and tenant and prop.tenant_id != tenant.pk:
            self.add_error("property", "This property belongs to another tenant.")
        if guest and tenant and guest.tenant_id != tenant.pk:
            self.add_error("guest", "This guest belongs to another tenant.")
        creating = self.instance.pk is None
        check_in, check_out = data.get("check_in"), data.get("check_out")
        guests_count = data.get("guests_count")
        # The rules the save's service applies (it allows past dates only when creating);
        # overlaps are reported by the model's exclusion constraint validation.
        if (
            prop
            and check_in
            and check_out
            and guests_count is not None
            and (creating or STAY_FIELDS & set(self.changed_data))
        ):
            try:
                services.booking_validate_stay(
                    property=prop,
                    check_in=check_in,
                    check_out=check_out,
                    guests_count=guests_count,
                    allow_past=creating,
                )
            except BookingError as refused:
                self.add_error(
                    refused.field if refused.field in self.fields else None, refused.message
                )
        return data


def _adopt(target: Any, saved: Any) -> None:
    """Make the admin's unsaved instance the row the service saved."""
    for field in type(saved)._meta.concrete_fields:
        setattr(target, field.attname, getattr(saved, field.attname))
    target._state.adding = False
    target._state.db = saved._state.db


class MessageThreadInline(TenantScopedTabularInline):
    """The thread so far, read-only."""

    model = GuestMessage
    fields = readonly_fields = ("created_at", "sender", "author", "body")
    extra = 0
    can_delete = False
    verbose_name_plural = "message thread"

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class ReplyInline(TenantScopedTabularInline):
    """One empty form: a reply to the guest, saved through guest_message_post (emailed)."""

    model = GuestMessage
    fields = ["body"]
    extra = 1
    max_num = 1
    can_delete = False
    verbose_name = "reply to the guest"
    verbose_name_plural = "reply to the guest"

    def get_queryset(self, request: HttpRequest) -> Any:
        return super().get_queryset(request).none()


class AwaitingReplyFilter(admin.SimpleListFilter):
    """Bookings whose thread ends with the guest's message (the dashboard links here)."""

    title = "guest messages"
    parameter_name = "awaiting_reply"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("yes", "Awaiting a reply")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if self.value() == "yes":
            return queryset.filter(awaiting_reply_since__isnull=False)
        return queryset


class AwaitingAnswerFilter(admin.SimpleListFilter):
    """Requests to book the host has not answered yet (declined automatically at expiry)."""

    title = "your answer"
    parameter_name = "awaiting"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("yes", "Awaiting your answer")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Booking]) -> QuerySet[Booking]:
        if self.value() == "yes":
            return queryset.filter(status=BookingStatus.REQUESTED).order_by("created_at")
        return queryset


@admin.register(Booking)
class BookingAdmin(
    MultiCalendarMixin, ServiceRefusalsAsMessagesMixin, ExtensibleAdminMixin, TenantScopedAdmin
):
    service_refusals = (BookingError,)
    form = BookingAdminForm
    inlines = [PaymentInline, RefundInline, LedgerEntryInline, MessageThreadInline, ReplyInline]
    list_display = [
        "reference",
        "property",
        "guest",
        "check_in",
        "check_out",
        "status",
        "guests_count",
        "total",
        "currency",
        "source",
        "answer_by",
        "tenant",
    ]
    list_filter = [
        AwaitingAnswerFilter,
        "status",
        AwaitingReplyFilter,
        "source",
        "tenant",
        "property",
        "check_in",
    ]
    search_fields = [
        "reference",
        "external_reference",
        "guest__name",
        "guest__email",
        "property__name",
    ]
    list_select_related = ["property", "guest", "tenant"]
    autocomplete_fields = ["guest"]
    date_hierarchy = "check_in"
    readonly_fields = [
        "reference",
        "status",
        "total",
        "currency",
        "cancellation_reason",
        "cancellation_fee",
        "price_lines_table",
        "answer_by",
        "created_at",
        "updated_at",
    ]
    actions = [
        "send_guest_link",  # automation's admin adds it (the email is one of its messages)
        "revoke_guest_links",
        "confirm_selected",
        "decline_selected",
        "check_in_selected",
        "check_out_selected",
        "cancel_selected",
        "no_show_selected",
    ]

    @admin.display(description="Price")
    def price_lines_table(self, obj: Booking) -> SafeString:
        """The quote's lines when the stay was last priced, and their total."""
        if not obj.price_lines:
            return format_html("{}", "-")
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td style='text-align:right'>{}</td></tr>",
            ((line["label"], line["amount"]) for line in obj.price_lines),
        )
        return format_html(
            "<table><tbody>{}</tbody><tfoot><tr><th>Total</th>"
            "<th style='text-align:right'>{} {}</th></tr></tfoot></table>",
            rows,
            obj.total,
            obj.currency,
        )

    def get_readonly_fields(self, request: HttpRequest, obj: Booking | None = None) -> list[str]:
        fields = list(self.readonly_fields)
        if obj is not None:
            fields += ["tenant", "guest", "source"]
        return fields

    def save_model(
        self, request: HttpRequest, obj: Booking, form: forms.ModelForm, change: bool
    ) -> None:
        data = form.cleaned_data
        actor = f"admin:{request.user.get_username()}"
        if not change:
            saved = services.booking_create(
                tenant=data["tenant"],
                property=data["property"],
                guest=data["guest"],
                check_in=data["check_in"],
                check_out=data["check_out"],
                guests_count=data["guests_count"],
                source=data.get("source") or "admin",
                external_reference=data.get("external_reference", ""),
                actor=actor,
                allow_past=True,
            )
            _adopt(obj, saved)
            return
        if STAY_FIELDS & set(form.changed_data):
            saved = services.booking_modify(
                booking=obj,
                check_in=data["check_in"],
                check_out=data["check_out"],
                property=data["property"],
                guests_count=data["guests_count"],
                actor=actor,
            )
            _adopt(obj, saved)
        if "external_reference" in form.changed_data:
            saved = services.booking_set_external_reference(
                booking=obj, external_reference=data["external_reference"], actor=actor
            )
            _adopt(obj, saved)

    def get_inlines(self, request: HttpRequest, obj: Booking | None) -> list[Any]:
        # Money and messages (other apps' inlines too) follow creation.
        return super().get_inlines(request, obj) if obj is not None else []

    def save_formset(self, request: HttpRequest, form: Any, formset: Any, change: bool) -> None:
        if formset.model is not GuestMessage:
            return super().save_formset(request, form, formset, change)
        # A reply is a service call (it emits message.posted, which emails the guest),
        # never a bare save; the attributes below are what the admin's history reads.
        formset.new_objects, formset.changed_objects, formset.deleted_objects = [], [], []
        for inline_form in formset.forms:
            body = (inline_form.cleaned_data or {}).get("body", "").strip()
            if inline_form.instance.pk is None and body:
                formset.new_objects.append(
                    services.guest_message_post(
                        booking=form.instance,
                        sender=MessageSender.HOST,
                        body=body,
                        author=request.user.get_username(),
                    )
                )
        return None

    @admin.action(description="Revoke the guests' private links", permissions=["change"])
    def revoke_guest_links(self, request: HttpRequest, queryset: QuerySet[Booking]) -> None:
        revoked = sum(services.guest_tokens_revoke(booking=booking) for booking in queryset)
        self.message_user(request, f"Revoked {revoked} link(s).", messages.SUCCESS)

    def _act(
        self,
        request: HttpRequest,
        queryset: QuerySet[Booking],
        service: Any,
        verb: str,
        **kwargs: Any,
    ) -> None:
        actor = f"admin:{request.user.get_username()}"
        run_for_each(
            self,
            request,
            queryset,
            lambda booking: service(booking=booking, actor=actor, **kwargs),
            refusals=(BookingError,),
            done_message=f"{verb} {{count}} booking(s).",
        )

    @admin.display(description="Answer by")
    def answer_by(self, obj: Booking) -> str:
        """A request's deadline, property-local: unanswered by then, it is declined."""
        if obj.status != BookingStatus.REQUESTED or obj.created_at is None:
            return "-"
        moment = timezone.localtime(
            obj.created_at + obj.property.request_expiry, obj.property.timezone
        )
        return f"{moment:%Y-%m-%d %H:%M}"

    # Accepting a request is confirming it (requested -> confirmed): the guest is sent
    # the confirmation, and the payment is asked for then.
    @admin.action(description="Accept selected requests (confirm)", permissions=["change"])
    def confirm_selected(self, request: HttpRequest, queryset: QuerySet[Booking]) -> None:
        self._act(request, queryset, services.booking_confirm, "Confirmed")

    @admin.action(description="Decline selected requests", permissions=["change"])
    def decline_selected(self, request: HttpRequest, queryset: QuerySet[Booking]) -> None:
        self._act(request, queryset, services.booking_decline, "Declined")

    @admin.action(description="Check in selected bookings", permissions=["change"])
    def check_in_selected(self, request: HttpRequest, queryset: QuerySet[Booking]) -> None:
        self._act(request, queryset, services.booking_check_in, "Checked in")

    @admin.action(description="Check out selected bookings", permissions=["change"])
    def check_out_selected(self, request: HttpRequest, queryset: QuerySet[Booking]) -> None:
        self._act(request, queryset, services.booking_check_out, "Checked out")

    @admin.action(description="Cancel selected bookings", permissions=["change"])
    def cancel_selected(self, request: HttpRequest, queryset: QuerySet[Booking]) -> None:
        self._act(
            request, queryset, services.booking_cancel, "Cancelled", reason="Cancelled in admin"
        )

    @admin.action(description="Mark selected as no-show", permissions=["change"])
    def no_show_selected(self, request: HttpRequest, queryset: QuerySet[Booking]) -> None:
        self._act(request, queryset, services.booking_mark_no_show, "Marked no-show")

    def get_urls(self) -> list[Any]:
        return [
            path(
                "calendar/",
                self.admin_site.admin_view(self.multi_calendar_view),
                name="bookings_multi_calendar",
            ),
            path(
                "property/<int:property_id>/calendar/",
                self.admin_site.admin_view(self.calendar_view),
                name="bookings_property_calendar",
            ),
            path(
                "<path:object_id>/answer/",
                self.admin_site.admin_view(self.answer_view),
                name="bookings_booking_answer",
            ),
            *super().get_urls(),
        ]

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        # The Accept / Decline buttons (change_form.html), for a request the role may answer.
        booking = self.get_object(request, unquote(object_id))
        answerable = (
            booking is not None
            and booking.status == BookingStatus.REQUESTED
            and self.has_change_permission(request, booking)
        )
        context = {**(extra_context or {}), "request_to_answer": answerable}
        if booking is not None and self.has_view_permission(request, booking):
            # What happened: every event of the booking and everything it caused.
            context["story"] = story(
                StorySubject(
                    model="bookings.booking",
                    object_id=booking.pk,
                    events=booking_story_events(booking),
                )
            )
        return super().change_view(request, object_id, form_url, context)

    def answer_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """POST ``decision=accept|decline``: the host's answer to a request to book."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        # Rows of the tenants where the role sees bookings: another tenant's answers 404.
        booking = self.get_object(request, unquote(object_id))
        if booking is None:
            raise Http404("No such booking.")
        if not self.has_change_permission(request, booking):
            raise PermissionDenied
        actor = f"admin:{request.user.get_username()}"
        decision = request.POST.get("decision")
        try:
            if decision == "accept":
                services.booking_confirm(booking=booking, actor=actor)
                done = "Request accepted: the guest is sent the confirmation and the payment."
            elif decision == "decline":
                services.booking_decline(booking=booking, reason=DeclineReason.HOST, actor=actor)
                done = "Request declined: the guest is told, the dates are free again."
            else:
                raise Http404("Unknown decision.")
        except BookingError as refused:
            self.message_user(request, str(refused), messages.ERROR)
        else:
            self.message_user(request, done, messages.SUCCESS)
        return HttpResponseRedirect(reverse("admin:bookings_booking_change", args=[booking.pk]))

    def calendar_view(self, request: HttpRequest, property_id: int) -> HttpResponse:
        # The grid shows bookings: only properties of the tenants where the role sees them.
        prop = (
            filter_to_tenants(Property.objects.all(), self.tenant_ids_for(request, "view"))
            .filter(pk=property_id)
            .first()
        )
        if prop is None:
            raise Http404("No such property.")
        today = date.today()
        first = month_from_query(request, today)
        previous = (first.replace(day=1) - timedelta(days=1)).replace(day=1)
        following = (first.replace(day=28) + timedelta(days=4)).replace(day=1)
        weeks = property_calendar_month(
            tenant=None, property=prop, year=first.year, month=first.month
        )
        return TemplateResponse(
            request,
            "admin/bookings/property_calendar.html",
            {
                **self.admin_site.each_context(request),
                "title": f"{prop.name}: {first:%B %Y}",
                "property": prop,
                "weeks": weeks,
                "previous": f"{previous:%Y-%m}",
                "following": f"{following:%Y-%m}",
                "opts": Booking._meta,
                "statuses": BookingStatus,
            },
        )


@admin.register(CalendarEntry)
class CalendarEntryAdmin(TenantScopedAdmin):
    list_display = ["property", "kind", "label", "start", "end", "active", "sequence", "tenant"]
    list_filter = ["kind", "active", "tenant", "property"]
    search_fields = ["label", "source_key"]
    list_select_related = ["property", "tenant"]
    readonly_fields = [
        "tenant",
        "property",
        "kind",
        "source_key",
        "booking",
        "start",
        "end",
        "active",
        "label",
        "sequence",
        "updated_at",
    ]

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # written only by the calendar handler

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class BlockAdminForm(forms.ModelForm):
    class Meta:
        model = Block
        fields = ["tenant", "property", "start", "end", "label"]

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data
        tenant, prop = (
            data.get("tenant") or getattr(self.instance, "tenant", None),
            data.get("property"),
        )
        if prop and tenant and prop.tenant_id != tenant.pk:
            self.add_error("property", "This property belongs to another tenant.")
        start, end = data.get("start"), data.get("end")
        if start and end and end <= start:
            self.add_error("end", "The block must end after it starts.")
        elif (
            prop
            and start
            and end
            and booking_conflicts(property_id=prop.pk, check_in=start, check_out=end).exists()
        ):
            raise forms.ValidationError(
                "These dates overlap a booking of this property.", code="unavailable"
            )
        return data


@admin.register(Block)
class BlockAdmin(ServiceRefusalsAsMessagesMixin, TenantScopedAdmin):
    service_refusals = (BookingError,)
    form = BlockAdminForm
    list_display = ["property", "start", "end", "label", "source", "is_active", "tenant"]
    list_filter = ["is_active", "source", "tenant", "property"]
    search_fields = ["label", "external_uid", "property__name"]
    list_select_related = ["property", "tenant"]
    date_hierarchy = "start"
    actions = ["cancel_selected"]

    def get_readonly_fields(self, request: HttpRequest, obj: Block | None = None) -> list[str]:
        return (
            ["tenant", "source", "external_uid", "is_active"]
            if obj
            else ["source", "external_uid", "is_active"]
        )

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # cancel instead: the calendar and channels follow the event

    def save_model(
        self, request: HttpRequest, obj: Block, form: forms.ModelForm, change: bool
    ) -> None:
        data, actor = form.cleaned_data, f"admin:{request.user.get_username()}"
        if change:
            saved = services.block_update(
                block=obj, start=data["start"], end=data["end"], label=data["label"], actor=actor
            )
        else:
            saved = services.block_create(
                tenant=data["tenant"],
                property=data["property"],
                start=data["start"],
                end=data["end"],
                label=data["label"],
                actor=actor,
            )
        _adopt(obj, saved)

    @admin.action(description="Cancel selected blocks", permissions=["change"])
    def cancel_selected(self, request: HttpRequest, queryset: QuerySet[Block]) -> None:
        actor = f"admin:{request.user.get_username()}"
        for block in queryset:
            services.block_cancel(block=block, actor=actor)
        self.message_user(request, f"Cancelled {queryset.count()} block(s).", messages.SUCCESS)
