"""Operator alerts: evaluate the rules, open and resolve incidents, tell operators once.

A condition must hold for its rule's ``for_seconds`` (Prometheus' ``for:``) before
its incident opens: until then the incident is *pending* and nobody is told. A
pending incident whose condition clears is deleted: no alert went out, so no
recovery goes out either. A worker restart of a few seconds pages nobody.

Invariants:
- At most one pending-or-open incident per (rule, subject) (a database constraint).
- Pending incidents are never announced: the opening claim requires the incident
  to have opened.
- A subject that could not be measured (broker unreachable, inspect timed out)
  neither opens nor resolves anything: an outage of the monitoring path is not
  a recovery.
- Messages go out after the incident rows are committed, never inside a
  transaction. Email and webhook are separate deliveries: each is claimed for
  its message with a conditional UPDATE (e.g. ``notified_at IS NULL``), so
  concurrent evaluations (the ``ops_watchdog`` process and beat's periodic
  task) send it once; a failed send releases only that channel's claim and the
  next evaluation retries only that channel.
- Disabling a rule closes its open incidents silently (``resolution_note``):
  nothing recovered, so operators are not told it did.
"""

from __future__ import annotations

import json
import logging
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.utils import timezone

from pms.choices import DeliveryStatus
from pms.models import EventDelivery
from pms.models.monitoring import AlertIncident, AlertKind, AlertRule, IncidentStatus
from pms.monitoring.channels import channel_health
from pms.monitoring.overview import Overview, queue_overview

logger = logging.getLogger(__name__)

QUEUE_KINDS = {
    AlertKind.QUEUE_DEPTH,
    AlertKind.OLDEST_AGE,
    AlertKind.NO_CONSUMER,
    AlertKind.FAILURE_RATE,
}


@dataclass(frozen=True)
class Firing:
    value: float
    message: str


@dataclass
class RuleResult:
    known: set[str]  # subjects measured this time
    firing: dict[str, Firing]


def overdue_deliveries(now: datetime | None = None) -> int:
    cutoff = (now or timezone.now()) - timedelta(seconds=settings.OPS_ALERT_OUTBOX_GRACE_SECONDS)
    return EventDelivery.objects.filter(status=DeliveryStatus.PENDING, due_at__lt=cutoff).count()


def _evaluate_queue_rule(rule: AlertRule, overview: Overview) -> RuleResult:
    result = RuleResult(known=set(), firing={})
    for queue in overview.queues:
        if rule.queue and queue.name != rule.queue:
            continue
        if rule.kind == AlertKind.FAILURE_RATE:
            rates = queue.last_5_minutes
            if not overview.task_stats.available:
                continue
            result.known.add(queue.name)
            rate = rates.failure_rate
            if (
                rate is not None
                and rates.processed >= settings.OPS_ALERT_FAILURE_RATE_MIN_RUNS
                and rate > rule.threshold
            ):
                result.firing[queue.name] = Firing(
                    rate,
                    f"queue {queue.name}: {rate:.0f}% of {rates.processed} runs failed "
                    f"in the last 5 minutes (threshold {rule.threshold:g}%)",
                )
            continue
        if queue.depth is None:
            continue
        if rule.kind == AlertKind.QUEUE_DEPTH:
            result.known.add(queue.name)
            if queue.depth > rule.threshold:
                result.firing[queue.name] = Firing(
                    queue.depth,
                    f"queue {queue.name} holds {queue.depth} messages "
                    f"(threshold {rule.threshold:g})",
                )
        elif rule.kind == AlertKind.OLDEST_AGE:
            result.known.add(queue.name)
            age = queue.oldest_age_seconds
            if age is not None and age > rule.threshold:
                result.firing[queue.name] = Firing(
                    age,
                    f"queue {queue.name}: oldest message waits for {age:.0f}s "
                    f"(threshold {rule.threshold:g}s)",
                )
        elif rule.kind == AlertKind.NO_CONSUMER:
            if queue.consumers is None:
                continue
            result.known.add(queue.name)
            if queue.consumers == 0 and queue.depth >= max(rule.threshold, 1):
                result.firing[queue.name] = Firing(
                    queue.depth,
                    f"queue {queue.name} holds {queue.depth} messages and no worker consumes it",
                )
    return result


def _evaluate_rule(rule: AlertRule, overview: Overview) -> RuleResult:
    if rule.kind in QUEUE_KINDS:
        return _evaluate_queue_rule(rule, overview)
    if rule.kind == AlertKind.BEAT_SILENT:
        silent = overview.beat_silent_seconds
        if silent is None:
            return RuleResult({"beat"}, {"beat": Firing(-1, "beat has never ticked")})
        firing = {}
        if silent > rule.threshold:
            firing["beat"] = Firing(
                silent, f"beat silent for {silent:.0f}s (threshold {rule.threshold:g}s)"
            )
        return RuleResult({"beat"}, firing)
    if rule.kind == AlertKind.OUTBOX_OVERDUE:
        overdue = overdue_deliveries()
        firing = {}
        if overdue >= max(rule.threshold, 1):
            firing["outbox"] = Firing(
                overdue,
                f"{overdue} outbox deliveries overdue by more than "
                f"{settings.OPS_ALERT_OUTBOX_GRACE_SECONDS}s",
            )
        return RuleResult({"outbox"}, firing)
    if rule.kind == AlertKind.CHANNEL_STALE:
        channels = channel_health()
        if channels is None:
            return RuleResult(set(), {})
        stale = [c for c in channels if c.stale]
        firing = {}
        if stale and len(stale) >= max(rule.threshold, 1):
            # Operators' channels (email, webhook) are not tenant-scoped: name no
            # tenant's channel, only ids an operator can look up.
            names = ", ".join(
                f"channel #{c.channel_id} (tenant #{c.tenant_id})" for c in stale[:10]
            )
            firing["channels"] = Firing(len(stale), f"{len(stale)} channel(s) stale: {names}")
        return RuleResult({"channels"}, firing)
    if rule.kind == AlertKind.QUEUE_UNDER_REPLICATED:
        return _evaluate_replicas(rule, overview)
    if rule.kind == AlertKind.SENTINEL_QUORUM:
        sentinel = overview.sentinel
        if not sentinel.configured:
            return RuleResult(set(), {})
        firing = {}
        if sentinel.quorum_lost:
            reachable = sum(1 for view in sentinel.sentinels if view.reachable)
            details = "; ".join(f"{v.address}: {v.detail}" for v in sentinel.sentinels)
            firing["sentinel"] = Firing(
                reachable,
                f"Redis Sentinels of {sentinel.master!r} have no quorum "
                f"({reachable} of {len(sentinel.sentinels)} reachable): a failed primary "
                f"would not be replaced. {details}",
            )
        return RuleResult({"sentinel"}, firing)
    return RuleResult(set(), {})


def _evaluate_replicas(rule: AlertRule, overview: Overview) -> RuleResult:
    """One subject for the whole broker: a node loss under-replicates every queue at once,
    and operators need one message saying so, not one per queue."""
    broker = overview.broker
    if not broker.configured or broker.error:
        return RuleResult(set(), {})  # not RabbitMQ, or not measured
    short = broker.under_replicated
    firing = {}
    if short and len(short) >= max(rule.threshold, 1):
        lost = broker.quorum_lost
        offline = sorted({node for queue in short for node in queue.offline})
        message = (
            f"{len(short)} of {len(broker.queues)} quorum queues under-replicated "
            f"(offline: {', '.join(offline) or 'members missing'})"
        )
        if lost:
            message += f"; quorum lost, accepting nothing: {', '.join(q.queue for q in lost)}"
        firing["quorum-queues"] = Firing(len(short), message)
    return RuleResult({"quorum-queues"}, firing)


def alert_rules_evaluate(*, overview: Overview | None = None) -> dict[str, int]:
    """Open and resolve incidents for every rule, then notify. Returns what changed."""
    overview = overview or queue_overview(use_worker_cache=False)
    opened = resolved = 0
    now = timezone.now()
    for rule in AlertRule.objects.all():
        if not rule.enabled:
            resolved += _close_silently(rule, now=now)
            continue
        result = _evaluate_rule(rule, overview)
        changes = _apply_result(rule, result, now=now)
        opened += changes["opened"]
        resolved += changes["resolved"]
    sent = alert_notifications_send()
    return {"opened": opened, "resolved": resolved, "notified": sent}


# A pending incident not seen firing for this long has lost its history: the watchdog
# and beat evaluate every 30 s by default, so this is many missed evaluations.
PENDING_LOST_AFTER = timedelta(minutes=5)


def _apply_result(rule: AlertRule, result: RuleResult, *, now: datetime) -> dict[str, int]:
    """One rule's incidents after one evaluation, in one transaction holding their row locks
    (a concurrent evaluation of the same rule waits, then sees what this one did)."""
    opened = resolved = 0
    held_long_enough = timedelta(seconds=rule.for_seconds)
    with transaction.atomic():
        active = {
            incident.subject: incident
            for incident in rule.incidents.select_for_update().filter(
                status__in=[IncidentStatus.PENDING, IncidentStatus.OPEN]
            )
        }
        for subject, firing in result.firing.items():
            incident = active.get(subject)
            if incident is None:
                status = IncidentStatus.OPEN if not rule.for_seconds else IncidentStatus.PENDING
                try:
                    with transaction.atomic():
                        AlertIncident.objects.create(
                            rule=rule,
                            subject=subject,
                            status=status,
                            message=firing.message,
                            value=firing.value,
                            last_value=firing.value,
                            firing_since=now,
                            last_firing_at=now,
                        )
                except IntegrityError:
                    continue  # a concurrent evaluation created it
                if status == IncidentStatus.OPEN:
                    opened += 1
                else:
                    logger.debug("ops alert pending for %ss: %s", rule.for_seconds, firing.message)
                continue
            since = incident.firing_since or incident.opened_at
            last_seen = incident.last_firing_at or since
            if incident.status == IncidentStatus.PENDING and now - last_seen > PENDING_LOST_AFTER:
                # Not seen for a while (subject unmeasured, paused, removed): whether it
                # held in between is unknown, so its for: starts again from now.
                incident.firing_since = incident.last_firing_at = now
                incident.message, incident.last_value = firing.message, firing.value
                incident.save(
                    update_fields=["firing_since", "last_firing_at", "message", "last_value"]
                )
                continue
            if incident.status == IncidentStatus.PENDING and now - since >= held_long_enough:
                # Held for the whole for: the incident opens now, saying what holds now.
                incident.status = IncidentStatus.OPEN
                incident.opened_at = now
                incident.message = firing.message
                incident.value = incident.last_value = firing.value
                incident.last_firing_at = now
                incident.save(
                    update_fields=[
                        "status",
                        "opened_at",
                        "message",
                        "value",
                        "last_value",
                        "last_firing_at",
                    ]
                )
                opened += 1
                continue
            incident.last_value = firing.value
            incident.last_firing_at = now
            incident.save(update_fields=["last_value", "last_firing_at"])
        for subject, incident in active.items():
            # Unmeasured subjects keep their state: an outage of the monitoring
            # path neither resolves an open incident nor drops a pending one.
            if subject not in result.known or subject in result.firing:
                continue
            if incident.status == IncidentStatus.PENDING:
                # Cleared before its for: elapsed. Nobody was told: drop it.
                logger.debug("ops alert cleared while pending: %s", incident.message)
                incident.delete()
                continue
            incident.status = IncidentStatus.RESOLVED
            incident.resolved_at = now
            incident.save(update_fields=["status", "resolved_at"])
            resolved += 1
    return {"opened": opened, "resolved": resolved}


RULE_DISABLED_NOTE = "rule disabled"


def _close_silently(rule: AlertRule, *, now: datetime) -> int:
    """A disabled rule's open incidents are closed without a recovery message; its
    pending ones (never announced) are dropped."""
    rule.incidents.filter(status=IncidentStatus.PENDING).delete()
    return rule.incidents.filter(status=IncidentStatus.OPEN).update(
        status=IncidentStatus.RESOLVED, resolved_at=now, resolution_note=RULE_DISABLED_NOTE
    )


# --- Notifications ------------------------------------------------------------------


def operator_emails() -> list[str]:
    if settings.OPS_ALERT_EMAILS:
        return list(settings.OPS_ALERT_EMAILS)
    return sorted(
        get_user_model()
        .objects.filter(is_superuser=True, is_active=True)
        .exclude(email="")
        .values_list("email", flat=True)
    )


def _post_webhook(payload: dict[str, object]) -> None:
    request = urllib.request.Request(
        settings.OPS_ALERT_WEBHOOK_URL,
        data=json.dumps(payload).encode(),
        headers={"Content-Type": "application/json", "User-Agent": "pms-ops-alerts"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=settings.OPS_ALERT_WEBHOOK_TIMEOUT) as response:
        response.read(1024)


def _message(incident: AlertIncident, *, recovered: bool) -> tuple[str, str]:
    state = "RECOVERED" if recovered else "ALERT"
    headline = f"{incident.rule.get_kind_display()}: {incident.subject}"
    body = (
        f"{state}: {incident.message}\n\n"
        f"Rule: {incident.rule}\nSubject: {incident.subject}\n"
        f"Opened: {incident.opened_at:%Y-%m-%d %H:%M:%S} UTC\n"
    )
    # Opened after a for: (not at first sight): say since when the condition held.
    if incident.firing_since and incident.opened_at - incident.firing_since >= timedelta(seconds=1):
        body += f"Firing since: {incident.firing_since:%Y-%m-%d %H:%M:%S} UTC\n"
    if recovered and incident.resolved_at:
        body += f"Resolved: {incident.resolved_at:%Y-%m-%d %H:%M:%S} UTC\n"
    body += "\nSee Admin > PMS core > Queue health and Alert incidents.\n"
    return f"[PMS ops] {state} {headline}", body


def _send_email(incident: AlertIncident, *, recovered: bool) -> None:
    subject, body = _message(incident, recovered=recovered)
    recipients = operator_emails()
    if not recipients:
        if not settings.OPS_ALERT_WEBHOOK_URL:
            logger.warning("ops alert with no recipient (set OPS_ALERT_EMAILS): %s", body)
        return
    send_mail(
        subject=subject,
        message=body,
        from_email=settings.DEFAULT_FROM_EMAIL,
        recipient_list=recipients,
    )


def _send_webhook(incident: AlertIncident, *, recovered: bool) -> None:
    if not settings.OPS_ALERT_WEBHOOK_URL:
        return
    _post_webhook(
        {
            "status": "resolved" if recovered else "firing",
            "incident": incident.pk,
            "rule": incident.rule.kind,
            "subject": incident.subject,
            "message": incident.message,
            "value": incident.value,
            "firing_since": incident.firing_since.isoformat() if incident.firing_since else None,
            "opened_at": incident.opened_at.isoformat(),
            "resolved_at": incident.resolved_at.isoformat() if incident.resolved_at else None,
        }
    )


@dataclass(frozen=True)
class Channel:
    """One way of telling operators, with its own opening and recovery marks."""

    name: str
    opened_field: str
    recovered_field: str
    send: Callable[..., None]


CHANNELS = (
    Channel("email", "notified_at", "recovered_notified_at", _send_email),
    Channel("webhook", "webhook_notified_at", "webhook_recovered_at", _send_webhook),
)


def _send_claimed(incident_id: int, channel: Channel, *, recovered: bool) -> bool:
    field = channel.recovered_field if recovered else channel.opened_field
    claim = AlertIncident.objects.filter(pk=incident_id, **{f"{field}__isnull": True})
    if recovered:
        claim = claim.filter(status=IncidentStatus.RESOLVED)
    else:
        claim = claim.exclude(status=IncidentStatus.PENDING)  # not held for its for: yet
    if not claim.update(**{field: timezone.now()}):
        return False  # somebody else sent it
    incident = AlertIncident.objects.select_related("rule").get(pk=incident_id)
    try:
        channel.send(incident, recovered=recovered)
    except Exception:
        logger.exception(
            "could not send ops alert for incident %s by %s; will retry", incident_id, channel.name
        )
        AlertIncident.objects.filter(pk=incident_id).update(**{field: None})
        return False
    return True


def alert_notifications_send() -> int:
    """Send the opening message of new incidents and the recovery message of resolved ones,
    by email and by webhook, each channel once per incident and once per recovery.

    Must not run inside a transaction (network I/O).
    """
    if transaction.get_connection().in_atomic_block:
        raise RuntimeError("alert notifications are sent outside transactions")
    sent = 0
    # Incidents closed silently (their rule was disabled) and pending ones (not held
    # for their rule's for: yet) are never announced.
    incidents = AlertIncident.objects.filter(resolution_note="").exclude(
        status=IncidentStatus.PENDING
    )
    for channel in CHANNELS:
        for incident_id in incidents.filter(
            **{f"{channel.opened_field}__isnull": True}
        ).values_list("pk", flat=True):
            sent += _send_claimed(incident_id, channel, recovered=False)
        # Recovery only for incidents whose opening message went out on this
        # channel: an operator is never told "recovered" about something they
        # were not told about.
        for incident_id in incidents.filter(
            status=IncidentStatus.RESOLVED,
            **{
                f"{channel.opened_field}__isnull": False,
                f"{channel.recovered_field}__isnull": True,
            },
        ).values_list("pk", flat=True):
            sent += _send_claimed(incident_id, channel, recovered=True)
    return sent


def default_rules() -> list[tuple[str, float]]:
    return [
        (AlertKind.QUEUE_DEPTH, settings.OPS_ALERT_QUEUE_DEPTH),
        (AlertKind.OLDEST_AGE, settings.OPS_ALERT_OLDEST_AGE_SECONDS),
        (AlertKind.NO_CONSUMER, 1),
        (AlertKind.FAILURE_RATE, settings.OPS_ALERT_FAILURE_RATE_PERCENT),
        (AlertKind.BEAT_SILENT, settings.OPS_ALERT_BEAT_SILENT_SECONDS),
        (AlertKind.OUTBOX_OVERDUE, settings.OPS_ALERT_OUTBOX_OVERDUE),
        (AlertKind.CHANNEL_STALE, settings.OPS_ALERT_CHANNELS_STALE),
        (AlertKind.QUEUE_UNDER_REPLICATED, 1),
        (AlertKind.SENTINEL_QUORUM, 1),
    ]


def alert_rules_setup() -> list[tuple[AlertRule, bool]]:
    """Create the default rules (all queues) from settings; existing rules keep their edits."""
    return [
        AlertRule.objects.get_or_create(kind=kind, queue="", defaults={"threshold": threshold})
        for kind, threshold in default_rules()
    ]
