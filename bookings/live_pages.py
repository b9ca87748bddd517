"""Bookings' live pages: the calendar of all homes, a home's calendar, a booking's story."""

from __future__ import annotations

from bookings.events import BLOCK_AGGREGATE, BOOKING_AGGREGATE
from pms.live.pages import register_live_page, same
from pms.pipeline.announce import CHANNEL, CLEANING, FAILED_TASK

CALENDAR_TOPICS = (BOOKING_AGGREGATE, BLOCK_AGGREGATE, CHANNEL)

register_live_page("admin:bookings_multi_calendar", topics=CALENDAR_TOPICS, regions=("calendar",))
register_live_page(
    "admin:bookings_property_calendar",
    topics=CALENDAR_TOPICS,
    regions=("calendar",),
    match=same("property_id", "property"),
)
# The story lists the booking's events and what each caused (deliveries, messages,
# payments, cleaning, failed tasks).
register_live_page(
    "admin:bookings_booking_change",
    topics=(
        BOOKING_AGGREGATE,
        "booking_thread",
        "payment",
        "refund",
        "maintenance_request",
        CLEANING,
        FAILED_TASK,
    ),
    regions=("story",),
    match=same("object_id", "booking"),
)
