"""``manage.py ops_watchdog``: evaluate the operator alert rules in a loop (Procfile ``watchdog``).

Runs apart from beat and the workers so that "beat silent", "no consumer" and
the other alerts still go out when beat or a worker group is down. Stops
cleanly on SIGTERM or SIGINT (after the evaluation in progress).
"""

from __future__ import annotations

import signal
import threading
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from pms.monitoring.watchdog import (
    WatchdogConfigError,
    watchdog_interval,
    watchdog_run,
    watchdog_startup_grace,
)


class Command(BaseCommand):
    help = "Evaluate the operator alert rules every OPS_WATCHDOG_INTERVAL seconds and send alerts."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--interval", help="Seconds between evaluations (default: OPS_WATCHDOG_INTERVAL)."
        )
        parser.add_argument(
            "--startup-grace",
            help=(
                "Seconds after start with no evaluation (default: OPS_ALERT_STARTUP_GRACE_SECONDS)."
            ),
        )
        parser.add_argument(
            "--iterations",
            type=int,
            default=0,
            help="Stop after this many evaluations (default 0: until SIGTERM/SIGINT).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        raw = (
            options["interval"]
            if options["interval"] is not None
            else settings.OPS_WATCHDOG_INTERVAL
        )
        raw_grace = (
            options["startup_grace"]
            if options["startup_grace"] is not None
            else settings.OPS_ALERT_STARTUP_GRACE_SECONDS
        )
        try:
            interval = watchdog_interval(raw)
            grace = watchdog_startup_grace(raw_grace)
        except WatchdogConfigError as exc:
            raise CommandError(str(exc)) from None
        if options["iterations"] < 0:
            raise CommandError("--iterations must be 0 or more")
        stop = threading.Event()

        def request_stop(signum: int, frame: Any) -> None:
            stop.set()

        signal.signal(signal.SIGTERM, request_stop)
        signal.signal(signal.SIGINT, request_stop)
        self.stdout.write(f"ops watchdog: evaluating the alert rules every {interval:g}s")
        self.stdout.flush()
        done = watchdog_run(
            interval=interval,
            stop=stop,
            iterations=options["iterations"],
            startup_grace=grace,
        )
        self.stdout.write(f"ops watchdog: stopped after {done} evaluation(s)")
