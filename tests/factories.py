from __future__ import annotations

from decimal import Decimal

import factory
from django.contrib.auth import get_user_model

from pms.models import Guest, Property
from tenants.models import Tenant

# Every user a factory makes logs in with this password.
PASSWORD = "pw-for-tests-1"


class TenantFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Tenant
        django_get_or_create = ("slug",)

    name = factory.Sequence(lambda n: f"Tenant {n}")
    slug = factory.Sequence(lambda n: f"tenant-{n}")


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda user: f"{user.username}@example.test")
    password = factory.PostGenerationMethodCall("set_password", PASSWORD)


class PropertyFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Property

    tenant = factory.SubFactory(TenantFactory)
    name = factory.Sequence(lambda n: f"Villa {n}")
    slug = factory.Sequence(lambda n: f"villa-{n}")
    timezone = "Europe/Lisbon"
    max_guests = 4
    nightly_rate = Decimal("100.00")
    cleaning_fee = Decimal("50.00")


class GuestFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Guest

    tenant = factory.SubFactory(TenantFactory)
    name = factory.Sequence(lambda n: f"Guest {n}")
    email = factory.Sequence(lambda n: f"guest{n}@example.test")
