"""Admin > Bookings > Calendar: every home the user may see, two to five weeks at a time."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any
from urllib.parse import urlencode

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone

from bookings.admin.calendar_html import calendar_rows_html
from bookings.admin.months import FIRST_YEAR, LAST_YEAR
from bookings.calendar_grid import calendar_days, calendar_rows
from bookings.models import Booking
from pms.models import Property
from tenants.scoping import filter_to_tenants

WINDOWS = (14, 21, 28, 35)  # days a page may show
DEFAULT_DAYS = 21
HOMES_PER_PAGE = 100


def _start_from_query(request: HttpRequest, today: date) -> date:
    raw = request.GET.get("start", "").strip()
    if not raw:
        return today
    try:
        start = date.fromisoformat(raw)
    except ValueError:
        start = None
    if start is None or not (FIRST_YEAR <= start.year <= LAST_YEAR):
        messages.warning(
            request,
            f"“{raw[:20]}” is not a day this page can show: use YYYY-MM-DD. Showing today.",
        )
        return today
    return start


def _days_from_query(request: HttpRequest) -> int:
    try:
        days = int(request.GET.get("days", DEFAULT_DAYS))
    except ValueError:
        return DEFAULT_DAYS
    return days if days in WINDOWS else DEFAULT_DAYS


class MultiCalendarMixin:
    """The calendar of all homes, for BookingAdmin (``tenant_ids_for`` from the scoping)."""

    admin_site: Any

    def multi_calendar_view(self, request: HttpRequest) -> HttpResponse:
        if not self.has_view_permission(request):  # type: ignore[attr-defined]
            raise PermissionDenied
        today = timezone.localdate()
        start, days = _start_from_query(request, today), _days_from_query(request)
        homes = filter_to_tenants(
            Property.objects.filter(is_active=True).select_related("tenant"),
            self.tenant_ids_for(request, "view"),  # type: ignore[attr-defined]
        ).order_by("tenant__name", "name", "pk")
        search = request.GET.get("q", "").strip()[:100]
        if search:
            homes = homes.filter(name__icontains=search)
        page = Paginator(homes, HOMES_PER_PAGE).get_page(request.GET.get("page"))
        day_list = calendar_days(start, days)
        rows = calendar_rows(properties=list(page.object_list), start=start, days=days)

        def query(**changes: Any) -> str:
            params = {"start": start.isoformat(), "days": days, "q": search, **changes}
            return "?" + urlencode({k: v for k, v in params.items() if v not in ("", None)})

        return TemplateResponse(
            request,
            "admin/bookings/multi_calendar.html",
            {
                **self.admin_site.each_context(request),
                "title": "Calendar of all homes",
                "opts": Booking._meta,
                "rows": rows,
                "rows_html": calendar_rows_html(rows, start),
                "days": day_list,
                "today": today,
                "page": page,
                "windows": WINDOWS,
                "window": days,
                "search": search,
                "earlier": query(start=(start - timedelta(days=days)).isoformat()),
                "later": query(start=(start + timedelta(days=days)).isoformat()),
                "this_week": query(start=today.isoformat()),
                "query": query,
                "add_block": reverse("admin:bookings_block_add"),
                "columns": days,
            },
        )
