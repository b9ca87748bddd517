"""Bookings' panels on the manager's dashboard: who arrives and leaves, who owes, who waits."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db.models import Q, QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone

from bookings.choices import BookingStatus, PaymentStatus
from bookings.models import Booking, Payment
from bookings.selectors import bookings_awaiting_reply
from pms.dashboard import (
    ROWS_PER_PANEL,
    DashboardDay,
    DashboardPanel,
    DashboardRow,
    changelist_url,
    dashboard_panel,
)
from tenants.scoping import scope_queryset

STAYING = (BookingStatus.REQUESTED, BookingStatus.CONFIRMED, BookingStatus.CHECKED_IN)


def _booking_url(booking_id: int) -> str:
    return reverse("admin:bookings_booking_change", args=[booking_id])


def _when(day: object, dash: DashboardDay) -> str:
    return "today" if day == dash.today else "tomorrow"


def _scoped(request: HttpRequest, queryset: QuerySet[Booking]) -> QuerySet[Booking] | None:
    if not request.user.has_perm("bookings.view_booking"):
        return None
    return scope_queryset(queryset, request.user, perms=["bookings.view_booking"])


def _movements(
    request: HttpRequest, dash: DashboardDay, *, field: str, key: str, title: str
) -> DashboardPanel | None:
    days = [dash.today, dash.tomorrow]
    bookings = _scoped(
        request,
        Booking.objects.filter(**{f"{field}__in": days}, status__in=STAYING)
        .select_related("guest", "property")
        .order_by(field, "property__name"),
    )
    if bookings is None:
        return None
    rows = [
        DashboardRow(
            label=f"{booking.guest.name} · {booking.property.name}",
            detail=f"{_when(getattr(booking, field), dash)} · {_count(booking.nights, 'night')} · "
            f"{_count(booking.guests_count, 'guest')}"
            + (" · awaiting your answer" if booking.status == BookingStatus.REQUESTED else ""),
            url=_booking_url(booking.pk),
            tone="warn" if booking.status == BookingStatus.REQUESTED else "",
        )
        for booking in bookings[:ROWS_PER_PANEL]
    ]
    return DashboardPanel(
        key=key,
        title=title,
        count=bookings.count(),
        rows=rows,
        link=changelist_url(
            "bookings.booking",
            **{f"{field}__gte": dash.today.isoformat(), f"{field}__lte": dash.tomorrow.isoformat()},
        ),
        empty="None today or tomorrow.",
    )


@dashboard_panel("requests", order=5)
def requests_to_answer(request: HttpRequest, dash: DashboardDay) -> DashboardPanel | None:
    """Requests to book the host has not answered: declined automatically at their deadline."""
    waiting = _scoped(
        request,
        Booking.objects.filter(status=BookingStatus.REQUESTED)
        .select_related("guest", "property")
        .order_by("created_at"),
    )
    if waiting is None:
        return None
    now = timezone.now()
    rows = []
    for booking in waiting[:ROWS_PER_PANEL]:
        deadline = booking.created_at + booking.property.request_expiry
        rows.append(
            DashboardRow(
                label=f"{booking.guest.name} · {booking.property.name}",
                detail=f"{booking.check_in} to {booking.check_out} · answer within "
                f"{_age(max(deadline - now, timedelta(0)))}",
                url=_booking_url(booking.pk),
                tone="bad" if deadline - now < timedelta(hours=2) else "warn",
            )
        )
    return DashboardPanel(
        key="requests",
        title="Requests to answer",
        count=waiting.count(),
        rows=rows,
        link=changelist_url("bookings.booking", awaiting="yes"),
        tone="warn",
        empty="No request waits for your answer.",
    )


@dashboard_panel("arrivals", order=10)
def arrivals(request: HttpRequest, dash: DashboardDay) -> DashboardPanel | None:
    return _movements(request, dash, field="check_in", key="arrivals", title="Arrivals")


@dashboard_panel("departures", order=20)
def departures(request: HttpRequest, dash: DashboardDay) -> DashboardPanel | None:
    return _movements(request, dash, field="check_out", key="departures", title="Departures")


@dashboard_panel("messages", order=50)
def awaiting_reply(request: HttpRequest, dash: DashboardDay) -> DashboardPanel | None:
    """Bookings whose last message is the guest's: nobody has answered it yet."""
    if not request.user.has_perm("bookings.view_guestmessage"):
        return None
    waiting = scope_queryset(
        bookings_awaiting_reply().select_related("guest", "property"),
        request.user,
        perms=["bookings.view_guestmessage"],
    )
    now = timezone.now()
    rows = [
        DashboardRow(
            label=f"{booking.guest.name} · {booking.property.name}",
            detail=f"waiting {_age(now - booking.awaiting_reply_since)}: "
            f"{(booking.last_guest_message or '')[:80]}",
            url=_booking_url(booking.pk),
            tone="bad" if now - booking.awaiting_reply_since > timedelta(hours=12) else "warn",
        )
        for booking in waiting[:ROWS_PER_PANEL]
    ]
    return DashboardPanel(
        key="messages",
        title="Guests awaiting a reply",
        count=waiting.count(),
        rows=rows,
        link=changelist_url("bookings.booking", awaiting_reply="yes"),
        tone="warn",
        empty="Every guest has an answer.",
    )


@dashboard_panel("overdue_payments", order=60)
def overdue_payments(request: HttpRequest, dash: DashboardDay) -> DashboardPanel | None:
    """Payments still pending after PAYMENT_OVERDUE_DAYS, or with arrival within a week."""
    if not request.user.has_perm("bookings.view_payment"):
        return None
    asked_before = timezone.now() - timedelta(days=settings.PAYMENT_OVERDUE_DAYS)
    overdue = scope_queryset(
        Payment.objects.filter(status=PaymentStatus.PENDING)
        .filter(
            Q(created_at__lt=asked_before)
            | Q(booking__check_in__lte=dash.today + timedelta(days=7))
        )
        .exclude(booking__status=BookingStatus.CANCELLED)
        .select_related("booking__guest", "booking__property")
        .order_by("booking__check_in"),
        request.user,
        perms=["bookings.view_payment"],
    )
    rows = [
        DashboardRow(
            label=f"{payment.amount} {payment.currency} · {payment.booking.guest.name}",
            detail=f"{payment.booking.property.name} · arrives {payment.booking.check_in} · "
            f"asked {payment.created_at:%Y-%m-%d}",
            url=reverse("admin:bookings_payment_change", args=[payment.pk]),
            tone="bad" if payment.booking.check_in <= dash.tomorrow else "warn",
        )
        for payment in overdue[:ROWS_PER_PANEL]
    ]
    return DashboardPanel(
        key="overdue_payments",
        title="Overdue payments",
        count=overdue.count(),
        rows=rows,
        link=changelist_url("bookings.payment", status=PaymentStatus.PENDING),
        tone="bad",
        empty="Nobody owes a late payment.",
    )


def _count(count: int, noun: str) -> str:
    return f"{count} {noun}" + ("" if count == 1 else "s")


def _age(delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    if minutes < 60:
        return f"{minutes} min"
    if minutes < 48 * 60:
        return f"{minutes // 60} h"
    return f"{minutes // 1440} days"
