"""The rows of the calendar of all homes, as HTML built here rather than in the template.

A page of 100 homes over five weeks has 3,500 day cells. Through the template language
each cell cost about 20 µs (a ``{% for %}`` step, filters, ``{% if %}`` and a menu of
links per free night), so the page's time grew with its rows: 10 rows rendered in
about 40 ms, 100 in about 240 (bench/RESULTS.md, ``make bench-dashboard``). Here a
cell is one f-string over values escaped once per row, and a free night is one link
(it starts a booking there, with or without JavaScript); the page's single menu
(``#mc-menu``, multi_calendar.js) offers the booking or a block for the night clicked.
Django's admin builds its change-list rows in Python for the same reason
(``items_for_result``).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, timedelta

from django.urls import reverse
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

from bookings.calendar_grid import CalendarBar, CalendarRow


def _day_label(day: date) -> str:
    return f"{day.day} {day:%b}"  # "2 Dec", as the column headers show it


def _bar_html(bar: CalendarBar, grid_row: int, change_url: str) -> str:
    classes = ["mc-bar", "block" if bar.kind == "block" else f"src-{bar.source}", bar.status]
    if bar.continues_before:
        classes.append("before")
    if bar.continues_after:
        classes.append("after")
    if bar.conflict:
        classes.append("conflict")
    label = escape(bar.label)
    title = label + (": conflict" if bar.conflict else "")
    return (
        f'<div class="{escape(" ".join(classes))}" '
        f'style="grid-row: {grid_row}; grid-column: {bar.column + 1} / span {bar.span}" '
        f'title="{title}"><a href="{change_url}">{label}</a></div>'
    )


def calendar_rows_html(
    rows: Sequence[CalendarRow], start: date, *, first_grid_row: int = 2
) -> SafeString:
    """Every row's name, day cells and bars, in grid order (row 1 is the day headers)."""
    add_booking = reverse("admin:bookings_booking_add")
    # Reversed once with a placeholder id, then filled per bar: 100 rows have ~900 bars.
    booking_url = reverse("admin:bookings_booking_change", args=[0]).replace("/0/", "/{}/")
    block_url = reverse("admin:bookings_block_change", args=[0]).replace("/0/", "/{}/")
    home_url = reverse("admin:bookings_property_calendar", args=[0]).replace("/0/", "/{}/")
    days = max((len(row.free) for row in rows), default=0)
    # What a column's cells share, worked out once per page rather than once per cell.
    nights = [start + timedelta(days=index) for index in range(days)]
    columns = [
        (
            index + 2,  # grid column: 1 is the homes' names
            " weekend" if night.weekday() >= 5 else "",
            f"check_in={night.isoformat()}&amp;check_out={(night + timedelta(days=1)).isoformat()}",
            _day_label(night),
        )
        for index, night in enumerate(nights)
    ]
    parts: list[str] = []
    for offset, row in enumerate(rows):
        grid_row = first_grid_row + offset
        home = row.property
        name = escape(home.name)
        parts.append(
            f'<div class="mc-row" role="row" id="home-{home.pk}">'
            f'<div class="mc-name" role="rowheader" style="grid-row: {grid_row}">'
            f'<a href="{home_url.format(home.pk)}">{name}</a>'
            f"<small>{escape(home.tenant.name)}</small></div>"
        )
        book_here = f"{add_booking}?property={home.pk}&amp;"
        for (column, weekend, stay, day), free in zip(columns, row.free, strict=False):
            if free:
                parts.append(
                    f'<a class="mc-cell mc-free{weekend}" role="gridcell" '
                    f'style="grid-area: {grid_row} / {column}" href="{book_here}{stay}" '
                    f'data-day="{day}" aria-label="{day}, {name}: free">+</a>'
                )
            else:
                parts.append(
                    f'<div class="mc-cell{weekend}" role="gridcell" '
                    f'style="grid-area: {grid_row} / {column}"></div>'
                )
        for bar in row.bars:
            url = (booking_url if bar.kind == "booking" else block_url).format(bar.object_id)
            parts.append(_bar_html(bar, grid_row, url))
        parts.append("</div>")
    # Every value above is escaped or ours.
    return mark_safe("".join(parts))
