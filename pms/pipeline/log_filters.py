"""Quiet housekeeping: frequent periodic passes that did nothing log at DEBUG, not INFO.

Beat sends the outbox relay and the fair dispatcher every 5 s; at INFO each pass
wrote three lines (beat's "Sending due task", the worker's "received" and
"succeeded ...: 0"), drowning what matters. :class:`QuietHousekeeping` is
installed (Django's ``LOGGING``) on Celery's three loggers that write them and,
for the declared tasks only:

- beat's "Scheduler: Sending due task" and the worker's "Task ... received" go to
  DEBUG (neither knows yet whether the pass will find work);
- "Task ... succeeded in ...: <result>" goes to DEBUG when the result says
  nothing was done (0, None, an empty collection, a mapping of such values) and
  stays at INFO otherwise, so a pass that did something still says what it did;
- for ``routine`` tasks, whose every pass does the same one thing (the
  queue-health sampler stores one row each 30 s), all three lines go to DEBUG.

A demoted record is relabelled DEBUG and dropped unless its logger is enabled for
DEBUG (``LOG_LEVEL=DEBUG`` shows them again). Failures and retries are never
touched: they use other messages.
"""

from __future__ import annotations

import ast
import logging
from collections.abc import Iterable, Mapping
from typing import Any

BEAT_SENDING = "Scheduler: Sending due task"
WORKER_RECEIVED = "Task %(name)s[%(id)s] received"
WORKER_SUCCEEDED = "Task %(name)s[%(id)s] succeeded in"


def did_nothing(value: Any) -> bool:
    """A task result that says the pass found nothing to do."""
    if value is None or value is False:
        return True
    if isinstance(value, int | float):
        return value == 0
    if isinstance(value, Mapping):
        return all(did_nothing(item) for item in value.values())
    if isinstance(value, list | tuple | set | frozenset):
        return all(did_nothing(item) for item in value)
    return False


def _result_did_nothing(text: object) -> bool:
    """Celery logs the result as its repr (possibly shortened): judge only what parses."""
    try:
        return did_nothing(ast.literal_eval(str(text)))
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return False


class QuietHousekeeping(logging.Filter):
    def __init__(self, tasks: Iterable[str] = (), routine: Iterable[str] = ()) -> None:
        super().__init__()
        self.routine = frozenset(routine)
        self.tasks = frozenset(tasks) | self.routine

    def _demote(self, record: logging.LogRecord) -> bool:
        message = str(record.msg)
        args = record.args
        if message.startswith(BEAT_SENDING):
            # info("Scheduler: Sending due task %s (%s)", entry.name, entry.task)
            return isinstance(args, tuple) and len(args) == 2 and args[1] in self.tasks
        if not isinstance(args, Mapping) or args.get("name") not in self.tasks:
            return False
        if message.startswith(WORKER_RECEIVED):
            return True
        if message.startswith(WORKER_SUCCEEDED):
            return args["name"] in self.routine or _result_did_nothing(args.get("return_value"))
        return False

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno != logging.INFO or not self._demote(record):
            return True
        record.levelno = logging.DEBUG
        record.levelname = logging.getLevelName(logging.DEBUG)
        return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)
