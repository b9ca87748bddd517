"""Model factories.

Call ``XFactory.create(...)``, not ``XFactory(...)``: factory_boy types ``create()`` as the
model, while a direct call is typed as the factory (mypy cannot see through its metaclass).
"""

from __future__ import annotations

from decimal import Decimal

import factory
from django.contrib.auth import get_user_model
from django.contrib.auth.models import User

from pms.models import Guest, Property
from tenants.models import Tenant

# Every user a factory makes logs in with this password.
PASSWORD = "pw-for-tests-1"


class TenantFactory(factory.django.DjangoModelFactory[Tenant]):
    class Meta:
        model = Tenant
        django_get_or_create = ("slug",)

    name = factory.Sequence(lambda n: f"Tenant {n}")
    slug = factory.Sequence(lambda n: f"tenant-{n}")


class UserFactory(factory.django.DjangoModelFactory[User]):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda user: f"{user.username}@example.test")
    password = factory.PostGenerationMethodCall("set_password", PASSWORD)


class PropertyFactory(factory.django.DjangoModelFactory[Property]):
    class Meta:
        model = Property

    tenant = factory.SubFactory(TenantFactory)
    name = factory.Sequence(lambda n: f"Villa {n}")
    slug = factory.Sequence(lambda n: f"villa-{n}")
    timezone = "Europe/Lisbon"
    max_guests = 4
    nightly_rate = Decimal("100.00")
    cleaning_fee = Decimal("50.00")


class GuestFactory(factory.django.DjangoModelFactory[Guest]):
    class Meta:
        model = Guest

    tenant = factory.SubFactory(TenantFactory)
    name = factory.Sequence(lambda n: f"Guest {n}")
    email = factory.Sequence(lambda n: f"guest{n}@example.test")
