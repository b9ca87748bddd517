"""Cleaning: scheduled at check-out local time, assigned by availability and load, listed daily."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
import time_machine
from django.db import transaction

from automation.choices import CleaningStatus
from automation.models import OutboundMessage
from automation.services import cleaning_runs_claim_due, cleaning_task_reconcile
from bookings.services import booking_cancel, booking_modify
from tests.automation.conftest import book, make_cleaner
from tests.factories import PASSWORD, PropertyFactory


def _reconcile(booking):
    with transaction.atomic():
        return cleaning_task_reconcile(booking_id=booking.pk)


@pytest.mark.django_db
def test_cleanings_go_to_free_cleaners_by_load_in_the_property_time_zone(alice, future):
    ana, ben = make_cleaner(alice, "ana"), make_cleaner(alice, "ben")
    alice.property.timezone = "America/New_York"
    alice.property.save()
    other = PropertyFactory.create(tenant=alice.tenant, timezone="America/New_York")
    first = _reconcile(book(alice, future, future + timedelta(days=2)))
    second = _reconcile(book(alice, future, future + timedelta(days=2), prop=other))
    assert {first.assignee, second.assignee} == {ana, ben}  # same window: not the same person
    local_start = first.window_start.astimezone(alice.property.timezone)
    assert (local_start.date(), local_start.hour) == (future + timedelta(days=2), 11)
    assert not first.same_day_turnover
    notices = OutboundMessage.objects.filter(kind="cleaning_assigned")
    assert sorted(notices.values_list("recipient", flat=True)) == sorted([ana.email, ben.email])


@pytest.mark.django_db
def test_next_check_in_flags_turnover_date_change_moves_and_cancel_cancels(alice, future):
    make_cleaner(alice, "ana")
    stay = book(alice, future, future + timedelta(days=2))
    task = _reconcile(stay)
    arrival = book(alice, future + timedelta(days=2), future + timedelta(days=4))
    _reconcile(arrival)
    task.refresh_from_db()
    assert task.same_day_turnover
    assert task.window_end.astimezone(alice.property.timezone).hour == 15  # next check-in
    with transaction.atomic():
        stay = booking_modify(booking=stay, check_in=future - timedelta(days=3), check_out=future)
    _reconcile(stay)
    task.refresh_from_db()
    assert task.scheduled_for == future and not task.same_day_turnover
    assert OutboundMessage.objects.filter(kind="cleaning_assigned").count() == 3
    with transaction.atomic():
        booking_cancel(booking=stay)
    _reconcile(stay)
    _reconcile(stay)
    task.refresh_from_db()
    assert task.status == CleaningStatus.CANCELLED
    assert OutboundMessage.objects.filter(kind="cleaning_cancelled").count() == 1


@pytest.mark.parametrize("extra_bookings", [2, 12])
@pytest.mark.django_db
def test_daily_run_sends_each_cleaner_their_list_once_after_the_local_hour(
    alice, django_assert_num_queries, extra_bookings, settings
):
    settings.CLEANING_RUN_LOCAL_HOUR = 7
    make_cleaner(alice, "ana")
    alice.property.timezone = "Asia/Tokyo"
    alice.property.save()
    day = date(2026, 5, 10)
    with time_machine.travel(datetime(2026, 5, 1, tzinfo=UTC), tick=False):
        _reconcile(book(alice, day - timedelta(days=2), day))
        _reconcile(book(alice, day, day + timedelta(days=2)))
        for i in range(extra_bookings):
            start = day + timedelta(days=5 + 3 * i)
            _reconcile(book(alice, start, start + timedelta(days=2)))
    with time_machine.travel(datetime(2026, 5, 9, 21, 59, tzinfo=UTC), tick=False):
        assert cleaning_runs_claim_due() == []  # 06:59 in Tokyo
    with time_machine.travel(datetime(2026, 5, 9, 22, 1, tzinfo=UTC), tick=False):
        # Savepoint, properties, INSERT claim, tasks, arrivals, the lists' INSERT, the
        # sends as fair work (1 insert: the messages are new), release.
        with django_assert_num_queries(8):
            assert cleaning_runs_claim_due() == [(alice.property.pk, day)]
        assert cleaning_runs_claim_due() == []  # a second sweep or beat claims nothing
    lists = OutboundMessage.objects.filter(kind="cleaning_daily_list")
    assert lists.count() == 1
    assert "same-day turnover" in lists[0].subject and "SAME-DAY TURNOVER" in lists[0].body


def _statements_of_a_daily_run(world, homes: int, cleaners: int, stays_per_home: int) -> int:
    """The cleaning run's statements on a day of ``homes`` x ``stays_per_home`` turnovers."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    for index in range(cleaners):
        make_cleaner(world, f"c{homes}-{index}")
    day = date(2026, 5, 10)
    props = [PropertyFactory.create(tenant=world.tenant) for _ in range(homes)]
    with time_machine.travel(datetime(2026, 5, 1, tzinfo=UTC), tick=False):
        for prop in props:
            for stay in range(stays_per_home):  # back to back: each cleaning a turnover
                start = day - timedelta(days=2 * (stays_per_home - stay))
                _reconcile(book(world, start, start + timedelta(days=2), prop=prop))
            _reconcile(book(world, day, day + timedelta(days=1), prop=prop))
    # Half the turnover flags stale (as if the arrival was booked after the task was
    # made), so the run has flags to correct both ways.
    from automation.models import CleaningTask

    stale = CleaningTask.objects.filter(property__in=props, scheduled_for=day)
    for task in stale[: max(1, homes // 2)]:
        CleaningTask.objects.filter(pk=task.pk).update(same_day_turnover=False)
    CleaningTask.objects.filter(property__in=props).exclude(scheduled_for=day).update(
        same_day_turnover=True
    )
    with (
        time_machine.travel(datetime(2026, 5, 10, 12, tzinfo=UTC), tick=False),
        CaptureQueriesContext(connection) as queries,
    ):
        claimed = cleaning_runs_claim_due()
    assert len(claimed) >= homes
    assert OutboundMessage.objects.filter(kind="cleaning_daily_list").exists()
    return len(queries)


@pytest.mark.django_db
def test_the_daily_run_costs_the_same_statements_for_one_home_or_twelve(alice, bob):
    """Set-based: the flags, the lists and their sends do not add a statement per home,
    task or cleaner (issue 18 measured 1,338 statements at 1,000 homes)."""
    one = _statements_of_a_daily_run(alice, homes=1, cleaners=1, stays_per_home=1)
    twelve = _statements_of_a_daily_run(bob, homes=12, cleaners=4, stays_per_home=3)
    assert one == twelve <= 10


@pytest.mark.django_db
def test_cleaners_see_and_complete_only_their_own_tasks_in_the_admin(alice, bob, future, client):
    ana, ben = make_cleaner(alice, "ana"), make_cleaner(alice, "ben")
    mine = _reconcile(book(alice, future, future + timedelta(days=2)))
    other = PropertyFactory.create(tenant=alice.tenant)
    theirs = _reconcile(book(alice, future, future + timedelta(days=2), prop=other))
    if mine.assignee != ana:
        mine, theirs = theirs, mine
    make_cleaner(bob, "cy")
    bobs = _reconcile(book(bob, future, future + timedelta(days=2)))
    client.login(username=ana.username, password=PASSWORD)
    page = client.get("/admin/automation/cleaningtask/").content.decode()
    assert mine.booking.reference in page
    assert theirs.booking.reference not in page and bobs.booking.reference not in page
    assert client.get(f"/admin/automation/cleaningtask/{theirs.pk}/change/").status_code == 404
    client.post(
        "/admin/automation/cleaningtask/",
        {"action": "mark_done", "_selected_action": [mine.pk, theirs.pk]},
    )
    mine.refresh_from_db()
    theirs.refresh_from_db()
    assert mine.status == CleaningStatus.DONE
    # The other cleaner's task: still theirs, still to do, as ana's action found it.
    assert (theirs.assignee, theirs.status) == (ben, CleaningStatus.SCHEDULED)
    assert theirs.done_at is None and mine.done_at is not None
    client.login(username=alice.manager.username, password=PASSWORD)
    page = client.get("/admin/automation/cleaningtask/").content.decode()
    assert mine.booking.reference in page and theirs.booking.reference in page
    assert bobs.booking.reference not in page
