"""``?month=YYYY-MM`` for the admin's month pages (calendar, statement)."""

from __future__ import annotations

import re
from datetime import date

from django.contrib import messages
from django.http import HttpRequest

# Months a page may show: wide enough for any real booking, far enough from date.min and
# date.max that "the month before" and "the month after" always exist.
FIRST_YEAR, LAST_YEAR = 1900, 2199
_MONTH = re.compile(r"^(\d{4})-(\d{1,2})$")


def month_from_query(request: HttpRequest, today: date) -> date:
    """The first day of the month asked for; this month, with a message, when it is unusable."""
    raw = request.GET.get("month", "").strip()
    if not raw:
        return today.replace(day=1)
    match = _MONTH.match(raw)
    if match:
        year, month = int(match[1]), int(match[2])
        if FIRST_YEAR <= year <= LAST_YEAR and 1 <= month <= 12:
            return date(year, month, 1)
    messages.warning(
        request,
        f"“{raw[:20]}” is not a month this page can show: use YYYY-MM between "
        f"{FIRST_YEAR}-01 and {LAST_YEAR}-12. Showing {today:%B %Y}.",
    )
    return today.replace(day=1)
