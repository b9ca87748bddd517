"""Error classes that decide whether a task retries.

Transient: the same call may succeed later (database or broker hiccup, timeout,
remote 5xx/429). Permanent: retrying cannot help (bad data, a row that breaks a
rule); it goes straight to FailedTask.
"""

from __future__ import annotations

import socket

from django.db import InterfaceError, OperationalError
from kombu.exceptions import OperationalError as BrokerOperationalError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError


class TransientError(Exception):
    """Raise for a failure worth retrying (e.g. a remote 5xx or 429)."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PermanentError(Exception):
    """Raise for a failure that retrying cannot fix; the task goes to manual review."""


class PoisonMessageError(PermanentError):
    """The same message started too often without finishing (the worker died each time)."""


TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    TransientError,
    OperationalError,
    InterfaceError,
    BrokerOperationalError,
    RedisConnectionError,
    RedisTimeoutError,
    ConnectionError,
    TimeoutError,
    socket.timeout,
)
