"""A role's rights hold only in the tenant where the user has it, and follow every change.

Through the real client and session: a user who manages one tenant and cleans for
another, a demotion, a removal, and the old global role groups.
"""

from __future__ import annotations

import importlib
from datetime import timedelta

import pytest
from django.apps import apps as django_apps
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission

from bookings.choices import BookingStatus
from bookings.services import booking_create
from pms.monitoring.operators import OPERATORS_GROUP
from tenants.choices import Role
from tenants.services import membership_grant
from tests.factories import PASSWORD, UserFactory


def _fresh(user):
    """The user as the next request sees them."""
    return get_user_model().objects.get(pk=user.pk)


def _booking(world, start):
    return booking_create(
        tenant=world.tenant,
        property=world.property,
        guest=world.guest,
        check_in=start,
        check_out=start + timedelta(days=2),
    )


@pytest.fixture
def seaside(alice, bob):
    """Manager of Alice's tenant, cleaner for Bob's."""
    user = UserFactory.create(username="seaside-manager")
    membership_grant(user=user, tenant=alice.tenant, role=Role.MANAGER)
    membership_grant(user=user, tenant=bob.tenant, role=Role.CLEANER)
    return user


def test_regranting_a_manager_as_cleaner_takes_the_managers_rights_away(alice):
    user = UserFactory.create(username="seaside-manager")
    membership_grant(user=user, tenant=alice.tenant, role=Role.MANAGER)
    manager = _fresh(user)
    assert manager.has_perm("bookings.change_payment")
    assert manager.has_perm("channelsync.change_channel")

    membership_grant(user=user, tenant=alice.tenant, role=Role.CLEANER)

    cleaner = _fresh(user)
    assert not cleaner.has_perm("bookings.change_payment")
    assert not cleaner.has_perm("channelsync.change_channel")
    assert not cleaner.has_perm("pms.change_property", alice.property)
    assert cleaner.has_perm("automation.change_cleaningtask")


def test_a_manager_of_one_tenant_is_a_cleaner_on_the_other_tenants_rows(
    client, alice, bob, seaside, future
):
    bob_booking = _booking(bob, future)
    user = _fresh(seaside)
    assert user.has_perm("pms.change_property", alice.property)
    assert not user.has_perm("pms.change_property", bob.property)
    assert user.has_perm("pms.view_property", bob.property)
    assert not user.has_perm("bookings.view_booking", bob_booking)

    client.force_login(seaside)
    # Cleaners do not see bookings: Bob's answer as if they did not exist.
    assert client.get(f"/admin/bookings/booking/{bob_booking.pk}/change/").status_code == 404
    assert bob_booking.reference not in client.get("/admin/bookings/booking/").content.decode()
    # Cleaners see properties, read-only; a write is refused.
    page = client.get(f"/admin/pms/property/{bob.property.pk}/change/")
    assert page.status_code == 200 and not page.context["has_change_permission"]
    assert client.post(f"/admin/pms/property/{bob.property.pk}/change/", {}).status_code == 403
    assert client.get(f"/admin/pms/property/{bob.property.pk}/delete/").status_code == 403
    # In Alice's tenant the same user manages.
    page = client.get(f"/admin/pms/property/{alice.property.pk}/change/")
    assert page.status_code == 200 and page.context["has_change_permission"]
    # The calendar shows bookings: Bob's property's calendar is not theirs to see.
    assert (
        client.get(f"/admin/bookings/booking/property/{bob.property.pk}/calendar/").status_code
        == 404
    )
    assert (
        client.get(f"/admin/bookings/booking/property/{alice.property.pk}/calendar/").status_code
        == 200
    )


def test_an_action_acts_only_on_the_rows_where_the_role_allows_it(client, alice, bob, future):
    user = UserFactory.create(username="two-hats")
    membership_grant(user=user, tenant=alice.tenant, role=Role.MANAGER)
    membership_grant(user=user, tenant=bob.tenant, role=Role.STAFF)
    alice_booking, bob_booking = _booking(alice, future), _booking(bob, future)
    client.force_login(user)

    response = client.post(
        "/admin/bookings/booking/",
        {"action": "cancel_selected", "_selected_action": [alice_booking.pk, bob_booking.pk]},
        follow=True,
    )

    alice_booking.refresh_from_db()
    bob_booking.refresh_from_db()
    assert alice_booking.status == BookingStatus.CANCELLED
    assert bob_booking.status != BookingStatus.CANCELLED
    assert "1 selected row(s) left alone" in response.content.decode()


def test_the_booking_form_offers_only_the_tenants_where_the_role_may_add(
    client, alice, bob, seaside
):
    client.force_login(seaside)
    form = client.get("/admin/bookings/booking/add/").context["adminform"].form
    assert list(form.fields["tenant"].queryset) == [alice.tenant]
    assert list(form.fields["property"].queryset) == [alice.property]
    response = client.get(
        "/admin/autocomplete/",
        {"app_label": "bookings", "model_name": "booking", "field_name": "guest", "term": ""},
    )
    assert response.status_code == 200
    assert [item["id"] for item in response.json()["results"]] == [str(alice.guest.pk)]


def test_a_staff_member_who_manages_elsewhere_gets_no_guest_choices_of_the_staff_tenant(
    client, alice, bob
):
    user = UserFactory.create(username="two-hats")
    membership_grant(user=user, tenant=alice.tenant, role=Role.MANAGER)
    membership_grant(user=user, tenant=bob.tenant, role=Role.STAFF)
    client.force_login(user)
    response = client.get(
        "/admin/autocomplete/",
        {"app_label": "bookings", "model_name": "booking", "field_name": "guest", "term": ""},
    )
    offered = {item["id"] for item in response.json()["results"]}
    assert str(alice.guest.pk) in offered and str(bob.guest.pk) not in offered


def test_a_demotion_acts_on_the_next_request(client, alice):
    client.login(username=alice.manager.username, password=PASSWORD)
    page = f"/admin/pms/property/{alice.property.pk}/change/"
    assert client.get(page).context["has_change_permission"]

    membership_grant(user=alice.manager, tenant=alice.tenant, role=Role.STAFF)

    response = client.get(page)
    assert response.status_code == 200 and not response.context["has_change_permission"]
    assert client.post(page, {"name": "Renamed"}).status_code == 403
    alice.property.refresh_from_db()
    assert alice.property.name == "Alice Villa"


def test_a_removal_acts_on_the_next_request(client, alice):
    from tenants.services import membership_revoke

    client.login(username=alice.manager.username, password=PASSWORD)
    page = f"/admin/pms/property/{alice.property.pk}/change/"
    assert client.get(page).status_code == 200

    assert membership_revoke(user=alice.manager, tenant=alice.tenant)

    assert client.get(page).status_code in (403, 404)
    assert client.get("/admin/pms/property/").status_code == 403
    assert not _fresh(alice.manager).has_perm("pms.view_property")


def test_granting_a_role_adds_no_group_and_migrate_leaves_no_role_group(alice):
    assert not alice.manager.groups.exists()
    assert not Group.objects.filter(name__startswith="role:").exists()
    assert Group.objects.filter(name=OPERATORS_GROUP).exists()


def test_the_data_migration_removes_the_old_role_groups_and_keeps_operators(alice):
    migration = importlib.import_module("tenants.migrations.0002_remove_global_role_groups")
    old = Group.objects.create(name="role:manager")
    old.permissions.add(Permission.objects.get(codename="change_payment"))
    alice.staff.groups.add(old)  # what membership_grant used to do, for every role
    assert _fresh(alice.staff).has_perm("bookings.change_payment")

    migration.remove_role_groups(django_apps, None)

    assert not Group.objects.filter(name__startswith="role:").exists()
    assert Group.objects.filter(name=OPERATORS_GROUP).exists()
    assert not _fresh(alice.staff).has_perm("bookings.change_payment")
    assert _fresh(alice.staff).has_perm("bookings.view_payment")  # staff's own right, per tenant
