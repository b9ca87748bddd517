"""The messaging worker runs a pool of threads (the Procfile's -P threads): still once each.

Sixteen threads in one process, as the Procfile starts them, send a burst of guest
emails to the real SMTP sink while the session worker stops consuming ``messaging``:
every message arrives exactly once, and a redelivered send (the same message again)
sends nothing more.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.db import transaction

from automation.models import OutboundMessage
from automation.services import outbound_messages_queue
from automation.services.outbound import outbound_message_draft
from automation.tasks import send_outbound_message
from config.celery import app as celery_app
from testkit.processes import wait_until
from tests.support.servers import CeleryWorker

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]
THREADS = 16


@pytest.fixture
def threads_worker(live_worker: CeleryWorker, worker_env: dict[str, str]) -> Iterator[CeleryWorker]:
    worker = CeleryWorker(
        queues=["messaging"], env=worker_env, concurrency=THREADS, name="threads", pool="threads"
    )
    celery_app.control.cancel_consumer("messaging", destination=[live_worker.name], reply=True)
    try:
        worker.start(celery_app)
        yield worker
    finally:
        worker.stop()
        celery_app.control.add_consumer("messaging", destination=[live_worker.name], reply=True)


def test_sixteen_threads_send_each_email_once(threads_worker, mailbox, alice):
    drafts = [
        outbound_message_draft(
            tenant_id=alice.tenant.pk,
            idempotency_key=f"threads:{index}",
            kind="guest_access",  # time-critical: sent at once on messaging
            recipient=f"guest{index}@example.test",
            subject=f"Your stay {index}",
            body="Welcome.",
        )
        for index in range(60)
    ]
    with transaction.atomic():
        outbound_messages_queue(drafts)
    sent = OutboundMessage.objects.filter(status="sent")
    wait_until(lambda: sent.count() == 60, 60, what="60 emails sent")
    subjects = sorted(
        line.removeprefix("Subject: ")
        for message in mailbox.messages
        for line in str(message["data"]).splitlines()
        if line.startswith("Subject: Your stay")
    )
    assert subjects == sorted(f"Your stay {index}" for index in range(60))

    for message in OutboundMessage.objects.all()[:10]:  # redelivered sends
        send_outbound_message.apply_async(args=(message.pk,), queue="messaging")
    wait_until(lambda: "nothing to send" in threads_worker.logfile.read_text(), 30, what="no-ops")
    assert len(mailbox.messages) == 60
    log = threads_worker.logfile.read_text()
    assert "Traceback" not in log, log[-3000:]
