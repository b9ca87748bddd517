"""Demo data for the local stack. Idempotent: running it again changes nothing."""

from __future__ import annotations

import os
import random
from datetime import timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction
from django.utils import timezone

from bookings.choices import BookingSource
from bookings.errors import BookingError
from bookings.models import Booking
from bookings.services import (
    booking_cancel,
    booking_check_in,
    booking_check_out,
    booking_create,
)
from pms.models import Guest, Property
from tenants.choices import Role
from tenants.models import Tenant
from tenants.services import membership_grant

DEMO_PASSWORD = "demo-pass-2026"


def demo_requested() -> bool:
    """Demo users with a published password only in debug, or when asked (SEED_DEMO=1)."""
    return settings.DEBUG or os.environ.get("SEED_DEMO", "").lower() in {"1", "true", "yes"}


TENANTS = [
    (
        "Seaside Stays",
        "seaside",
        [
            ("Harbour Loft", "Europe/Lisbon", 4, "140.00"),
            ("Dune Cottage", "Europe/Amsterdam", 6, "190.00"),
            ("Cliff House", "America/New_York", 8, "320.00"),
        ],
    ),
    (
        "Alpine Lodges",
        "alpine",
        [
            ("Pine Chalet", "Europe/Zurich", 6, "260.00"),
            ("Lakeside Cabin", "America/Denver", 4, "150.00"),
        ],
    ),
]
GUEST_NAMES = [
    "Ana Costa",
    "Ben Okafor",
    "Chloé Martin",
    "Dara Singh",
    "Elif Yilmaz",
    "Finn Larsen",
]


class Command(BaseCommand):
    help = "Create demo tenants, users, properties and bookings (idempotent)."

    def handle(self, *args: Any, **options: Any) -> None:
        if not demo_requested():
            self.stdout.write(
                "seed_demo: skipped (DEBUG is off; set SEED_DEMO=1 to seed demo data)"
            )
            return
        User = get_user_model()
        if not User.objects.filter(username="admin").exists():
            User.objects.create_superuser("admin", "admin@pms.localhost", DEMO_PASSWORD)
        rng = random.Random(2026)
        for name, slug, properties in TENANTS:
            tenant, _ = Tenant.objects.get_or_create(slug=slug, defaults={"name": name})
            for role in (Role.MANAGER, Role.STAFF, Role.CLEANER):
                username = f"{slug}-{role}"
                user = User.objects.filter(username=username).first()
                if user is None:
                    user = User.objects.create_user(
                        username, f"{username}@pms.localhost", DEMO_PASSWORD
                    )
                membership_grant(user=user, tenant=tenant, role=role)
            for prop_name, tz, max_guests, rate in properties:
                Property.objects.get_or_create(
                    tenant=tenant,
                    slug=prop_name.lower().replace(" ", "-"),
                    defaults={
                        "name": prop_name,
                        "timezone": tz,
                        "max_guests": max_guests,
                        "nightly_rate": Decimal(rate),
                        "cleaning_fee": Decimal("60.00"),
                        "address": f"{prop_name}, demo address",
                        # What the guest pages and the owner statement show.
                        "check_in_instructions": "Key box left of the door, code 2468. "
                        "Wi-Fi: demo-guest / welcome2026.",
                        "management_fee_percent": Decimal("20.00"),
                        "weekly_discount_percent": Decimal("10.00"),
                    },
                )
            for guest_name in GUEST_NAMES:
                email = f"{guest_name.split()[0].lower()}.{slug}@guests.localhost"
                Guest.objects.get_or_create(
                    tenant=tenant, email=email, defaults={"name": guest_name}
                )
            self._bookings(tenant, rng)
        self.stdout.write(
            f"demo data ready: {Tenant.objects.count()} tenants, "
            f"{Property.objects.count()} properties, {Booking.objects.count()} bookings"
        )

    def _bookings(self, tenant: Tenant, rng: random.Random) -> None:
        if Booking.objects.filter(tenant=tenant).exists():
            return
        properties = list(Property.objects.filter(tenant=tenant))
        guests = list(Guest.objects.filter(tenant=tenant))
        wanted = 15  # per tenant: 30 in all, past and future
        today = timezone.localdate()
        with transaction.atomic():
            for index in range(wanted):
                prop = properties[index % len(properties)]
                # Non-overlapping stays per property, from ~60 days ago to ~90 days ahead.
                start = today + timedelta(
                    days=-60 + (index // len(properties)) * 30 + rng.randint(0, 8)
                )
                nights = rng.randint(2, 7)
                try:
                    booking = booking_create(
                        tenant=tenant,
                        property=prop,
                        guest=rng.choice(guests),
                        check_in=start,
                        check_out=start + timedelta(days=nights),
                        guests_count=rng.randint(1, prop.max_guests),
                        source=rng.choice(list(BookingSource.values)),
                        actor="seed_demo",
                        allow_past=True,
                    )
                except BookingError:
                    continue
                if booking.check_out < today:
                    booking_check_out(
                        booking=booking_check_in(booking=booking, actor="seed_demo"),
                        actor="seed_demo",
                    )
                elif index % 7 == 3:
                    booking_cancel(booking=booking, reason="demo cancellation", actor="seed_demo")
