"""``manage.py outbox_publisher``: send new deliveries' messages (Procfile ``publisher``).

Listens for the ``NOTIFY`` every emitting transaction sends on commit
(``OUTBOX_PUBLISH=notify``) and publishes what nobody has published yet
(pms.pipeline.publisher). Several may run; each claims rows the others do not.
Stops cleanly on SIGTERM or SIGINT, after the batch in progress.
"""

from __future__ import annotations

import importlib
import signal
import threading
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from pms.pipeline.publisher import run_publisher
from pms.pipeline.publishing import NOTIFY_MODE


class Command(BaseCommand):
    help = "Publish new outbox deliveries as PostgreSQL notifies their commit."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--poll",
            type=float,
            default=1.0,
            help="Seconds between passes when no notification arrives (default 1).",
        )
        parser.add_argument(
            "--include",
            action="append",
            default=[],
            help="Import this module first (its event handlers), as `celery worker --include`.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if settings.OUTBOX_PUBLISH != NOTIFY_MODE:
            raise CommandError(
                f"OUTBOX_PUBLISH is {settings.OUTBOX_PUBLISH!r}: the emitting processes publish "
                "after commit; the publisher runs with OUTBOX_PUBLISH=notify"
            )
        if not options["poll"] > 0:
            raise CommandError("--poll must be a positive number of seconds")
        for module in options["include"]:
            try:
                importlib.import_module(module)
            except ImportError as exc:
                raise CommandError(f"--include {module}: {exc}") from exc
        stop = threading.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop.set())
        self.stdout.write("outbox publisher: started")
        run_publisher(stop, poll_seconds=options["poll"])
        self.stdout.write("outbox publisher: stopped")
