"""The pms app's models, one module per concern; Django finds them all through here."""

from pms.models.monitoring import AlertIncident, AlertKind, AlertRule, IncidentStatus, QueueSample
from pms.models.pipeline import (
    AggregateSequence,
    DomainEvent,
    EndpointCircuit,
    EventDelivery,
    FailedTask,
    FailedTaskAction,
    FairWorkItem,
)
from pms.models.properties import (
    MAX_HORIZON_DAYS,
    MAX_NIGHTS_LIMIT,
    MAX_REQUEST_EXPIRY_HOURS,
    BookingMode,
    CancellationPolicy,
    Guest,
    Property,
    currency_code,
)

__all__ = [
    "MAX_HORIZON_DAYS",
    "MAX_NIGHTS_LIMIT",
    "MAX_REQUEST_EXPIRY_HOURS",
    "AggregateSequence",
    "AlertIncident",
    "AlertKind",
    "AlertRule",
    "BookingMode",
    "CancellationPolicy",
    "DomainEvent",
    "EndpointCircuit",
    "EventDelivery",
    "FailedTask",
    "FailedTaskAction",
    "FairWorkItem",
    "Guest",
    "IncidentStatus",
    "Property",
    "QueueSample",
    "currency_code",
]
