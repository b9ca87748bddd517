"""The automation app's events: maintenance requests' names, payloads and builders.

The maintenance services emit them; subscribers import this module (never
``automation.handlers``, services or tasks) and read a payload through its type:
``payload = cast(MaintenanceReported, event.payload)``. The payload is the JSON
stored in ``DomainEvent.payload``; see ``bookings.events`` for the conventions.
"""

from __future__ import annotations

from typing import Final, TypedDict

from automation.models import MaintenanceRequest

MAINTENANCE_REQUEST_AGGREGATE: Final = "maintenance_request"

MAINTENANCE_REPORTED: Final = "maintenance.reported"
MAINTENANCE_ASSIGNED: Final = "maintenance.assigned"
MAINTENANCE_STATUS_CHANGED: Final = "maintenance.status_changed"
MAINTENANCE_UPDATED: Final = "maintenance.updated"

MAINTENANCE_EVENTS: Final = (
    MAINTENANCE_REPORTED,
    MAINTENANCE_ASSIGNED,
    MAINTENANCE_STATUS_CHANGED,
    MAINTENANCE_UPDATED,
)
EVENT_TYPES: Final = frozenset(MAINTENANCE_EVENTS)


class MaintenanceSnapshot(TypedDict):
    """The request after the change: what every ``maintenance.*`` event carries."""

    request_id: int
    property_id: int
    booking_id: int | None
    title: str
    priority: str  # MaintenancePriority
    status: str  # MaintenanceStatus
    reported_by: str  # ReportedBy
    assignee_id: int | None


class MaintenanceReported(MaintenanceSnapshot):
    pass


class MaintenanceAssigned(MaintenanceSnapshot):
    pass


class MaintenanceStatusChanged(MaintenanceSnapshot):
    previous_status: str


class MaintenanceUpdated(MaintenanceSnapshot):
    changed: list[str]  # the fields staff corrected: title, description, priority, photo


def maintenance_snapshot(request: MaintenanceRequest) -> MaintenanceSnapshot:
    return {
        "request_id": request.pk,
        "property_id": request.property_id,
        "booking_id": request.booking_id,
        "title": request.title,
        "priority": request.priority,
        "status": request.status,
        "reported_by": request.reported_by,
        "assignee_id": request.assignee_id,
    }


def maintenance_reported_payload(request: MaintenanceRequest) -> MaintenanceReported:
    return MaintenanceReported(**maintenance_snapshot(request))


def maintenance_assigned_payload(request: MaintenanceRequest) -> MaintenanceAssigned:
    return MaintenanceAssigned(**maintenance_snapshot(request))


def maintenance_status_changed_payload(
    request: MaintenanceRequest, *, previous_status: str
) -> MaintenanceStatusChanged:
    return MaintenanceStatusChanged(
        **maintenance_snapshot(request), previous_status=previous_status
    )


def maintenance_updated_payload(
    request: MaintenanceRequest, *, changed: list[str]
) -> MaintenanceUpdated:
    return MaintenanceUpdated(**maintenance_snapshot(request), changed=changed)


# What each event type carries: the catalogue's table of contents (checked by the tests).
PAYLOAD_TYPES: Final[dict[str, type]] = {
    MAINTENANCE_REPORTED: MaintenanceReported,
    MAINTENANCE_ASSIGNED: MaintenanceAssigned,
    MAINTENANCE_STATUS_CHANGED: MaintenanceStatusChanged,
    MAINTENANCE_UPDATED: MaintenanceUpdated,
}
