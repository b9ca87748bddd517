"""The handler registry: which handler reacts to which event type, on which queue.

Handlers are declared next to their domain code with ``@event_handler`` and
collected when each app's ``handlers`` module is imported (see PmsConfig.ready).
Each handler becomes one Celery task named ``handlers.<handler name>``, so
Flower, the failed-task list and the queue-health page show handlers by name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from config.queues import QUEUE_NAMES
from pms.pipeline.delivery import make_handler_task

if TYPE_CHECKING:
    from celery import Task

    from pms.models import DomainEvent

HandlerFunc = Callable[["DomainEvent"], None]


@dataclass
class Handler:
    name: str
    queue: str
    event_types: frozenset[str]
    func: HandlerFunc
    task: Task[Any, Any] | None = field(default=None, repr=False)

    @property
    def task_name(self) -> str:
        return f"handlers.{self.name}"


_handlers: dict[str, Handler] = {}
_by_event_type: dict[str, list[Handler]] = {}


def event_handler(
    *event_types: str, queue: str, name: str | None = None
) -> Callable[[HandlerFunc], HandlerFunc]:
    """Subscribe the decorated function to ``event_types``; it runs on ``queue``.

    The function receives the DomainEvent and runs inside the transaction that
    marks its delivery done, so its database effect and the ledger row commit
    together. It must not do network I/O (use a two-step handler for that).
    """
    if queue not in QUEUE_NAMES:
        raise ValueError(f"queue {queue!r} is not declared in config.queues")

    def decorator(func: HandlerFunc) -> HandlerFunc:
        handler_name = name or f"{func.__module__.split('.')[0]}.{func.__name__}"
        if handler_name in _handlers:
            raise ValueError(f"handler {handler_name!r} registered twice")
        handler = Handler(handler_name, queue, frozenset(event_types), func)
        handler.task = make_handler_task(handler)
        _handlers[handler_name] = handler
        for event_type in event_types:
            _by_event_type.setdefault(event_type, []).append(handler)
        return func

    return decorator


def handlers_for(event_type: str) -> list[Handler]:
    return _by_event_type.get(event_type, [])


def get_handler(name: str) -> Handler | None:
    return _handlers.get(name)


def all_handlers() -> list[Handler]:
    return list(_handlers.values())
