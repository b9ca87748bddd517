"""Messages and recurring maintenance on a real worker: tenants take turns, and a message a
guest waits for never queues behind another tenant's batch."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from automation.choices import OutboundStatus
from automation.models import MaintenancePlan, MaintenanceRequest, OutboundMessage
from automation.services import maintenance_plans_submit_due, outbound_message_queue
from automation.services.maintenance import MAINTENANCE_BATCH
from automation.services.outbound import outbound_messages_send_due
from testkit.processes import wait_until
from tests.support.pipeline import assert_pipeline_settled

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

CAP = 4  # FAIR_INFLIGHT_PER_TENANT's default


def _due(tenant, count, *, kind, prefix):
    when = datetime.now(UTC) - timedelta(minutes=1)
    OutboundMessage.objects.bulk_create(
        OutboundMessage(
            tenant=tenant,
            idempotency_key=f"{prefix}-{i}",
            kind=kind,
            recipient=f"{prefix}-{i}@example.test",
            subject=f"{prefix} {i}",
            body="x",
            status=OutboundStatus.SCHEDULED,
            send_after=when,
        )
        for i in range(count)
    )


def _arrivals(mailbox):
    return [message["to"][0] for message in mailbox.messages]


def _wait_all_sent(count, timeout=120):
    wait_until(
        lambda: OutboundMessage.objects.filter(status=OutboundStatus.SENT).count() == count,
        timeout,
        what=f"{count} messages sent",
    )


def test_the_sweep_sends_time_critical_first_and_interleaves_tenants_batches(
    live_worker, mailbox, alice, bob
):
    _due(alice.tenant, 120, kind="template:before_check_in", prefix="a-reminder")
    _due(bob.tenant, 1, kind="template:before_check_in", prefix="b-reminder")
    # A confirmation whose send was lost: the sweep finds it with the reminders.
    _due(bob.tenant, 1, kind="guest_access", prefix="b-confirmation")
    assert outbound_messages_send_due() == 122
    _wait_all_sent(122)
    order = _arrivals(mailbox)
    # The confirmation does not wait for anybody's reminders.
    assert order.index("b-confirmation-0@example.test") < 3, order[:10]
    # B's one reminder waits for at most A's share in flight and what the worker's two
    # processes were running (not for A's 120).
    assert order.index("b-reminder-0@example.test") <= CAP + 3, order[:12]
    assert len(set(order)) == 122
    assert_pipeline_settled()


def test_a_confirmation_queued_behind_another_tenants_batch_goes_first(
    live_worker, mailbox, alice, bob
):
    for i in range(150):
        outbound_message_queue(
            tenant_id=alice.tenant.pk,
            idempotency_key=f"cleaning-{i}",
            kind="cleaning_daily_list",
            recipient=f"a-cleaner-{i}@example.test",
            subject="Cleaning today",
            body="x",
        )
    wait_until(lambda: len(mailbox.messages) >= 1, 30, what="A's batch to start")
    already_sent = len(mailbox.messages)
    outbound_message_queue(
        tenant_id=bob.tenant.pk,
        idempotency_key="b-confirmation",
        kind="guest_access",
        recipient="b-guest@example.test",
        subject="Your booking",
        body="x",
    )
    _wait_all_sent(151)
    order = _arrivals(mailbox)
    # B's confirmation goes on messaging: of A's batch, only what was already admitted
    # (A's share in flight) and running could still be sent before it.
    overtaken_by = order.index("b-guest@example.test") - already_sent
    assert overtaken_by <= CAP + 2, (already_sent, order[:20])
    assert already_sent + overtaken_by < 150 - 4 * CAP, "A's batch was already done"
    assert_pipeline_settled()


def test_recurring_maintenance_takes_turns_between_tenants(live_worker, alice, bob):
    today = datetime.now(UTC).date() - timedelta(days=1)
    plans = [
        MaintenancePlan(
            tenant=alice.tenant,
            property=alice.property,
            title=f"A check {i}",
            every_days=30,
            next_due=today,
        )
        for i in range(3 * MAINTENANCE_BATCH)
    ]
    plans.append(
        MaintenancePlan(
            tenant=bob.tenant,
            property=bob.property,
            title="B boiler",
            every_days=90,
            next_due=today,
        )
    )
    MaintenancePlan.objects.bulk_create(plans)
    assert maintenance_plans_submit_due() == 2
    wait_until(
        lambda: MaintenanceRequest.objects.count() == len(plans), 120, what="every plan opened"
    )
    opened = list(
        MaintenanceRequest.objects.order_by("created_at", "pk").values_list("tenant_id", flat=True)
    )
    # Bob's one plan is opened within the first turn or two, not after A's 150.
    assert opened.index(bob.tenant.pk) <= 2 * MAINTENANCE_BATCH, opened.index(bob.tenant.pk)
    assert MaintenancePlan.objects.filter(next_due__lte=today).count() == 0
    assert_pipeline_settled()
