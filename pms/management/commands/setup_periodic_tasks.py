from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from config.beat import DEFAULT_PERIODIC_TASKS


class Command(BaseCommand):
    help = "Create or update the default periodic tasks (idempotent; keeps staff's enable/pause)."

    def handle(self, *args: Any, **options: Any) -> None:
        for spec in DEFAULT_PERIODIC_TASKS:
            schedule, _ = IntervalSchedule.objects.get_or_create(
                every=spec.every_seconds, period=IntervalSchedule.SECONDS
            )
            _, created = PeriodicTask.objects.update_or_create(
                name=spec.name,
                defaults={
                    "task": spec.task,
                    "interval": schedule,
                    "expire_seconds": spec.expires_seconds,
                    "description": spec.description,
                },
            )
            self.stdout.write(
                f"{'created' if created else 'updated'}: {spec.name} every {spec.every_seconds}s"
            )
