"""The cancellation fee becomes a Booking column.

Until now it lived only in the booking.cancelled event's payload. Bookings
cancelled before this migration get it from their latest booking.cancelled event
(one UPDATE); a cancelled booking without such an event keeps a null fee.
"""

from django.db import migrations, models
from django.db.models import CharField, DecimalField, OuterRef, Subquery
from django.db.models.fields.json import KeyTextTransform, KeyTransform
from django.db.models.functions import Cast


def backfill_cancellation_fees(apps, schema_editor):
    Booking = apps.get_model("bookings", "Booking")
    DomainEvent = apps.get_model("pms", "DomainEvent")
    # Frozen strings, not the catalogue's constants: a migration keeps the names of its day.
    latest_fee = (
        DomainEvent.objects.filter(
            aggregate_type="booking",
            aggregate_id=Cast(OuterRef("pk"), CharField()),
            event_type="booking.cancelled",
        )
        .order_by("-sequence")
        .annotate(fee=KeyTextTransform("fee", KeyTransform("cancellation", "payload")))
        .values("fee")[:1]
    )
    Booking.objects.filter(status="cancelled", cancellation_fee__isnull=True).update(
        cancellation_fee=Cast(Subquery(latest_fee), DecimalField(max_digits=12, decimal_places=2))
    )


class Migration(migrations.Migration):
    dependencies = [
        ("bookings", "0003_guest_api_payments_ledger"),
        ("pms", "0008_alert_incident_last_firing_at"),
    ]

    operations = [
        migrations.AddField(
            model_name="booking",
            name="cancellation_fee",
            field=models.DecimalField(
                blank=True, decimal_places=2, editable=False, max_digits=12, null=True
            ),
        ),
        # Reversed by dropping the column (the events keep the fees).
        migrations.RunPython(backfill_cancellation_fees, migrations.RunPython.noop),
    ]
