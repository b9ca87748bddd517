from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from pms.pipeline.reconcile import reconcile, reconcile_until_settled


class Command(BaseCommand):
    help = (
        "Check the pipeline invariant: every event delivery applied once or visible as a "
        "failed task. Exits non-zero when anything is lost."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--tenant", type=int, help="Only this tenant id.")
        parser.add_argument(
            "--wait",
            type=float,
            default=0,
            help="Seconds to wait (running the relay) for in-flight work.",
        )
        parser.add_argument("--json", action="store_true", help="Print the counts as JSON.")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["wait"]:
            report = reconcile_until_settled(timeout=options["wait"], tenant_id=options["tenant"])
        else:
            report = reconcile(tenant_id=options["tenant"])
        if options["json"]:
            self.stdout.write(json.dumps(report.as_dict()))
        else:
            for key, value in report.as_dict().items():
                self.stdout.write(f"{key:>26}: {value}")
        if not report.ok:
            raise CommandError(
                f"invariant broken: {report.lost} deliveries lost "
                f"({report.overdue} overdue, {report.failed_without_review} failed without review, "
                f"{report.failed_review_closed} failed with the review closed but not applied, "
                f"{report.pending_without_handler} pending for a handler that no longer exists, "
                f"{report.republished_unapplied} re-published "
                f"{settings.RECONCILE_MAX_PUBLISHES}+ times and never applied, "
                f"{report.events_without_deliveries} events without deliveries)"
            )
