"""What happened to one thing (a booking, a channel): its events and everything they caused.

The kernel tells the pipeline's part: each event, each handler's delivery of it (queue,
publishes, timings, outcome), the failed tasks it left and what staff did with them.
The apps add what landed outside the pipeline's tables (emails and SMS, channel pushes,
webhook deliveries) through ``story_source``, registered in their ``dashboard`` or
``story`` modules, so the kernel imports no app. The number of queries is fixed: one per
kind of record, whatever the number of events.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

from django.db.models import Prefetch
from django.urls import reverse

from pms.choices import DeliveryStatus, FailedTaskStatus
from pms.models import DomainEvent, EventDelivery, FailedTask, FailedTaskAction


@dataclass(frozen=True)
class StoryLine:
    at: datetime
    kind: str  # event, delivery, failure, action, or an app's kind (email, push, webhook...)
    title: str
    detail: str = ""
    outcome: str = ""  # what became of it, in a word or two
    tone: str = ""  # "", "ok", "warn" or "bad"
    url: str = ""
    event_id: object = None  # the event that caused it: shown under that event
    nested: bool = False  # set by ``story`` for the lines under an event


@dataclass(frozen=True)
class StorySubject:
    """What the story is about: a model's object and the events that concern it."""

    model: str  # "app_label.model", e.g. "bookings.booking"
    object_id: int
    events: Sequence[DomainEvent] = field(default_factory=tuple)

    @property
    def event_ids(self) -> list[uuid.UUID]:
        return [event.pk for event in self.events]


StorySource = Callable[[StorySubject], Iterable[StoryLine]]
_SOURCES: dict[str, StorySource] = {}


def story_source(name: str) -> Callable[[StorySource], StorySource]:
    def register(source: StorySource) -> StorySource:
        _SOURCES[name] = source
        return source

    return register


_DELIVERY_TONE = {DeliveryStatus.DONE: "ok", DeliveryStatus.PENDING: "warn"}
_FAILED_TONE = {FailedTaskStatus.RESOLVED: "ok", FailedTaskStatus.DISCARDED: ""}


def _seconds(start: datetime | None, end: datetime | None) -> str:
    if start is None or end is None:
        return ""
    return f"{(end - start).total_seconds():.2f} s"


def _delivery_line(delivery: EventDelivery) -> StoryLine:
    took = _seconds(delivery.created_at, delivery.completed_at)
    detail = f"queue {delivery.queue} · published {delivery.publish_count} times"
    if took:
        detail += f" · done {took} after the event"
    return StoryLine(
        at=delivery.completed_at or delivery.created_at,
        kind="delivery",
        title=delivery.handler,
        detail=detail,
        outcome=delivery.get_status_display(),
        tone=_DELIVERY_TONE.get(delivery.status, "bad"),  # type: ignore[call-overload]
        event_id=delivery.event_id,
    )


def _failure_lines(failed: FailedTask) -> list[StoryLine]:
    lines = [
        StoryLine(
            at=failed.last_failed_at,
            kind="failure",
            title=f"Failed task: {failed.task_name}",
            detail=f"{failed.exception_class}: {failed.exception_message[:200]} · "
            f"{failed.attempts} attempts",
            outcome=failed.get_status_display(),
            tone=_FAILED_TONE.get(failed.status, "bad"),  # type: ignore[call-overload]
            url=reverse("admin:pms_failedtask_change", args=[failed.pk]),
            event_id=failed.event_id,
        )
    ]
    lines.extend(
        StoryLine(
            at=action.created_at,
            kind="action",
            title=f"{action.action.capitalize()} by {action.user or 'the system'}",
            detail=action.note,
            event_id=failed.event_id,
        )
        for action in failed.actions.all()
    )
    return lines


def _pipeline_lines(ids: list[uuid.UUID]) -> list[StoryLine]:
    """The deliveries of the events and the failed tasks they left (two or three queries)."""
    deliveries = EventDelivery.objects.filter(event_id__in=ids).order_by("created_at", "pk")
    lines = [_delivery_line(delivery) for delivery in deliveries]
    failed_tasks = FailedTask.objects.filter(event_id__in=ids).prefetch_related(
        Prefetch(
            "actions",
            queryset=FailedTaskAction.objects.select_related("user").order_by("created_at"),
        )
    )
    for failed in failed_tasks:
        lines.extend(_failure_lines(failed))
    return lines


def story(subject: StorySubject) -> list[StoryLine]:
    """The subject's story, oldest first: each event, then what it caused, in time order."""
    ids = subject.event_ids
    caused: dict[object, list[StoryLine]] = {event_id: [] for event_id in ids}
    loose: list[StoryLine] = []
    lines = _pipeline_lines(ids)
    for source in _SOURCES.values():
        lines.extend(source(subject))
    for line in lines:
        caused.get(line.event_id, loose).append(line)
    blocks: list[tuple[datetime, list[StoryLine]]] = [
        (
            event.created_at,
            [
                StoryLine(
                    at=event.created_at,
                    kind="event",
                    title=event.event_type,
                    detail=f"by {event.actor or 'the system'} · #{event.sequence}",
                    event_id=event.pk,
                ),
                *(
                    replace(line, nested=True)
                    for line in sorted(caused[event.pk], key=lambda line: line.at)
                ),
            ],
        )
        for event in subject.events
    ]
    blocks.extend((line.at, [line]) for line in loose)
    return [line for _, block in sorted(blocks, key=lambda b: b[0]) for line in block]
