from __future__ import annotations

import pytest
from django.core.management import call_command
from django_celery_beat.models import PeriodicTask

from config.beat import DEFAULT_PERIODIC_TASKS


@pytest.mark.django_db
def test_default_periodic_tasks_are_created_idempotently_and_keep_a_pause():
    call_command("setup_periodic_tasks")
    relay = PeriodicTask.objects.get(name="outbox relay")
    assert relay.task == "pms.tasks.relay_outbox" and relay.interval.every == 5
    assert relay.expire_seconds < relay.interval.every  # no pile-up after downtime
    relay.enabled = False
    relay.save()
    call_command("setup_periodic_tasks")
    assert PeriodicTask.objects.filter(
        name__in=[s.name for s in DEFAULT_PERIODIC_TASKS]
    ).count() == len(DEFAULT_PERIODIC_TASKS)
    assert not PeriodicTask.objects.get(name="outbox relay").enabled
