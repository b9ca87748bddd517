"""The guest pages: server-rendered over the same services as the API and the admin.

Every page answers for one booking, the one the session's link opened (``access``);
anything else gets the same "this link does not work" page, never a hint that another
booking exists. Writes are POST with Django's CSRF check, then a redirect.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.http import HttpRequest, HttpResponse, HttpResponseBase, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.translation import gettext as _
from django.views import View

from automation.choices import ReportedBy
from automation.services import MaintenanceError, maintenance_request_create
from bookings.choices import (
    MODIFIABLE_STATUSES,
    TRANSITIONS,
    BookingStatus,
    MessageSender,
    PaymentStatus,
)
from bookings.errors import BookingError
from bookings.models import Booking
from bookings.pricing import lines_with_retained
from bookings.services import (
    booking_cancel,
    booking_cancel_preview,
    booking_change_preview,
    booking_modify,
    guest_may_change,
    guest_message_post,
)
from bookings.services.payments import PAID_HERE_SOURCES
from guestportal import limits, texts
from guestportal.access import link_open, session_booking
from guestportal.forms import ChangeStayForm, MessageForm, ReportForm
from pms.pipeline.log_context import bind_tenant

REFUSED = "guestportal/refused.html"
INSTRUCTIONS_STATUSES = (BookingStatus.CONFIRMED, BookingStatus.CHECKED_IN)


class GuestPage(View):
    """A page about the booking the session may see, in the guest's language."""

    template_name = ""
    booking: Booking

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        language = translation.get_language_from_request(request)
        with translation.override(language):
            response = self._dispatch(request, *args, **kwargs)
        response.headers["Content-Language"] = language
        # No address of these pages reaches another site (same-origin, not no-referrer:
        # with no-referrer Chromium sends "Origin: null" on POST, which CSRF refuses).
        response.headers["Referrer-Policy"] = "same-origin"
        response.headers["Cache-Control"] = "private, no-store"
        response.headers["Vary"] = "Cookie, Accept-Language"
        return response

    def _dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        reference = kwargs["reference"]
        raw_token = request.GET.get("token")
        if raw_token is not None:
            if link_open(request, reference, raw_token) is None:
                return self.link_not_working(request)
            return HttpResponseRedirect(request.path)  # the token leaves the address bar
        booking = session_booking(request, reference)
        if booking is None:
            return self.link_not_working(request)
        bind_tenant(booking.tenant_id)
        self.booking = booking
        if request.method == "POST":
            if limits.body_too_large(request):
                return self.page(request, 413, template=REFUSED, too_large=True)
            if limits.posts_exhausted(reference):
                return self.page(request, 429, template=REFUSED, too_many=True)
        return super().dispatch(request, *args, **kwargs)

    def link_not_working(self, request: HttpRequest) -> HttpResponse:
        return render(request, "guestportal/link_not_working.html", status=403)

    def page(
        self, request: HttpRequest, status: int = 200, template: str = "", **context: Any
    ) -> HttpResponse:
        booking = self.booking
        here = booking.source in PAID_HERE_SOURCES  # a channel's stay is changed there
        return render(
            request,
            template or self.template_name,
            {
                "booking": booking,
                "property": booking.property,
                "status_text": texts.STATUS.get(booking.status, booking.get_status_display()),
                "can_change": here and booking.status in MODIFIABLE_STATUSES,
                "can_cancel": here and BookingStatus.CANCELLED in TRANSITIONS[booking.status],
                **context,
            },
            status=status,
        )

    def back_to_booking(self) -> HttpResponse:
        return redirect(reverse("guest:booking", args=[self.booking.reference]))


class BookingPage(GuestPage):
    template_name = "guestportal/booking.html"

    def get(self, request: HttpRequest, reference: str) -> HttpResponse:
        booking = self.booking
        prop = booking.property
        release_on = booking.check_in - timedelta(days=settings.CHECK_IN_INSTRUCTIONS_DAYS_BEFORE)
        today = timezone.localdate(timezone=prop.timezone)
        payments = list(booking.payments.order_by("created_at"))
        return self.page(
            request,
            lines=texts.price_lines(booking),
            pending=[
                (payment, texts.PAYMENT_STATUS[payment.status])
                for payment in payments
                if payment.status == PaymentStatus.PENDING
            ],
            settled=[
                (payment, texts.PAYMENT_STATUS.get(payment.status, payment.status))
                for payment in payments
                if payment.status != PaymentStatus.PENDING
            ],
            refunds=[
                (refund, texts.REFUND_STATUS.get(refund.status, refund.status))
                for refund in booking.refunds.order_by("created_at")
            ],
            bank_account=settings.PAYMENT_BANK_ACCOUNT,
            show_instructions=(
                booking.status in INSTRUCTIONS_STATUSES
                and today >= release_on
                and bool(prop.check_in_instructions)
            ),
            instructions_from=release_on if booking.status in INSTRUCTIONS_STATUSES else None,
            message_count=booking.messages.count(),
        )


class CancelPage(GuestPage):
    """The refund the policy gives, shown before the guest confirms."""

    template_name = "guestportal/cancel.html"

    def get(self, request: HttpRequest, reference: str) -> HttpResponse:
        try:
            preview = booking_cancel_preview(booking=self.booking)
        except BookingError as exc:
            messages.error(request, texts.error_text(exc))
            return self.back_to_booking()
        return self.page(request, preview=preview)

    def post(self, request: HttpRequest, reference: str) -> HttpResponse:
        try:
            guest_may_change(self.booking)
            booking_cancel(
                booking=self.booking, reason="cancelled by the guest", actor=f"guest:{reference}"
            )
        except BookingError as exc:
            messages.error(request, texts.error_text(exc))
            return self.back_to_booking()
        messages.success(request, _("Your booking is cancelled. We have emailed you the details."))
        return self.back_to_booking()


class ChangePage(GuestPage):
    """New dates or party size: the new price first, then the guest confirms it."""

    template_name = "guestportal/change.html"

    def get(self, request: HttpRequest, reference: str) -> HttpResponse:
        try:
            guest_may_change(self.booking)
        except BookingError as exc:
            messages.error(request, texts.error_text(exc))
            return self.back_to_booking()
        if self.booking.status not in MODIFIABLE_STATUSES:
            messages.error(request, str(texts.ERRORS["not_modifiable"]))
            return self.back_to_booking()
        form = ChangeStayForm(
            initial={
                "check_in": self.booking.check_in,
                "check_out": self.booking.check_out,
                "guests": self.booking.guests_count,
            }
        )
        return self.page(request, form=form)

    def post(self, request: HttpRequest, reference: str) -> HttpResponse:
        form = ChangeStayForm(request.POST)
        if not form.is_valid():
            return self.page(request, form=form, status=400)
        data = form.cleaned_data
        stay = {
            "check_in": data["check_in"],
            "check_out": data["check_out"],
            "guests_count": data["guests"],
        }
        try:
            preview = booking_change_preview(booking=self.booking, **stay)
        except BookingError as exc:
            form.add_error(_form_field(exc), texts.error_text(exc))
            return self.page(request, form=form, status=400)
        confirmed = "confirm" in request.POST
        if confirmed and request.POST.get("expected_total") == str(preview.total):
            try:
                booking_modify(
                    booking=self.booking, actor=f"guest:{reference}", under_policy=True, **stay
                )
            except BookingError as exc:
                form.add_error(_form_field(exc), texts.error_text(exc))
                return self.page(request, form=form, status=400)
            messages.success(request, _("Your stay is changed. We have emailed you the details."))
            return self.back_to_booking()
        return self.page(
            request,
            form=form,
            preview=preview,
            lines=texts.line_rows(lines_with_retained(preview.quote, preview.retained)),
            price_changed=confirmed,  # confirmed an older price: show the new one first
        )


class MessagesPage(GuestPage):
    template_name = "guestportal/messages.html"

    def get(self, request: HttpRequest, reference: str) -> HttpResponse:
        return self._thread(request, MessageForm())

    def post(self, request: HttpRequest, reference: str) -> HttpResponse:
        form = MessageForm(request.POST)
        if form.is_valid():
            try:
                guest_message_post(
                    booking=self.booking, sender=MessageSender.GUEST, body=form.cleaned_data["body"]
                )
            except BookingError as exc:
                form.add_error("body", texts.error_text(exc))
            else:
                messages.success(request, _("Sent. The host answers here and by email."))
                return redirect(reverse("guest:messages", args=[reference]))
        return self._thread(request, form, status=400)

    def _thread(self, request: HttpRequest, form: MessageForm, status: int = 200) -> HttpResponse:
        thread = list(self.booking.messages.order_by("created_at", "pk"))
        return self.page(request, status=status, thread=thread, form=form)


class ReportPage(GuestPage):
    """A problem at the home, with a photo: it becomes a maintenance request for the host."""

    template_name = "guestportal/report.html"

    def get(self, request: HttpRequest, reference: str) -> HttpResponse:
        return self.page(request, form=ReportForm())

    def post(self, request: HttpRequest, reference: str) -> HttpResponse:
        form = ReportForm(request.POST, request.FILES)
        if not form.is_valid():
            return self.page(request, form=form, status=400)
        data = form.cleaned_data
        try:
            maintenance_request_create(
                property=self.booking.property,
                booking=self.booking,
                title=data["title"],
                description=data["description"],
                priority=data["priority"],
                reported_by=ReportedBy.GUEST,
                photo=data["photo"] or None,
                actor=f"guest:{reference}",
            )
        except MaintenanceError as exc:
            form.add_error(None, exc.message)
            return self.page(request, form=form, status=400)
        messages.success(request, _("Thank you: the host has your report."))
        return self.back_to_booking()


def _form_field(exc: BookingError) -> str | None:
    fields = {"check_in": "check_in", "check_out": "check_out", "guests_count": "guests"}
    return fields.get(exc.field or "")
