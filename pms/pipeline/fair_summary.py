"""What fair admission holds, per tenant and kind: the admin's view of pms.pipeline.fairness.

Waiting: for its turn (the tenant's share, or a full lane). In flight: admitted, not
finished (within ``FAIR_INFLIGHT_DEADLINE``). Deferred: waiting for an endpoint whose
circuit is open (pms.pipeline.endpoints).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Count, Exists, Min, OuterRef, Q
from django.utils import timezone

from pms.models import EndpointCircuit, FairWorkItem


@dataclass(frozen=True)
class FairWorkLoad:
    """One tenant's open work of one kind, as the admin shows it."""

    tenant_id: int
    tenant_name: str
    scope: str
    waiting: int  # for its turn (the tenant's share, or a full lane)
    in_flight: int  # admitted, not finished
    deferred: int  # waiting behind an open circuit
    oldest_waiting_at: datetime | None


def fair_work_summary(tenant_ids: list[int] | None = None) -> list[FairWorkLoad]:
    """Per tenant and scope: how much open work waits, runs and is deferred.

    ``tenant_ids``: only these tenants (None: all). One query, grouped in PostgreSQL.
    """
    now = timezone.now()
    stale_before = now - timedelta(seconds=settings.FAIR_INFLIGHT_DEADLINE)
    open_circuit = EndpointCircuit.objects.filter(
        tenant_id=OuterRef("tenant_id"),
        lane=OuterRef("lane"),
        consecutive_failures__gte=settings.ENDPOINT_BREAKER_FAILURES,
        open_until__gt=now,
    )
    items = FairWorkItem.objects.filter(finished_at__isnull=True)
    if tenant_ids is not None:
        items = items.filter(tenant_id__in=tenant_ids)
    in_flight = Q(dispatched_at__gt=stale_before)
    rows = (
        items.annotate(behind_open_circuit=Exists(open_circuit))
        .values("tenant_id", "tenant__name", "scope")
        .annotate(
            in_flight=Count("pk", filter=in_flight),
            deferred=Count("pk", filter=~in_flight & Q(behind_open_circuit=True)),
            waiting=Count("pk", filter=~in_flight & Q(behind_open_circuit=False)),
            oldest_waiting_at=Min("created_at", filter=~in_flight),
        )
        .order_by("tenant__name", "scope")
    )
    return [
        FairWorkLoad(
            tenant_id=row["tenant_id"],
            tenant_name=row["tenant__name"],
            scope=row["scope"],
            waiting=row["waiting"],
            in_flight=row["in_flight"],
            deferred=row["deferred"],
            oldest_waiting_at=row["oldest_waiting_at"],
        )
        for row in rows
    ]
