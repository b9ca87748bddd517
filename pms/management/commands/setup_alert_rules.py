from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from pms.monitoring.alerts import alert_rules_setup
from pms.monitoring.operators import OPERATORS_GROUP, operators_group_sync


class Command(BaseCommand):
    help = (
        "Create the default operator alert rules from settings and the operators group "
        "(idempotent; keeps edits)."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        for rule, created in alert_rules_setup():
            if options["verbosity"] >= 1:
                self.stdout.write(f"{'created' if created else 'kept'}: {rule}")
        operators_group_sync()
        if options["verbosity"] >= 1:
            self.stdout.write(f"group {OPERATORS_GROUP!r}: queue health and alerts")
