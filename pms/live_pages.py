"""The kernel's live pages: the dashboard, the failed-task list and the queue-health page."""

from __future__ import annotations

from pms.live.pages import register_live_page
from pms.pipeline.announce import CHANNEL, CLEANING, FAILED_TASK, QUEUES

# Every kind of change some dashboard panel shows (each app's dashboard.py).
DASHBOARD_TOPICS = (
    "booking",
    "block",
    "payment",
    "refund",
    "booking_thread",
    "maintenance_request",
    CLEANING,
    CHANNEL,
    FAILED_TASK,
)

register_live_page("admin:index", topics=DASHBOARD_TOPICS, regions=("dashboard",))
register_live_page(
    "admin:pms_failedtask_changelist", topics=(FAILED_TASK,), regions=("failed-tasks",)
)
# Depth, oldest age and workers are read from the broker as the page renders: re-read
# every few seconds while it is open, and at once when a sample or a failure lands.
register_live_page(
    "admin:pms_queuesample_changelist",
    topics=(QUEUES, FAILED_TASK),
    regions=("queue-health",),
    refresh_seconds=5.0,
)
