"""Tenant fixtures (a pytest plugin of the root conftest): Alice's and Bob's tenants, an outsider.

Each tenant comes with a manager, a staff member, a property and a guest, so a test can
act as one tenant and assert that the other sees nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import pytest
from django.contrib.auth import get_user_model

from tenants.choices import Role
from tenants.models import Tenant
from tenants.services import membership_grant
from tests.factories import PASSWORD, GuestFactory, PropertyFactory, TenantFactory, UserFactory


@dataclass
class TenantWorld:
    tenant: Tenant
    manager: Any
    staff: Any
    property: Any
    guest: Any


def _world(slug: str) -> TenantWorld:
    tenant = TenantFactory.create(slug=slug, name=slug.title())
    manager = UserFactory.create(username=f"{slug}-manager")
    staff = UserFactory.create(username=f"{slug}-staff")
    membership_grant(user=manager, tenant=tenant, role=Role.MANAGER)
    membership_grant(user=staff, tenant=tenant, role=Role.STAFF)
    return TenantWorld(
        tenant=tenant,
        manager=manager,
        staff=staff,
        property=PropertyFactory.create(
            tenant=tenant, name=f"{slug.title()} Villa", slug=f"{slug}-villa"
        ),
        guest=GuestFactory.create(tenant=tenant, name=f"{slug.title()} Guest"),
    )


@pytest.fixture
def alice(db: Any) -> TenantWorld:
    """Tenant A."""
    return _world("alice")


@pytest.fixture
def bob(db: Any) -> TenantWorld:
    """Tenant B."""
    return _world("bob")


@pytest.fixture
def outsider(db: Any) -> Any:
    """Staff flag but no membership anywhere."""
    user = UserFactory.create(username="charlie")
    user.is_staff = True
    user.save(update_fields=["is_staff"])
    return user


@pytest.fixture
def superuser(db: Any) -> Any:
    return get_user_model().objects.create_superuser("root", "root@example.test", PASSWORD)


@pytest.fixture
def future() -> date:
    return date.today() + timedelta(days=30)
